package producers_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/latency"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
)

const (
	latKey     = "jetmetrics_service_latency_seconds,service="
	successKey = "jetmetrics_service_checks_total,result=success,service="
	failureKey = "jetmetrics_service_checks_total,result=failure,service="
)

// bucketOf is the index of the service latency bucket seconds falls in.
func bucketOf(seconds float64) int {
	for i, ub := range streams.ServiceLatencyBuckets() {
		if seconds <= ub {
			return i
		}
	}
	return len(streams.ServiceLatencyBuckets())
}

// TestServiceLatencyExact: many goroutines observe known samples and fail
// known calls on one handle; the stream carries exactly the histogram and
// the counts the samples make, and the in-memory tracker agrees.
func TestServiceLatencyExact(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: 5 * time.Millisecond})
	// Multiples of 1/512 s are whole nanoseconds and exact in binary, so
	// the sum is exact in any order. One per bucket region, and past the
	// last bound.
	samples := []time.Duration{
		0,
		time.Second / 512,     // 1.953125 ms
		time.Second / 64,      // 15.625 ms
		time.Second / 8,       // 125 ms
		time.Second,           // 1 s, a bound itself
		256 * time.Second,     // past 128 s: +Inf
		3 * time.Second / 512, // 5.859375 ms
	}
	const goroutines, iterations, failEvery = 8, 700, 5
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each goroutine looks the handle up itself: one per service.
			lat, err := p.Latency("payments-api")
			if err != nil {
				t.Error(err)
				return
			}
			for i := range iterations {
				if i%failEvery == failEvery-1 {
					lat.Fail(errors.New("connection refused"))
					continue
				}
				lat.Observe(samples[i%len(samples)])
			}
		}()
	}
	wg.Wait()
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	wantCounts := make([]uint64, len(streams.ServiceLatencyBuckets())+1)
	var wantSum float64
	var successes, failures uint64
	for i := range iterations {
		if i%failEvery == failEvery-1 {
			failures += goroutines
			continue
		}
		s := samples[i%len(samples)].Seconds()
		wantCounts[bucketOf(s)] += goroutines
		wantSum += goroutines * s
		successes += goroutines
	}
	a := aggregateAll(t, readAll(t, e.stream))
	if got := a.hcounts[latKey+"payments-api"]; !slices.Equal(got, wantCounts) {
		t.Errorf("bucket counts %v, want %v", got, wantCounts)
	}
	if got := a.hsums[latKey+"payments-api"]; got != wantSum {
		t.Errorf("sum %v, want %v", got, wantSum)
	}
	if got := a.counters[successKey+"payments-api"]; got != float64(successes) {
		t.Errorf("successes %v, want %d", got, successes)
	}
	if got := a.counters[failureKey+"payments-api"]; got != float64(failures) {
		t.Errorf("failures %v, want %d", got, failures)
	}
	if a.help[streams.ServiceLatencyName] != streams.ServiceLatencyHelp || a.help[streams.ServiceChecksName] != streams.ServiceChecksHelp {
		t.Errorf("help %q", a.help)
	}

	lat, err := p.Latency("payments-api")
	if err != nil {
		t.Fatal(err)
	}
	snap := lat.Snapshot()
	if snap.Count != successes || snap.Successes != successes || snap.Failures != failures {
		t.Errorf("snapshot count %d successes %d failures %d, want %d, %d, %d", snap.Count, snap.Successes, snap.Failures, successes, successes, failures)
	}
	if snap.MinSeconds != 0 || snap.MaxSeconds != 256 || snap.LastError != "connection refused" {
		t.Errorf("snapshot min %v max %v last error %q", snap.MinSeconds, snap.MaxSeconds, snap.LastError)
	}
}

// TestServiceLatencyFailuresAreNoLatency: failures count as failures and
// leave the histogram and the latency statistics alone.
func TestServiceLatencyFailuresAreNoLatency(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	lat, err := p.Latency("ledger")
	if err != nil {
		t.Fatal(err)
	}
	lat.Fail(errors.New("context deadline exceeded"))
	lat.Fail(nil)
	lat.Fail(fmt.Errorf("dial: %w", errors.New("no route to host")))
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	a := aggregateAll(t, readAll(t, e.stream))
	// Announced, so the series exist on the nodes, but empty.
	counts, ok := a.hcounts[latKey+"ledger"]
	if !ok || slices.Max(counts) != 0 || a.hsums[latKey+"ledger"] != 0 {
		t.Errorf("histogram present %v counts %v sum %v, want announced and empty", ok, counts, a.hsums[latKey+"ledger"])
	}
	if got, ok := a.counters[successKey+"ledger"]; !ok || got != 0 {
		t.Errorf("successes %v (present %v), want 0", got, ok)
	}
	if got := a.counters[failureKey+"ledger"]; got != 3 {
		t.Errorf("failures %v, want 3", got)
	}
	snap := lat.Snapshot()
	if snap.Count != 0 || snap.Failures != 3 || snap.ConsecutiveFailures != 3 || snap.MeanSeconds != 0 || snap.MaxSeconds != 0 || len(snap.SamplesSeconds) != 0 {
		t.Errorf("snapshot %+v", snap)
	}
	if snap.LastError != "dial: no route to host" {
		t.Errorf("last error %q", snap.LastError)
	}
	// The error's text is never sent.
	for _, m := range readAll(t, e.stream) {
		for _, metric := range m.batch.Metrics {
			for _, v := range metric.Labels {
				if strings.Contains(v, "route") || strings.Contains(v, "deadline") {
					t.Errorf("error text in a label: %v", metric.Labels)
				}
			}
		}
	}
}

