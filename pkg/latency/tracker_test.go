package latency_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/latency"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newTracker(t testing.TB, cfg latency.Config) *latency.Tracker {
	t.Helper()
	tr, err := latency.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func observe(t testing.TB, tr *latency.Tracker, at time.Time, d time.Duration) {
	t.Helper()
	if err := tr.Observe(at, d); err != nil {
		t.Fatal(err)
	}
}

func fail(t testing.TB, tr *latency.Tracker, at time.Time, reason string) {
	t.Helper()
	if err := tr.Fail(at, reason); err != nil {
		t.Fatal(err)
	}
}

// near compares computed floats with independently computed ones: the
// running mean and the EWMA round at each step.
func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.17g, want %.17g", what, got, want)
	}
}

// latencyFields is the part of a snapshot that only samples may change.
func latencyFields(s latency.Snapshot) latency.Snapshot {
	return latency.Snapshot{
		Count: s.Count, Successes: s.Successes, MeanSeconds: s.MeanSeconds, EWMASeconds: s.EWMASeconds,
		MinSeconds: s.MinSeconds, MaxSeconds: s.MaxSeconds, LastSeconds: s.LastSeconds,
		P50Seconds: s.P50Seconds, P90Seconds: s.P90Seconds, P99Seconds: s.P99Seconds,
		LastSuccess: s.LastSuccess, SamplesSeconds: s.SamplesSeconds,
	}
}

// TestSlowFailingHealthy follows a service that is slow, then fails, then
// is healthy again, every 10 s, and checks each statistic against what
// the samples say, computed independently of the tracker's recurrences.
func TestSlowFailingHealthy(t *testing.T) {
	const halfLife = 10 * time.Second
	tr := newTracker(t, latency.Config{Window: 5, HalfLife: halfLife})
	type sample struct {
		at time.Duration
		d  time.Duration
	}
	slow := []sample{{0, time.Second}, {10 * time.Second, 2 * time.Second}, {20 * time.Second, 4 * time.Second}}
	healthy := []sample{{50 * time.Second, 125 * time.Millisecond}, {60 * time.Second, 250 * time.Millisecond},
		{70 * time.Second, 125 * time.Millisecond}, {80 * time.Second, 500 * time.Millisecond}}

	for _, s := range slow {
		observe(t, tr, t0.Add(s.at), s.d)
	}
	before := tr.Snapshot()
	near(t, "mean after the slow phase", before.MeanSeconds, 7.0/3)

	fail(t, tr, t0.Add(30*time.Second), "connection refused")
	fail(t, tr, t0.Add(40*time.Second), "timeout after 5s")
	failing := tr.Snapshot()
	if got, want := latencyFields(failing), latencyFields(before); !equalJSON(got, want) {
		t.Errorf("failures changed latency statistics:\n got %+v\nwant %+v", got, want)
	}
	if failing.Failures != 2 || failing.ConsecutiveFailures != 2 || failing.LastError != "timeout after 5s" ||
		!failing.LastFailure.Equal(t0.Add(40*time.Second)) || failing.Count != 3 {
		t.Errorf("while failing: %+v", failing)
	}

	for _, s := range healthy {
		observe(t, tr, t0.Add(s.at), s.d)
	}
	got := tr.Snapshot()

	all := append(append([]sample{}, slow...), healthy...)
	var sum, wsum, wx float64
	last := all[len(all)-1].at
	for _, s := range all {
		sum += s.d.Seconds()
		w := math.Exp2(-float64(last-s.at) / float64(halfLife))
		wsum += w
		wx += w * s.d.Seconds()
	}
	if got.Count != 7 || got.Successes != 7 || got.Failures != 2 || got.ConsecutiveFailures != 0 {
		t.Errorf("counts: %+v", got)
	}
	near(t, "mean", got.MeanSeconds, sum/7) // 8/7
	near(t, "EWMA", got.EWMASeconds, wx/wsum)
	// The window of 5 holds 4 s, 125 ms, 250 ms, 125 ms, 500 ms; sorted
	// 0.125 0.125 0.25 0.5 4: ranks ⌈2.5⌉=3, ⌈4.5⌉=5, ⌈4.95⌉=5.
	wantSamples := []float64{4, 0.125, 0.25, 0.125, 0.5}
	if !equalJSON(got.SamplesSeconds, wantSamples) {
		t.Errorf("samples %v, want %v", got.SamplesSeconds, wantSamples)
	}
	for name, pair := range map[string][2]float64{
		"p50": {got.P50Seconds, 0.25}, "p90": {got.P90Seconds, 4}, "p99": {got.P99Seconds, 4},
		"min": {got.MinSeconds, 0.125}, "max": {got.MaxSeconds, 4}, "last": {got.LastSeconds, 0.5},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s = %g, want %g", name, pair[0], pair[1])
		}
	}
	if !got.LastSuccess.Equal(t0.Add(80*time.Second)) || !got.LastFailure.Equal(t0.Add(40*time.Second)) ||
		got.LastError != "timeout after 5s" {
		t.Errorf("times and error: %+v", got)
	}
	if got.WindowSize != 5 || got.HalfLifeSeconds != 10 {
		t.Errorf("config: window %d, half-life %g", got.WindowSize, got.HalfLifeSeconds)
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestEWMAHalfLife: a sample one half-life after the first weighs twice
// the first; samples at one instant are averaged; a sample far later
// replaces the EWMA; an out-of-order sample decays nothing.
func TestEWMAHalfLife(t *testing.T) {
	tr := newTracker(t, latency.Config{HalfLife: time.Minute})
	observe(t, tr, t0, 3*time.Second)
	observe(t, tr, t0.Add(time.Minute), 6*time.Second)
	near(t, "one half-life later", tr.Snapshot().EWMASeconds, (3*0.5+6)/1.5) // 5
	observe(t, tr, t0.Add(time.Minute), 2*time.Second)
	near(t, "same instant", tr.Snapshot().EWMASeconds, (3*0.5+6+2)/2.5)
	observe(t, tr, t0.Add(time.Minute-time.Second), 2*time.Second)
	near(t, "out of order", tr.Snapshot().EWMASeconds, (3*0.5+6+2+2)/3.5)
	if got := tr.Snapshot().LastSuccess; !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("an older sample moved the last success to %s", got)
	}
	observe(t, tr, t0.Add(24*365*time.Hour), 7*time.Second)
	near(t, "a year later", tr.Snapshot().EWMASeconds, 7)
}

