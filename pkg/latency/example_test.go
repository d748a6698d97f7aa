package latency_test

import (
	"fmt"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/latency"
)

// A process times its calls to another service; a failed call is counted,
// not recorded as a latency.
func Example() {
	set, err := latency.NewSet(latency.Config{Window: 10, HalfLife: time.Minute})
	if err != nil {
		panic(err)
	}
	billing, _ := set.Tracker("billing")
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	_ = billing.Observe(start, 200*time.Millisecond)
	_ = billing.Fail(start.Add(time.Second), "dial tcp 127.0.0.1:8443: connection refused")
	_ = billing.Observe(start.Add(2*time.Second), 100*time.Millisecond)

	s := billing.Snapshot()
	fmt.Printf("count %d, failures %d, mean %.2fs, max %.1fs, p50 %.1fs\n",
		s.Count, s.Failures, s.MeanSeconds, s.MaxSeconds, s.P50Seconds)
	// Output: count 2, failures 1, mean 0.15s, max 0.2s, p50 0.1s
}

// A consumer restores a service's stored state, or starts afresh and says
// why when the state is unusable.
func ExampleRestore() {
	stored := []byte(`{"average": 0.1, "count": 3}`) // not a tracker's state
	tr, reason, err := latency.Restore(stored, latency.Config{})
	if err != nil {
		panic(err)
	}
	_ = tr.Observe(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), 50*time.Millisecond)
	fmt.Println(reason, tr.Snapshot().Count)
	// Output: malformed 1
}
