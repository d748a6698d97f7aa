package broadcast_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/jetmetrics/jetmetrics/consumers/broadcast"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// Every test stops the consumers it starts.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type rig struct {
	t     *testing.T
	js    jetstream.JetStream
	peers *aggregate.Peers
	reg   *prometheus.Registry
	subj  streams.Subjects
	sc    streams.Config
}

// start runs a broadcast consumer of node n1 with cfg's limits until the
// test ends.
func start(t *testing.T, cfg broadcast.Config) *rig {
	js, sc := harness.Streams(t)
	r := &rig{t: t, js: js, peers: aggregate.NewPeers(harness.RedisClient(t, harness.Redis(t)), ""), reg: prometheus.NewRegistry(), subj: sc.Subjects(), sc: sc}
	cfg.Node, cfg.Streams, cfg.Logger = "n1", sc, harness.Logger(t)
	c, err := broadcast.New(cfg, js, r.peers, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	harness.Eventually(t, 10*time.Second, func() error {
		if !c.Ready() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	return r
}

func (r *rig) publish(msg *nats.Msg) {
	r.t.Helper()
	if _, err := r.js.PublishMsg(context.Background(), msg); err != nil {
		r.t.Fatal(err)
	}
}

// snapshot is a valid snapshot message of node, on node's subject.
func (r *rig) snapshot(node string, ttl time.Duration) *nats.Msg {
	r.t.Helper()
	msg, err := streams.SnapshotMsg(r.subj.Snapshot(node), &aggregate.Dump{
		Node:   node,
		Marks:  map[string]string{"stream": "7"},
		Meta:   map[string]string{},
		Series: map[string]string{},
	}, time.Now(), ttl)
	if err != nil {
		r.t.Fatal(err)
	}
	return msg
}

// count is jetmetrics_broadcast_snapshots_total{result}.
func (r *rig) count(result string) float64 {
	r.t.Helper()
	fams, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "jetmetrics_broadcast_snapshots_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func (r *rig) listed(node string) bool {
	r.t.Helper()
	snaps, err := r.peers.List(context.Background(), false)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, s := range snaps {
		if s.Node == node {
			return true
		}
	}
	return false
}

// waitCount waits until result was counted want times.
func (r *rig) waitCount(result string, want float64) {
	r.t.Helper()
	harness.Eventually(r.t, 10*time.Second, func() error {
		if got := r.count(result); got != want {
			return fmt.Errorf("%s: %v, want %v", result, got, want)
		}
		return nil
	})
}

// A snapshot is taken only from the node its subject names (the subject is
// the publishing identity under NATS permissions): one whose headers or
// data name another node is refused and counted as forged, and the node
// it names is not listed.
func TestForgedSnapshotsRefused(t *testing.T) {
	tests := []struct {
		name  string
		forge func(r *rig) *nats.Msg
	}{
		{"headers name another node", func(r *rig) *nats.Msg {
			msg := r.snapshot("victim", time.Minute)
			msg.Subject = r.subj.Snapshot("mallory")
			return msg
		}},
		{"data names another node", func(r *rig) *nats.Msg {
			msg := r.snapshot("victim", time.Minute)
			msg.Subject = r.subj.Snapshot("mallory")
			msg.Header.Set(streams.HeaderSnapshotNode, "mallory")
			return msg
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, broadcast.Config{})
			r.publish(tc.forge(r))
			r.publish(r.snapshot("honest", time.Minute))
			r.waitCount(broadcast.ResultStored, 1)
			if got := r.count(broadcast.ResultForged); got != 1 {
				t.Errorf("forged: %v, want 1", got)
			}
			for _, n := range []string{"victim", "mallory"} {
				if r.listed(n) {
					t.Errorf("%s listed from a forged snapshot", n)
				}
			}
		})
	}
}

// A snapshot asking for a ten-year TTL is kept only the receiver's MaxTTL
// from its publication: a ghost disappears at the receiver's cap.
func TestSnapshotTTLCappedByReceiver(t *testing.T) {
	r := start(t, broadcast.Config{MaxTTL: 2 * time.Second})
	msg := r.snapshot("ghost", time.Minute)
	msg.Header.Set(streams.HeaderSnapshotTTL, strconv.FormatInt((10*365*24*time.Hour).Milliseconds(), 10))
	published := time.Now()
	r.publish(msg)
	r.waitCount(broadcast.ResultStored, 1)
	harness.Eventually(t, 10*time.Second, func() error {
		if r.listed("ghost") {
			return fmt.Errorf("ghost still listed %s after its publication", time.Since(published))
		}
		return nil
	})
	if gone := time.Since(published); gone < 2*time.Second {
		t.Errorf("ghost gone after %s, before the cap", gone)
	}
}

// bomb is a zstd stream of n zero bytes that does not declare its size,
// compressed as it is written, so neither side holds n bytes.
func bomb(t *testing.T, n int64) []byte {
	t.Helper()
	var out sliceWriter
	enc, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(zeros)) {
		if _, err := enc.Write(zeros[:min(left, int64(len(zeros)))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return out.b
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

var _ io.Writer = (*sliceWriter)(nil)

// A snapshot that decompresses to 1 GiB is refused as oversize once its
// output passes the receiver's limit: the process allocates a small part
// of the gigabyte, and the peer is not listed.
func TestSnapshotBombRefused(t *testing.T) {
	const limit = 8 << 20
	r := start(t, broadcast.Config{Limits: streams.SnapshotLimits{MaxBytes: limit}})
	data := bomb(t, 1<<30)
	t.Logf("bomb: %d bytes decompressing to 1 GiB", len(data))
	msg := r.snapshot("bomb", time.Minute)
	msg.Data = data

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r.publish(msg)
	r.waitCount(broadcast.ResultOversize, 1)
	runtime.ReadMemStats(&after)
	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d MiB while refusing it (heap in use %d -> %d MiB)", grew>>20, before.HeapInuse>>20, after.HeapInuse>>20)
	if grew > 16*limit {
		t.Errorf("allocated %d MiB refusing the bomb, want under %d MiB", grew>>20, 16*limit>>20)
	}
	if r.listed("bomb") {
		t.Error("bomb listed")
	}
}
