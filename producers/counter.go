package producers

import (
	"math"
	"sync/atomic"
	"unsafe"
)

// Counter is an integer counter series (AWX's IntM). Its methods are
// lock-free and safe from any goroutine. The adds between two flushes must
// total less than 2^63 (a Prometheus sample, a float64, holds integers
// exactly only up to 2^53).
//
// An add is a load and an atomic add of one word. Goroutines adding to one
// counter at once on different cores fight over that word's cache line, so
// now and then (see Add) the adding goroutine watches the word for a
// moment; if another goroutine writes it meanwhile, the counter spreads
// its adds over stripes from then on, as a contended FloatCounter does.
type Counter struct {
	_ [0]atomic.Uint64 // v is 64-bit aligned on every platform
	// v is the count since the last flush, touched only through
	// sync/atomic's functions (cheaper to inline than atomic.Uint64's
	// methods, which would push Inc and Add past the inlining budget). Its
	// top bit, striped, says that the counter adds into stripes instead.
	v       uint64
	stripes atomic.Pointer[stripes] // nil until the counter is contended
	seriesBase
	_ [counterPad]byte
}

// counterPad makes a counter exactly one cache line, so two counters
// updated from different cores never share one.
const counterPad = cacheLine - 16 - unsafe.Sizeof(seriesBase{})

// striped is the top bit of Counter.v: set once the counter has stripes.
const striped = 1 << 63

// Inc adds one.
func (c *Counter) Inc() {
	// Add's body with n = 1, kept apart so that each fits the inliner's
	// budget.
	if x := atomic.LoadUint64(&c.v); x >= striped || uint16(atomic.AddUint64(&c.v, 1)) == 0 {
		c.slowAdd(x, 1)
	}
}

// Add adds n.
//
// Whenever the low 16 bits of the count come to 0, which is every 64 Ki
// increments and at least every 64 Ki adds of the same n after a flush,
// the adding goroutine looks for contention.
func (c *Counter) Add(n uint64) {
	if x := atomic.LoadUint64(&c.v); x >= striped || uint16(atomic.AddUint64(&c.v, n)) == 0 {
		c.slowAdd(x, n)
	}
}

// slowAdd finishes an add whose load of the count found x. If that had the
// striped bit, n is still to add, to a stripe; if not, n is added already,
// and the count's low bits came to 0: look for contention.
func (c *Counter) slowAdd(x, n uint64) {
	if x < striped {
		if contended(&c.v) {
			c.stripes.CompareAndSwap(nil, newStripes())
			atomic.OrUint64(&c.v, striped)
		}
		return
	}
	s := c.stripes.Load()
	if s == nil { // not the flag but a count past 2^63
		atomic.AddUint64(&c.v, n)
		return
	}
	if s.addInt(n) {
		c.stripes.CompareAndSwap(s, s.repicked())
	}
}

func (c *Counter) collect(fl *flusher) {
	// Take the count, keeping the striped bit; an idle counter's line is
	// only read.
	var total uint64
	if atomic.LoadUint64(&c.v)&^striped != 0 {
		total = atomic.AndUint64(&c.v, striped) &^ striped
	}
	if s := c.stripes.Load(); s != nil {
		total += s.takeInt()
	}
	if total == 0 && c.announced {
		return
	}
	c.announced = true
	fl.add(update{s: &c.seriesBase, value: float64(total)})
}

// CounterVec is an integer counter with labels.
type CounterVec struct {
	vec[Counter, *Counter]
}

func (v *CounterVec) init(f *family) { v.vec.init(f, nil) }

// With returns the series for the label values, one per label name in
// registration order, creating it on first use. It fails when the count is
// wrong or a new value breaks the producer's limits.
func (v *CounterVec) With(labelValues ...string) (*Counter, error) {
	return v.with(labelValues)
}

// MustWith is With that panics on error.
func (v *CounterVec) MustWith(labelValues ...string) *Counter {
	return must(v.with(labelValues))
}

// FloatCounter is a float counter series (AWX's FloatM). Its methods are
// lock-free and safe from any goroutine.
//
// A float has no atomic add: Add loads, adds and compares-and-swaps, and
// goroutines adding to one counter at once make each other retry. The
// first time a swap fails, the counter spreads its adds over stripes.
type FloatCounter struct {
	bits    atomic.Uint64
	stripes atomic.Pointer[stripes] // nil until the counter is contended
	seriesBase
	_ [counterPad]byte
}

// Add adds v. A counter only goes up: negative, NaN and infinite values
// are ignored and counted in Stats.Rejected.
func (c *FloatCounter) Add(v float64) {
	if !(v > 0) || v > math.MaxFloat64 {
		c.fam.p.reject(v != 0)
		return
	}
	if s := c.stripes.Load(); s != nil {
		c.addStriped(s, v)
		return
	}
	old := c.bits.Load()
	if !c.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
		c.contended(v)
	}
}

// contended stripes the counter, then adds v to a stripe.
func (c *FloatCounter) contended(v float64) {
	c.stripes.CompareAndSwap(nil, newStripes())
	c.addStriped(c.stripes.Load(), v)
}

// addStriped adds v to a stripe, and repicks the cells when the goroutine
// finds its cell shared.
func (c *FloatCounter) addStriped(s *stripes, v float64) {
	if s.addFloat(v) {
		c.stripes.CompareAndSwap(s, s.repicked())
	}
}

func (c *FloatCounter) collect(fl *flusher) {
	total := math.Float64frombits(c.bits.Swap(0))
	if s := c.stripes.Load(); s != nil {
		total += s.takeFloat()
	}
	if total == 0 && c.announced {
		return
	}
	c.announced = true
	fl.add(update{s: &c.seriesBase, value: total})
}

// FloatCounterVec is a float counter with labels.
type FloatCounterVec struct {
	vec[FloatCounter, *FloatCounter]
}

func (v *FloatCounterVec) init(f *family) { v.vec.init(f, nil) }

// With returns the series for the label values; see CounterVec.With.
func (v *FloatCounterVec) With(labelValues ...string) (*FloatCounter, error) {
	return v.with(labelValues)
}

// MustWith is With that panics on error.
func (v *FloatCounterVec) MustWith(labelValues ...string) *FloatCounter {
	return must(v.with(labelValues))
}

// finiteBits reports whether a float64's bits are neither NaN nor ±Inf,
// whose exponent bits are all set: one mask and compare on the hot path.
func finiteBits(bits uint64) bool {
	const exp = 0x7ff0000000000000
	return bits&exp != exp
}

// addFloat adds v to the float64 stored as bits in a.
func addFloat(a *atomic.Uint64, v float64) {
	for {
		old := a.Load()
		if a.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}
