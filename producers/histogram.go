package producers

import (
	"math"
	"sync/atomic"
)

// linearSearchMax is the bucket count up to which Observe scans linearly;
// beyond it a binary search is faster.
const linearSearchMax = 8

// Histogram is a histogram series with the buckets fixed at registration.
// Observe is lock-free and safe from any goroutine.
//
// Each bucket count and the sum are swapped out separately at flush. The
// observation count sent is the sum of the bucket counts, so buckets and
// count always agree; an Observe racing with a flush may have its bucket in
// one batch and its share of the sum in the next, never lost or counted
// twice.
type Histogram struct {
	sum    atomic.Uint64
	upper  []float64
	counts []atomic.Uint64 // one per bucket plus +Inf; not cumulative
	seriesBase
	// scratch receives the swapped-out counts; owned by the flusher.
	scratch []uint64
}

// Observe records v in the first bucket whose upper bound is ≥ v. NaN and
// infinite values have no place in the sum the wire carries: they are
// ignored and counted in Stats.Rejected.
func (h *Histogram) Observe(v float64) {
	if !finiteBits(math.Float64bits(v)) {
		h.fam.p.reject(true)
		return
	}
	h.counts[h.bucket(v)].Add(1)
	addFloat(&h.sum, v)
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
	seen := false
	for i := range h.counts {
		var n uint64
		if h.counts[i].Load() != 0 {
			n = h.counts[i].Swap(0)
			seen = true
		}
		h.scratch[i] = n
	}
	var sum uint64
	if h.sum.Load() != 0 {
		sum = h.sum.Swap(0)
	}
	if !seen && sum == 0 && h.announced {
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
		h.counts = make([]atomic.Uint64, n, (n+7)&^7)
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
