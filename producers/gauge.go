package producers

import (
	"math"
	"sync/atomic"
	"unsafe"
)

// A gauge keeps its absolute value on a cache line of its own, which an
// update writes with one atomic store or add and nothing else. The flush
// goroutine sends a gauge when its value differs from the one it sent
// last: an update racing with a flush is either read now or differs next
// time; none is lost. A value set and set back between two flushes is not
// sent again, as the aggregate already holds it.

// gaugeMeta is the flush goroutine's second cache line of a gauge, padded
// so a gauge is exactly two lines: the allocator then aligns it to 128
// bytes and no neighbour shares the value's line.
type gaugeMeta struct {
	sent uint64 // the value's bits as last sent; owned by the flush goroutine
	seriesBase
	_ [cacheLine - 8 - unsafe.Sizeof(seriesBase{})]byte
}

// collectBits sends a gauge's value, whose bits are bits, unless it was
// sent already.
func (m *gaugeMeta) collectBits(fl *flusher, bits uint64, value float64) {
	if bits == m.sent && m.announced {
		return
	}
	m.sent, m.announced = bits, true
	fl.add(update{s: &m.seriesBase, value: value})
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
func (g *Gauge) Set(v int64) { g.v.Store(v) }

// Add adds d, which may be negative.
func (g *Gauge) Add(d int64) { g.v.Add(d) }

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Add(-1) }

func (g *Gauge) collect(fl *flusher) {
	v := g.v.Load()
	g.collectBits(fl, uint64(v), float64(v))
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
}

// Add adds d, which may be negative; NaN and infinite values are ignored
// and counted in Stats.Rejected.
func (g *FloatGauge) Add(d float64) {
	if !finiteBits(math.Float64bits(d)) {
		g.fam.p.reject(true)
		return
	}
	addFloat(&g.bits, d)
}

func (g *FloatGauge) collect(fl *flusher) {
	bits := g.bits.Load()
	g.collectBits(fl, bits, math.Float64frombits(bits))
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
