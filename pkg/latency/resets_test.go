package latency_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/latency"
)

// syncBuffer is a log sink for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// TestResets: every unusable state is counted by service and reason,
// logged once per pair, and the consumer gets a fresh tracker to start
// from the current sample.
func TestResets(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	var logs syncBuffer
	r, err := latency.NewResets(reg, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	base := baseState(t)
	corrupt := append([]byte{}, base...)
	corrupt[offMean] ^= 1

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				tr, err := r.Restore("api", corrupt, latency.Config{})
				if err != nil || tr.Snapshot().Count != 0 {
					t.Errorf("Restore of a corrupt state: %v, %+v", err, tr.Snapshot())
				}
			}
		})
	}
	wg.Wait()
	if _, err := r.Restore("api", nil, latency.Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Restore("db", base[:10], latency.Config{}); err != nil {
		t.Fatal(err)
	}
	tr, err := r.Restore("db", base, latency.Config{Window: 4})
	if err != nil || tr.Snapshot().Count != 3 {
		t.Fatalf("Restore of a usable state: %v, %+v", err, tr.Snapshot())
	}
	r.Record("cache", errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"))
	r.Record("cache", nil)

	want := `
# HELP jetmetrics_latency_state_resets_total Service latency states found unusable (missing, truncated, malformed, version, checksum, inconsistent) and started again from the current sample, by service and reason.
# TYPE jetmetrics_latency_state_resets_total counter
jetmetrics_latency_state_resets_total{reason="checksum",service="api"} 20
jetmetrics_latency_state_resets_total{reason="malformed",service="cache"} 1
jetmetrics_latency_state_resets_total{reason="missing",service="api"} 1
jetmetrics_latency_state_resets_total{reason="truncated",service="db"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	lines := logs.lines()
	if len(lines) != 4 {
		t.Fatalf("%d log lines, want one per (service, reason):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if !strings.Contains(l, `"level":"warn"`) || !strings.Contains(l, `"service":`) || !strings.Contains(l, `"reason":`) {
			t.Errorf("log line %s", l)
		}
	}
}

func TestSet(t *testing.T) {
	set, err := latency.NewSet(latency.Config{Window: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Tracker(""); err == nil {
		t.Error("an empty service name was accepted")
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			tr, err := set.Tracker([]string{"api", "db"}[i%2])
			if err != nil {
				t.Error(err)
				return
			}
			observe(t, tr, t0, time.Millisecond)
		})
	}
	wg.Wait()
	api, _ := set.Lookup("api")
	if got := api.Snapshot(); got.Count != 4 || got.WindowSize != 3 {
		t.Errorf("api: %+v", got)
	}
	restored, _, _ := latency.Restore(baseState(t), latency.Config{})
	if err := set.Put("api", restored); err != nil {
		t.Fatal(err)
	}
	if tr, ok := set.Lookup("api"); !ok || tr != restored {
		t.Error("Put did not replace the tracker")
	}
	set.Delete("db")
	if got := set.Services(); !equalJSON(got, []string{"api"}) {
		t.Errorf("services %v", got)
	}
	if _, ok := set.Lookup("db"); ok {
		t.Error("a deleted service is still there")
	}
}
