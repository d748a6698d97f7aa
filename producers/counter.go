package producers

import (
	"math"
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Counter is an integer counter series (AWX's IntM). Its methods are
// lock-free and safe from any goroutine.
type Counter struct {
	v atomic.Uint64
	seriesBase
	_ [counterPad]byte
}

// counterPad makes a counter exactly one cache line, so two counters
// updated from different cores never share one.
const counterPad = cacheLine - 8 - unsafe.Sizeof(seriesBase{})

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

func (c *Counter) collect(fl *flusher) {
	if c.v.Load() == 0 && c.announced {
		return
	}
	c.announced = true
	fl.add(update{s: &c.seriesBase, value: float64(c.v.Swap(0))})
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
// first time a swap fails, the counter spreads its adds over stripes, each
// on a cache line of its own (as Java's LongAdder does), and a flush sums
// them.
type FloatCounter struct {
	bits    atomic.Uint64
	stripes atomic.Pointer[[]stripe] // nil until the counter is contended
	seriesBase
	_ [counterPad - 8]byte
}

// stripe is one cache line of a contended float counter.
type stripe struct {
	bits atomic.Uint64
	_    [cacheLine - 8]byte
}

// Add adds v. A counter only goes up: negative, NaN and infinite values
// are ignored and counted in Stats.Rejected.
func (c *FloatCounter) Add(v float64) {
	if !(v > 0) || v > math.MaxFloat64 {
		c.fam.p.reject(v != 0)
		return
	}
	if s := c.stripes.Load(); s != nil {
		addStriped(*s, v)
		return
	}
	old := c.bits.Load()
	if !c.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
		c.contended(v)
	}
}

// contended stripes the counter, then adds v to a stripe.
func (c *FloatCounter) contended(v float64) {
	// Several stripes a core, so that goroutines running at once seldom
	// share one.
	n := 8
	for n < min(4*runtime.GOMAXPROCS(0), maxStripes) {
		n <<= 1
	}
	s := make([]stripe, n)
	if !c.stripes.CompareAndSwap(nil, &s) {
		s = *c.stripes.Load()
	}
	addStriped(s, v)
}

// maxStripes bounds a contended counter's stripes (a cache line each).
const maxStripes = 64

// addStriped adds v to the stripe of the calling goroutine, or the next
// one along while a swap fails. A goroutine is told by its stack: the
// address of a local, shifted past the smallest stack size (2 KiB),
// differs from one goroutine to the next and stays put while it runs; a
// Fibonacci hash spreads those over the stripes. len(s) is a power of two.
func addStriped(s []stripe, v float64) {
	var here byte
	mask := uint64(len(s) - 1)
	i := uint64(uintptr(unsafe.Pointer(&here))>>11) * 0x9e3779b97f4a7c15 >> (64 - bits.Len64(mask))
	for ; ; i++ {
		b := &s[i&mask].bits
		old := b.Load()
		if b.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (c *FloatCounter) collect(fl *flusher) {
	total := math.Float64frombits(c.bits.Swap(0))
	if s := c.stripes.Load(); s != nil {
		for i := range *s {
			total += math.Float64frombits((*s)[i].bits.Swap(0))
		}
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
