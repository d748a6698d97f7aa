package main

import (
	"strings"
	"testing"
)

// TestTrackerRows reads the tracker's benchmark lines into two rows with
// their targets, the best run of each, and the tracker's allocations.
func TestTrackerRows(t *testing.T) {
	const out = `
BenchmarkTrackerObserve/jetmetrics-2         	 4972483	        53.84 ns/op	       0 B/op	       0 allocs/op
BenchmarkTrackerObserve/histogram-2          	 7257986	        33.12 ns/op	       0 B/op	       0 allocs/op
BenchmarkTrackerObserve/summary-2            	  361105	       634.6 ns/op	       0 B/op	       0 allocs/op
BenchmarkTrackerObserve/jetmetrics-2         	 4972483	        50.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkTrackerObserve/histogram-2          	 7257986	        30.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkTrackerObserve/summary-2            	  361105	       500.0 ns/op	       0 B/op	       0 allocs/op
`
	res, err := parseBenchOutput(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	rows, allocs, err := trackerRows(res, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || allocs != 0 {
		t.Fatalf("%d rows, %v allocs", len(rows), allocs)
	}
	for i, want := range []struct {
		target      string
		ours, ratio float64
	}{{"≤ 2×", 50, 50.0 / 30}, {"≤ 1×", 50, 50.0 / 500}} {
		r := rows[i]
		if r.Target != want.target || r.Ours != want.ours || r.Ratio != want.ratio || !strings.Contains(r.Figure, "Tracker.Observe") {
			t.Errorf("row %d: %+v", i, r)
		}
	}
	if _, _, err := trackerRows(map[string]*benchResult{}, false); err == nil {
		t.Error("a run without the tracker's benchmarks passed")
	}
	if rows, _, err := trackerRows(map[string]*benchResult{}, true); err != nil || len(rows) != 0 {
		t.Errorf("saved output without them: %v, %d rows", err, len(rows))
	}
}