// TestRejects: inputs that would put a negative, NaN or infinite value
// in a statistic are refused with an error naming the fix, and change
// nothing.
func TestRejects(t *testing.T) {
	tr := newTracker(t, latency.Config{})
	observe(t, tr, t0, time.Second)
	want := tr.Snapshot()
	for name, err := range map[string]error{
		"negative":       tr.Observe(t0, -time.Nanosecond),
		"zero time":      tr.Observe(time.Time{}, time.Second),
		"before 1970":    tr.Observe(time.Unix(-1, 0), time.Second),
		"after 2262":     tr.Observe(time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC), time.Second),
		"fail zero time": tr.Fail(time.Time{}, "x"),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := tr.Observe(t0, -1); !errors.Is(err, latency.ErrNegative) {
		t.Errorf("negative: %v, want ErrNegative", err)
	}
	if err := tr.Fail(time.Time{}, "x"); !errors.Is(err, latency.ErrTime) {
		t.Errorf("zero time: %v, want ErrTime", err)
	}
	if got := tr.Snapshot(); !equalJSON(got, want) {
		t.Errorf("rejected input changed the tracker:\n got %+v\nwant %+v", got, want)
	}
	// The largest duration stays finite everywhere.
	observe(t, tr, t0.Add(time.Second), math.MaxInt64)
	s := tr.Snapshot()
	for _, v := range []float64{s.MeanSeconds, s.EWMASeconds, s.MaxSeconds, s.P99Seconds} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("non-finite statistic in %+v", s)
		}
	}
}

func TestFailReason(t *testing.T) {
	tr := newTracker(t, latency.Config{})
	long := strings.Repeat("é", latency.MaxReasonBytes) // 2 bytes each
	fail(t, tr, t0, long)
	if got := tr.Snapshot().LastError; len(got) != latency.MaxReasonBytes || got != long[:latency.MaxReasonBytes] {
		t.Errorf("long reason kept as %d bytes", len(got))
	}
	fail(t, tr, t0, "x"+long) // the cut falls inside a rune
	if got := tr.Snapshot().LastError; len(got) != latency.MaxReasonBytes-1 || !strings.HasPrefix(got, "xé") {
		t.Errorf("cut inside a rune: %d bytes %q…", len(got), got[:3])
	}
	fail(t, tr, t0, "bad \xff byte")
	if got := tr.Snapshot().LastError; got != "bad \uFFFD byte" {
		t.Errorf("invalid UTF-8 kept as %q", got)
	}
}

