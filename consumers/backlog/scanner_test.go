package backlog_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/consumers/backlog"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// syncBuffer is a log sink safe for the scanner's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

type rig struct {
	t     *testing.T
	js    jetstream.JetStream
	peers *aggregate.Peers
	cfg   streams.Config
}

func newRig(t *testing.T) *rig {
	js, cfg := harness.Streams(t)
	return &rig{t: t, js: js, peers: aggregate.NewPeers(harness.RedisClient(t, harness.Redis(t)), ""), cfg: cfg}
}

// publish publishes n deltas on subject and returns the last one's
// stream sequence.
func (r *rig) publish(subject string, n int) uint64 {
	r.t.Helper()
	var seq uint64
	for range n {
		ack, err := r.js.Publish(context.Background(), subject, []byte(`{"v":1}`))
		if err != nil {
			r.t.Fatal(err)
		}
		seq = ack.Sequence
	}
	return seq
}

func (r *rig) put(node string, version uint64) {
	r.t.Helper()
	now := time.Now()
	if _, err := r.peers.Put(context.Background(), aggregate.Snapshot{Node: node, Version: version, Generated: now, Expires: now.Add(time.Minute)}); err != nil {
		r.t.Fatal(err)
	}
}

// start runs a scanner until the test ends; it returns its registry and
// its log.
func (r *rig) start(maxNames int, applied ...func() (uint64, bool)) (*prometheus.Registry, *syncBuffer) {
	r.t.Helper()
	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	cfg := backlog.Config{Node: "n1", Streams: r.cfg, Interval: 50 * time.Millisecond, MaxNames: maxNames, Logger: zerolog.New(logs)}
	if len(applied) > 0 {
		cfg.Applied = applied[0]
	}
	s, err := backlog.New(cfg, r.js, r.peers, reg)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			r.t.Error(err)
		}
	})
	return reg, logs
}

// orphanSeries renders jetmetrics_orphan_deltas as "node/reason=value",
// sorted.
func orphanSeries(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		if f.GetName() != "jetmetrics_orphan_deltas" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out = append(out, fmt.Sprintf("%s/%s=%g", l["node"], l["reason"], m.GetGauge().GetValue()))
		}
	}
	return strings.Join(out, " ")
}

// waitScans waits until the scanner has completed n more scans.
func waitScans(t *testing.T, reg *prometheus.Registry, n float64) {
	t.Helper()
	scans := func() float64 {
		fams, _ := reg.Gather()
		for _, f := range fams {
			if f.GetName() == "jetmetrics_delta_scans_total" {
				for _, m := range f.GetMetric() {
					if m.GetLabel()[0].GetValue() == "ok" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	from := scans()
	harness.Eventually(t, 30*time.Second, func() error {
		if got := scans() - from; got < n {
			return fmt.Errorf("%g scans of %g", got, n)
		}
		return nil
	})
}

func TestOrphanDeltas(t *testing.T) {
	r := newRig(t)
	subj := r.cfg.Subjects()
	r.publish(subj.Delta("n1", "p1"), 3)                 // this node
	r.publish(subj.Delta("n2", "p1"), 2)                 // a live peer
	r.publish(subj.Delta("node-A", "p1"), 4)             // a typo
	r.publish(subj.Delta("node-A", "p2"), 1)             // the same typo, another producer
	r.publish(subj.Delta("n1", "p1")+".x", 2)            // an owner token whose producer id is not its
	r.publish(subj.OwnedDelta("n2", "p", "p-1")+".y", 1) // a token too many
	r.publish(subj.OwnedDelta("node-A", "p", "p-1"), 1)  // the typo, in the owned form
	r.publish(r.cfg.Prefix+".delta.n2", 1)               // the producer missing
	r.put("n3", r.publish(subj.Delta("n3", "p1"), 2))    // a peer that went down…
	if err := r.peers.Expire(context.Background(), "n3"); err != nil {
		t.Fatal(err)
	}
	r.publish(subj.Delta("n3", "p1"), 3) // …with three deltas after its last snapshot
	v4 := r.publish(subj.Delta("n4", "p1"), 2)
	r.put("n4", v4) // a peer that stopped gracefully, everything applied
	if _, err := r.peers.Remove(context.Background(), "n4", v4); err != nil {
		t.Fatal(err)
	}
	r.put("n2", 2)

	tests := []struct {
		name     string
		maxNames int
		want     string
	}{
		{"every name", 0, "n1/malformed_subject=2 n2/malformed_subject=2 n3/no_live_node=3 node-A/no_live_node=6"},
		{"names beyond the bound summed", 2, "*/malformed_subject=4 n3/no_live_node=3 node-A/no_live_node=6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg, logs := r.start(tc.maxNames)
			harness.Eventually(t, 30*time.Second, func() error {
				if got := orphanSeries(t, reg); got != tc.want {
					return fmt.Errorf("orphans %q, want %q", got, tc.want)
				}
				return nil
			})
			if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %+v", err, problems)
			}
			waitScans(t, reg, 3)
			for _, node := range []string{"node-A", "n3", "n1", "n2"} {
				if n := logs.count(`"delta_node":"` + node + `"`); n != 1 {
					t.Errorf("%d log lines for %s over several scans, want 1", n, node)
				}
			}
			if n := logs.count(`"delta_node":"n4"`); n != 0 {
				t.Errorf("%d log lines for n4, which applied its deltas before it stopped", n)
			}
		})
	}

	// A new name is logged once when it appears.
	reg, logs := r.start(0)
	waitScans(t, reg, 1)
	r.publish(subj.Delta("node-B", "p1"), 1)
	harness.Eventually(t, 30*time.Second, func() error {
		if n := logs.count(`"delta_node":"node-B"`); n != 1 {
			return fmt.Errorf("%d log lines for node-B", n)
		}
		return nil
	})
	waitScans(t, reg, 3)
	if n := logs.count(`"delta_node":"node-B"`); n != 1 {
		t.Errorf("%d log lines for node-B over several scans, want 1", n)
	}
}

// gauge is the value of an unlabelled gauge, or -1 when it is missing.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// This node's backlog counts the messages after the applied mark, which
// is what grows while applies stall.
func TestBacklog(t *testing.T) {
	r := newRig(t)
	subj := r.cfg.Subjects()
	first := r.publish(subj.Delta("n1", "p1"), 1)
	r.publish(subj.Delta("n2", "p1"), 3) // another node's, between
	last := r.publish(subj.Delta("n1", "p2"), 4)
	tests := []struct {
		name    string
		applied uint64
		known   bool
		want    float64
	}{
		{"caught up", last, true, 0},
		{"four behind", first, true, 4},
		{"nothing applied", 0, true, 5},
		{"mark not known yet", 0, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg, _ := r.start(0, func() (uint64, bool) { return tc.applied, tc.known })
			waitScans(t, reg, 2)
			if got := gauge(t, reg, "jetmetrics_delta_backlog_messages"); got != tc.want {
				t.Errorf("backlog %g, want %g", got, tc.want)
			}
		})
	}
}
