package latency_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/pkg/latency"
)

// benchSamples is the one stream of samples every BenchmarkTrackerObserve
// variant takes: log-normal-ish latencies around 20 ms, a check every
// 10 s.
var benchSamples, benchSeconds = func() ([]time.Duration, []float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := make([]time.Duration, 1024)
	s := make([]float64, len(d))
	for i := range d {
		d[i] = time.Duration(float64(20*time.Millisecond) * (0.25 + rng.ExpFloat64()))
		s[i] = d[i].Seconds()
	}
	return d, s
}()

// BenchmarkTrackerObserve is the Tracker's Observe (…/jetmetrics) beside
// client_golang's Histogram.Observe (…/histogram: default buckets) and
// Summary.Observe (…/summary: the same p50/p90/p99 the tracker keeps),
// over the same samples. tests/bench reads the ratios.
func BenchmarkTrackerObserve(b *testing.B) {
	b.Run("jetmetrics", func(b *testing.B) {
		tr := newTracker(b, latency.Config{})
		b.ReportAllocs()
		i, at := 0, t0
		for b.Loop() {
			// Time moves on at every sample, so every step decays the
			// EWMA (a sample at the same instant would skip that).
			at = at.Add(10 * time.Second)
			_ = tr.Observe(at, benchSamples[i%len(benchSamples)])
			i++
		}
	})
	b.Run("histogram", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h"})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h.Observe(benchSeconds[i%len(benchSeconds)])
			i++
		}
	})
	b.Run("summary", func(b *testing.B) {
		s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "s", Help: "s",
			Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s.Observe(benchSeconds[i%len(benchSeconds)])
			i++
		}
	})
}