// TestServiceLatencyBucketBounds: a latency at a bound (the whole
// nanoseconds at or just below it: most bounds are irrational) falls in
// that bound's bucket (le is inclusive), one nanosecond more in the next.
func TestServiceLatencyBucketBounds(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	lat, err := p.Latency("bounds")
	if err != nil {
		t.Fatal(err)
	}
	bounds := streams.ServiceLatencyBuckets()
	want := make([]uint64, len(bounds)+1)
	for i, ub := range bounds {
		d := time.Duration(ub * 1e9)
		lat.Observe(d)
		lat.Observe(d + 1)
		want[i]++
		want[i+1]++
	}
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	a := aggregateAll(t, readAll(t, e.stream))
	if got := a.hcounts[latKey+"bounds"]; !slices.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
}

// TestServiceLatencyTime: Time observes a nil error's duration and fails
// an error, returning it.
func TestServiceLatencyTime(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	lat, err := p.Latency("search")
	if err != nil {
		t.Fatal(err)
	}
	if err := lat.Time(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("503 from search")
	if err := lat.Time(func() error { return boom }); err != boom {
		t.Fatalf("Time returned %v, want f's error", err)
	}
	if s := lat.Snapshot(); s.Count != 1 || s.Failures != 1 || s.LastError != boom.Error() {
		t.Errorf("snapshot %+v", s)
	}
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	a := aggregateAll(t, readAll(t, e.stream))
	if a.counters[successKey+"search"] != 1 || a.counters[failureKey+"search"] != 1 || slices.Max(a.hcounts[latKey+"search"]) != 1 {
		t.Errorf("aggregate %+v", a)
	}
}

// TestServiceLatencyRefusals: a bad service name is an error naming the
// fault, never a panic; a negative duration is rejected and recorded
// nowhere; the families' names are the SDK's alone; the tracker's config
// is validated.
func TestServiceLatencyRefusals(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	for name, service := range map[string]string{
		"empty":    "",
		"too long": strings.Repeat("s", 300),
		"not utf8": "pay\xffments",
	} {
		_, err := p.Latency(service)
		if !errors.Is(err, producers.ErrServiceName) || !strings.Contains(err.Error(), "service") {
			t.Errorf("%s: error %v, want ErrServiceName naming the service", name, err)
		}
	}
	a, err := p.Latency("same")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := p.Latency("same"); a != b {
		t.Error("a second Latency for one service made a second handle")
	}
	if a.Service() != "same" {
		t.Errorf("Service() = %q", a.Service())
	}
	a.Observe(-time.Millisecond)
	if s := a.Snapshot(); s.Count != 0 || p.Stats().Rejected != 1 {
		t.Errorf("negative duration: snapshot count %d, rejected %d", s.Count, p.Stats().Rejected)
	}

	if _, err := p.NewHistogramVec(producers.HistogramOpts{Name: streams.ServiceLatencyName, Buckets: streams.ServiceLatencyBuckets()}, "service"); !errors.Is(err, producers.ErrReservedName) {
		t.Errorf("NewHistogramVec(%s): %v, want ErrReservedName", streams.ServiceLatencyName, err)
	}
	if _, err := p.NewCounterVec(producers.Opts{Name: streams.ServiceChecksName}, "service", "result"); !errors.Is(err, producers.ErrReservedName) {
		t.Errorf("NewCounterVec(%s): %v, want ErrReservedName", streams.ServiceChecksName, err)
	}

	_, err = producers.New(producers.Config{Node: "n", Name: "x", Latency: latency.Config{Window: -1}}, e.nc)
	if err == nil || !strings.Contains(err.Error(), "Latency") {
		t.Errorf("New with a negative latency window: %v, want an error naming Latency", err)
	}
}

// TestServiceLatencyConfig: the trackers take Config.Latency.
func TestServiceLatencyConfig(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour, Latency: latency.Config{Window: 3, HalfLife: time.Second}})
	lat, err := p.Latency("small")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		lat.Observe(time.Duration(i+1) * time.Millisecond)
	}
	s := lat.Snapshot()
	if s.WindowSize != 3 || s.HalfLifeSeconds != 1 || !slices.Equal(s.SamplesSeconds, []float64{0.003, 0.004, 0.005}) {
		t.Errorf("snapshot window %d half-life %v samples %v", s.WindowSize, s.HalfLifeSeconds, s.SamplesSeconds)
	}
}
