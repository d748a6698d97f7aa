package latency

import (
	"slices"
	"time"
)

// Snapshot is a Tracker's statistics at one moment, ready for JSON.
// Latencies are in seconds. With Count 0 every latency field is 0; with an
// empty window the percentiles are 0.
type Snapshot struct {
	// Count is the number of latency samples, which is the number of
	// successes: every success carries one sample, a failure none.
	Count               uint64 `json:"count"`
	Successes           uint64 `json:"successes"`
	Failures            uint64 `json:"failures"`
	ConsecutiveFailures uint64 `json:"consecutive_failures"`

	// MeanSeconds is the running mean of all samples.
	MeanSeconds float64 `json:"mean_seconds"`
	// EWMASeconds is the time-decayed mean (Config.HalfLife).
	EWMASeconds float64 `json:"ewma_seconds"`
	MinSeconds  float64 `json:"min_seconds"`
	MaxSeconds  float64 `json:"max_seconds"`
	LastSeconds float64 `json:"last_seconds"`

	// P50Seconds, P90Seconds and P99Seconds are nearest-rank percentiles
	// of the window: the smallest sample with at least p% of the window
	// at or below it.
	P50Seconds float64 `json:"p50_seconds"`
	P90Seconds float64 `json:"p90_seconds"`
	P99Seconds float64 `json:"p99_seconds"`

	LastError   string    `json:"last_error,omitempty"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastFailure time.Time `json:"last_failure,omitzero"`

	WindowSize      int     `json:"window_size"`
	HalfLifeSeconds float64 `json:"half_life_seconds"`
	// SamplesSeconds is the window, oldest first.
	SamplesSeconds []float64 `json:"samples_seconds"`
}

// Snapshot returns the tracker's statistics.
func (t *Tracker) Snapshot() Snapshot {
	t.mu.Lock()
	s := &t.s
	snap := Snapshot{
		Count:               s.count,
		Successes:           s.count,
		Failures:            s.failures,
		ConsecutiveFailures: s.consec,
		MeanSeconds:         s.mean,
		EWMASeconds:         s.ewma,
		MinSeconds:          seconds(s.min),
		MaxSeconds:          seconds(s.max),
		LastSeconds:         seconds(s.last),
		LastError:           s.lastError,
		LastSuccess:         unixTime(s.lastSuccess),
		LastFailure:         unixTime(s.lastFailure),
		WindowSize:          len(s.window),
		HalfLifeSeconds:     seconds(s.halfLife),
	}
	window := s.samples(make([]time.Duration, 0, s.n))
	t.mu.Unlock()

	snap.SamplesSeconds = make([]float64, len(window))
	for i, d := range window {
		snap.SamplesSeconds[i] = seconds(d)
	}
	slices.Sort(window)
	snap.P50Seconds = seconds(nearestRank(window, 50))
	snap.P90Seconds = seconds(nearestRank(window, 90))
	snap.P99Seconds = seconds(nearestRank(window, 99))
	return snap
}

// nearestRank is the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the element of rank ⌈p·n/100⌉, counted from 1.
// Integer arithmetic keeps the rank exact (0.99·100 is not 99 in floating
// point).
func nearestRank(sorted []time.Duration, p int) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := (p*n + 99) / 100
	return sorted[max(rank, 1)-1]
}

// unixTime is the time of Unix nanoseconds ns, or the zero time for 0.
func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
