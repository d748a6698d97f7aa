package latency_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	cl "github.com/jetmetrics/jetmetrics/consumers/latency"
	"github.com/jetmetrics/jetmetrics/pkg/latency"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// A result is folded once: the same sequence again, or an earlier one, is
// skipped, by this writer or by a second writer sharing the Redis (a
// replay after a restart, or another node); a later one is folded. A
// sequence that is not a number is a reset, and the fold goes on.
func TestFoldOnce(t *testing.T) {
	rdb := harness.RedisClient(t, harness.Redis(t))
	store := cl.NewStore(rdb, "jm")
	writer := func() *cl.Writer {
		resets, err := latency.NewResets(prometheus.NewRegistry(), harness.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		w, err := cl.New(cl.Config{Node: "n1", Services: []string{"s"}}, nil, store, resets, harness.Logger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	a, b := writer(), writer()
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	ok := func(ms int, i int) streams.ProbeResult {
		return streams.ProbeResult{Version: 1, Service: "s", Success: true, Latency: time.Duration(ms) * time.Millisecond,
			ObservedAt: at.Add(time.Duration(i) * time.Second), Node: "n1", LeaseRevision: 1}
	}
	for _, c := range []struct {
		w    *cl.Writer
		seq  uint64
		r    streams.ProbeResult
		want bool
	}{
		{a, 5, ok(10, 0), true},
		{a, 5, ok(10, 0), false},
		{b, 5, ok(10, 0), false},
		{b, 3, ok(99, 0), false},
		{b, 9, ok(30, 1), true},
		{a, 9, ok(30, 1), false},
	} {
		got, err := c.w.Fold(t.Context(), c.seq, c.r)
		if err != nil || got != c.want {
			t.Fatalf("fold %d: %v %v, want %v", c.seq, got, err, c.want)
		}
	}
	tr, e, err := cl.Lookup(t.Context(), store, "s")
	if err != nil || tr == nil || e.Seq != 9 {
		t.Fatalf("%v %+v %v", tr, e, err)
	}
	if s := tr.Snapshot(); s.Count != 2 || s.MeanSeconds != 0.02 || s.MinSeconds != 0.01 || s.MaxSeconds != 0.03 {
		t.Errorf("state %+v", s)
	}

	tok, _ := streams.TargetToken("s")
	if err := rdb.HSet(t.Context(), store.Key(tok), "seq", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Fold(t.Context(), 10, ok(50, 2)); err != nil || !got {
		t.Fatalf("after a bad seq: %v %v", got, err)
	}
	tr, e, _ = cl.Lookup(t.Context(), store, "s")
	if s := tr.Snapshot(); e.Seq != 10 || s.Count != 1 || s.MeanSeconds != 0.05 {
		t.Errorf("after the reset: seq %d %+v", e.Seq, s)
	}
}
