package producers

import (
	"math"
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
type FloatCounter struct {
	bits atomic.Uint64
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
	addFloat(&c.bits, v)
}

func (c *FloatCounter) collect(fl *flusher) {
	if c.bits.Load() == 0 && c.announced {
		return
	}
	c.announced = true
	fl.add(update{s: &c.seriesBase, value: math.Float64frombits(c.bits.Swap(0))})
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
