package producers

import (
	"math"
	"sync/atomic"
	"unsafe"
)

// A gauge keeps its absolute value and a changed flag. An update stores
// the value first and raises the flag second, and only when it is down: a
// load is cheaper than a store on a contended cache line. The flag lives on
// another cache line than the value, so goroutines storing the value
// concurrently do not also bounce the line they read the flag from. The
// flush goroutine lowers the flag first and reads the value second, so an
// update racing with a flush is either read now or flagged for the next
// flush; none is lost.

// gaugeMeta is the read-mostly second cache line of a gauge, padded so a
// gauge is exactly two lines: the allocator then aligns it to 128 bytes and
// no neighbour shares the value's line.
type gaugeMeta struct {
	changed atomic.Bool
	seriesBase
	_ [cacheLine - 8 - unsafe.Sizeof(seriesBase{})]byte
}

// Gauge is an integer gauge series (AWX's SetIntM). What is sent is its
// absolute value, as a float64: values beyond ±2^53 lose precision. Its
// methods are lock-free and safe from any goroutine.
type Gauge struct {
	v atomic.Int64
	_ [cacheLine - 8]byte
	gaugeMeta
}

// Set sets the value.
func (g *Gauge) Set(v int64) {
	g.v.Store(v)
	if !g.changed.Load() {
		g.changed.Store(true)
	}
}

// Add adds d, which may be negative.
func (g *Gauge) Add(d int64) {
	g.v.Add(d)
	if !g.changed.Load() {
		g.changed.Store(true)
	}
}

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Add(-1) }

func (g *Gauge) collect(fl *flusher) {
	if !(g.changed.Load() && g.changed.Swap(false)) && g.announced {
		return
	}
	g.announced = true
	fl.add(update{s: &g.seriesBase, value: float64(g.v.Load())})
}

// GaugeVec is an integer gauge with labels.
type GaugeVec struct {
	vec[Gauge, *Gauge]
}

func (v *GaugeVec) init(f *family) { v.vec.init(f, nil) }

// With returns the series for the label values; see CounterVec.With.
func (v *GaugeVec) With(labelValues ...string) (*Gauge, error) {
	return v.with(labelValues)
}

// MustWith is With that panics on error.
func (v *GaugeVec) MustWith(labelValues ...string) *Gauge {
	return must(v.with(labelValues))
}

// FloatGauge is a float gauge series (AWX's SetFloatM). Its methods are
// lock-free and safe from any goroutine.
type FloatGauge struct {
	bits atomic.Uint64
	_    [cacheLine - 8]byte
	gaugeMeta
}

// Set sets the value. The wire format has no NaN or infinity: such values
// are ignored and counted in Stats.Rejected.
func (g *FloatGauge) Set(v float64) {
	bits := math.Float64bits(v)
	if !finiteBits(bits) {
		g.fam.p.reject(true)
		return
	}
	g.bits.Store(bits)
	if !g.changed.Load() {
		g.changed.Store(true)
	}
}

// Add adds d, which may be negative; NaN and infinite values are ignored
// and counted in Stats.Rejected.
func (g *FloatGauge) Add(d float64) {
	if !finiteBits(math.Float64bits(d)) {
		g.fam.p.reject(true)
		return
	}
	addFloat(&g.bits, d)
	if !g.changed.Load() {
		g.changed.Store(true)
	}
}

func (g *FloatGauge) collect(fl *flusher) {
	if !(g.changed.Load() && g.changed.Swap(false)) && g.announced {
		return
	}
	g.announced = true
	fl.add(update{s: &g.seriesBase, value: math.Float64frombits(g.bits.Load())})
}

// FloatGaugeVec is a float gauge with labels.
type FloatGaugeVec struct {
	vec[FloatGauge, *FloatGauge]
}

func (v *FloatGaugeVec) init(f *family) { v.vec.init(f, nil) }

// With returns the series for the label values; see CounterVec.With.
func (v *FloatGaugeVec) With(labelValues ...string) (*FloatGauge, error) {
	return v.with(labelValues)
}

// MustWith is With that panics on error.
func (v *FloatGaugeVec) MustWith(labelValues ...string) *FloatGauge {
	return must(v.with(labelValues))
}