func TestConfig(t *testing.T) {
	for _, cfg := range []latency.Config{{Window: -1}, {Window: latency.MaxWindow + 1}, {HalfLife: -time.Second}} {
		if _, err := latency.New(cfg); err == nil || !strings.Contains(err.Error(), "Config.") {
			t.Errorf("New(%+v): %v, want an error naming the field", cfg, err)
		}
	}
	if got := newTracker(t, latency.Config{}).Config(); got.Window != latency.DefaultWindow || got.HalfLife != latency.DefaultHalfLife {
		t.Errorf("defaults: %+v", got)
	}
}

// TestWindowWraps checks the ring and the nearest-rank percentiles over
// a full window of 1..100 ms after 250 samples.
func TestWindowWraps(t *testing.T) {
	tr := newTracker(t, latency.Config{})
	for i := range 250 {
		observe(t, tr, t0.Add(time.Duration(i)*time.Second), time.Duration(i%100+1)*time.Millisecond)
	}
	s := tr.Snapshot()
	if len(s.SamplesSeconds) != 100 || s.SamplesSeconds[0] != 0.051 || s.SamplesSeconds[99] != 0.05 {
		t.Fatalf("window %d samples, first %g, last %g", len(s.SamplesSeconds), s.SamplesSeconds[0], s.SamplesSeconds[99])
	}
	if s.P50Seconds != 0.05 || s.P90Seconds != 0.09 || s.P99Seconds != 0.099 || s.MinSeconds != 0.001 || s.MaxSeconds != 0.1 {
		t.Errorf("percentiles %g %g %g, min %g max %g", s.P50Seconds, s.P90Seconds, s.P99Seconds, s.MinSeconds, s.MaxSeconds)
	}
}

// TestConcurrent observes and fails from many goroutines while others
// snapshot and encode; under -race, and the totals must be exact.
func TestConcurrent(t *testing.T) {
	tr := newTracker(t, latency.Config{Window: 16})
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				at := t0.Add(time.Duration(i) * time.Millisecond)
				if i%5 == 0 {
					fail(t, tr, at, "refused")
				} else {
					observe(t, tr, at, time.Duration(w+1)*time.Millisecond)
				}
			}
		})
		wg.Go(func() {
			for range each / 10 {
				_ = tr.Snapshot()
				b, err := tr.MarshalBinary()
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := latency.Decode(b); err != nil {
					t.Errorf("a concurrent state does not decode: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := tr.Snapshot()
	if s.Count != workers*each*4/5 || s.Failures != workers*each/5 {
		t.Errorf("count %d failures %d, want %d and %d", s.Count, s.Failures, workers*each*4/5, workers*each/5)
	}
	if s.MinSeconds != 0.001 || s.MaxSeconds != 0.008 {
		t.Errorf("min %g max %g", s.MinSeconds, s.MaxSeconds)
	}
	near(t, "mean", s.MeanSeconds, 0.0045)
}

func TestObserveAllocatesNothing(t *testing.T) {
	tr := newTracker(t, latency.Config{})
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		_ = tr.Observe(t0.Add(time.Duration(i)*time.Second), time.Duration(i)*time.Microsecond)
	}); n != 0 {
		t.Errorf("Observe allocates %v times", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = tr.Fail(t0, "refused") }); n != 0 {
		t.Errorf("Fail allocates %v times", n)
	}
}

func TestSnapshotJSON(t *testing.T) {
	tr := newTracker(t, latency.Config{Window: 2})
	observe(t, tr, t0, 1500*time.Millisecond)
	b, err := json.Marshal(tr.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"count":1,"successes":1,"failures":0,"consecutive_failures":0,"mean_seconds":1.5,"ewma_seconds":1.5,` +
		`"min_seconds":1.5,"max_seconds":1.5,"last_seconds":1.5,"p50_seconds":1.5,"p90_seconds":1.5,"p99_seconds":1.5,` +
		`"last_success":"2025-03-01T12:00:00Z","window_size":2,"half_life_seconds":60,"samples_seconds":[1.5]}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
}
