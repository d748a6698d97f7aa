package main

import (
	"fmt"
	"math"
	"slices"
)

// trackerPackage holds BenchmarkTrackerObserve: the latency Tracker's
// Observe (…/jetmetrics) beside client_golang's Histogram.Observe
// (…/histogram) and Summary.Observe with the tracker's p50/p90/p99
// (…/summary), over one stream of samples.
const trackerPackage = "./pkg/latency/"

// trackerRows compares the tracker's Observe with each peer from the
// same run, and returns the tracker's worst allocations per operation.
// A missing result is an error unless the output came from a file
// (older saved output has none).
func trackerRows(res map[string]*benchResult, fromFile bool) ([]row, float64, error) {
	ours := res["BenchmarkTrackerObserve/jetmetrics"]
	if ours == nil {
		if fromFile {
			return nil, math.NaN(), nil
		}
		return nil, math.NaN(), fmt.Errorf("hot path: no BenchmarkTrackerObserve in the output of %s", trackerPackage)
	}
	allocs := slices.Max(ours.allocs)
	var rows []row
	for _, peer := range []struct {
		name, label string
		target      float64
	}{
		{"histogram", "Histogram.Observe", 2},
		{"summary", "Summary.Observe (p50/p90/p99)", 1},
	} {
		p := res["BenchmarkTrackerObserve/"+peer.name]
		if p == nil {
			return nil, allocs, fmt.Errorf("hot path: no BenchmarkTrackerObserve/%s in the output of %s", peer.name, trackerPackage)
		}
		note := fmt.Sprintf("peer client_golang %s; best of %d interleaved runs (median %.3g vs %.3g); %.0f allocs/op (peer %.0f)",
			peer.label, len(ours.nsPerOp), median(ours.nsPerOp), median(p.nsPerOp), allocs, slices.Max(p.allocs))
		rows = append(rows, newRow("hot path: latency Tracker.Observe vs "+peer.name, "ns/op", best(ours.nsPerOp), best(p.nsPerOp),
			goal{kind: ratioAtMost, value: peer.target}, note))
	}
	return rows, allocs, nil
}
