package producers

import (
	"math"
	"runtime"
	"sync/atomic"
)

// linearSearchMax is the bucket count up to which Observe scans linearly;
// beyond it a binary search is faster.
const linearSearchMax = 8

// Histogram is a histogram series with the buckets fixed at registration.
// Observe is lock-free and safe from any goroutine.
//
// Observations go to one of two buffers, the hot one. A flush flips the
// hot buffer, waits for the observations already under way in the old one
// to finish, and takes it whole: an observation's bucket and its share of
// the sum always travel in the same batch, so readers never see count and
// sum out of step. The count sent is the sum of the bucket counts.
//
// An observation adds to the sum first and counts itself in its bucket
// last, so the bucket counts also say how many have finished: three atomic
// operations each, where a separate finished count would be a fourth on a
// line every core contends for.
type Histogram struct {
	// state holds the hot buffer's index in its top bit and, below it, how
	// many observations have started in that buffer since it became hot.
	state atomic.Uint64
	bufs  [2]histBuf
	upper []float64
	seriesBase
	// scratch receives the swapped-out counts; owned by the flusher.
	scratch []uint64
}

// histBuf is one buffer of a histogram.
type histBuf struct {
	sum    atomic.Uint64
	counts []atomic.Uint64 // one per bucket plus +Inf; not cumulative
}

const hotBit = 1 << 63

// Observe records v in the first bucket whose upper bound is ≥ v. NaN and
// infinite values have no place in the sum the wire carries: they are
// ignored and counted in Stats.Rejected.
func (h *Histogram) Observe(v float64) {
	if !finiteBits(math.Float64bits(v)) {
		h.fam.p.reject(true)
		return
	}
	n := h.state.Add(1)
	b := &h.bufs[n>>63]
	addFloat(&b.sum, v)
	b.counts[h.bucket(v)].Add(1) // last: the observation is finished
}

// finished is how many observations have finished in b: each counts
// itself in its bucket as its last step.
func (b *histBuf) finished() uint64 {
	var n uint64
	for i := range b.counts {
		n += b.counts[i].Load()
	}
	return n
}

func (h *Histogram) bucket(v float64) int {
	u := h.upper
	if len(u) <= linearSearchMax {
		for i, ub := range u {
			if v <= ub {
				return i
			}
		}
		return len(u)
	}
	lo, hi := 0, len(u)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if u[mid] < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func (h *Histogram) collect(fl *flusher) {
	// Only the flusher flips, so the hot bit cannot change between the
	// load and the swap; every observation counted in n is in the old
	// buffer, every later one in the new.
	old := h.state.Load() & hotBit
	n := h.state.Swap(old ^ hotBit)
	started := n &^ hotBit
	b := &h.bufs[n>>63]
	for b.finished() != started {
		runtime.Gosched() // an Observe between its first and last atomic
	}
	// Every observation counted in started is finished, and later ones go
	// to the other buffer: nothing writes this one until the next flip.
	for i := range b.counts {
		h.scratch[i] = b.counts[i].Load()
		b.counts[i].Store(0)
	}
	sum := b.sum.Load()
	b.sum.Store(0)
	if started == 0 && h.announced {
		return
	}
	h.announced = true
	fl.add(update{s: &h.seriesBase, counts: h.scratch, sum: math.Float64frombits(sum)})
}

// HistogramVec is a histogram with labels.
type HistogramVec struct {
	vec[Histogram, *Histogram]
}

func (v *HistogramVec) init(f *family) {
	v.vec.init(f, func(h *Histogram) {
		h.upper = f.buckets
		// Rounded up to whole cache lines, which the allocator aligns, so
		// no other series shares the counts' lines.
		n := len(f.buckets) + 1
		for i := range h.bufs {
			h.bufs[i].counts = make([]atomic.Uint64, n, (n+7)&^7)
		}
		h.scratch = make([]uint64, len(f.buckets)+1)
	})
}

// With returns the series for the label values; see CounterVec.With.
func (v *HistogramVec) With(labelValues ...string) (*Histogram, error) {
	return v.with(labelValues)
}

// MustWith is With that panics on error.
func (v *HistogramVec) MustWith(labelValues ...string) *Histogram {
	return must(v.with(labelValues))
}
