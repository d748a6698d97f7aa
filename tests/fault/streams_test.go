package fault_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/consumers/snapshot"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// deleteStream deletes one of the node's streams, as an operator (or an
// attacker with admin rights) would.
func deleteStream(t testing.TB, js jetstream.JetStream, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatalf("delete stream %s: %v", name, err)
	}
	t.Logf("deleted stream %s", name)
}

// processMetric reads one sample of the node's own metrics on /metrics.
func processMetric(t testing.TB, url, sample string) float64 {
	t.Helper()
	var v float64
	harness.Eventually(t, settleTimeout, func() error {
		fams, err := harness.Scrape(url + "/metrics")
		if err != nil {
			return err
		}
		got, ok := harness.Samples(fams)[sample]
		if !ok {
			return fmt.Errorf("/metrics has no %s", sample)
		}
		v = got
		return nil
	})
	return v
}

// waitMetric waits until sample on /metrics reaches at least want.
func waitMetric(t testing.TB, url, sample string, want float64) {
	t.Helper()
	harness.Eventually(t, settleTimeout, func() error {
		fams, err := harness.Scrape(url + "/metrics")
		if err != nil {
			return err
		}
		if got := harness.Samples(fams)[sample]; got < want {
			return fmt.Errorf("%s = %v, want at least %v", sample, got, want)
		}
		return nil
	})
}

// publishSome acknowledges n batches of p, each adding 1 to
// fault_stream_total{p=<id>} and i to fault_stream_sum_total.
func publishSome(ctx context.Context, p *publisher, n int) {
	for i := range n {
		p.ack(ctx, p.cut(counter("fault_stream_total", 1, "p", p.id), counter("fault_stream_sum_total", float64(i+1))))
	}
}

// TestDeadLetterStreamDeleted: JETMETRICS_DLQ deleted under a running node.
// A bad batch published afterwards must not stall the aggregator (its dead
// letter failing for good): the node recreates the DLQ, the dead letter
// lands in it, the good batches after it apply exactly, and the
// recreation is counted.
func TestDeadLetterStreamDeleted(t *testing.T) {
	n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}), node.Config{})
	led := newLedger()
	p := newPublisher(t, led, n.dial(), nodeName, "dlq")
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	publishSome(ctx, p, 5)
	settle(t, n.js, n.rdb)

	deleteStream(t, n.js, streams.Config{}.DeadLetterStream())
	bad := p.raw(ctx, "", []byte("not a batch"), "")
	publishSome(ctx, p, 5)
	n.checkExposed(led)

	got, err := deadLetters(ctx, n.js)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].seq != bad.Sequence || got[0].reason != string(streams.ReasonUndecodable) {
		t.Fatalf("dead letters %+v, want one for stream seq %d (undecodable)", got, bad.Sequence)
	}
	if v := processMetric(t, n.rn.URL, `jetmetrics_aggregator_streams_recreated_total{stream="JETMETRICS_DLQ"}`); v != 1 {
		t.Errorf("DLQ recreations counted %v, want 1", v)
	}
}

// TestSnapshotStreamDeleted: JETMETRICS_SNAP deleted under a running node.
// The publisher recreates it and writes a checkpoint at once (not a
// minute later), and the broadcast consumer reads the new stream from its
// start: it stores the node's snapshots again. Before the deletion the
// stream's sequences are pushed far ahead, so a broadcast consumer that
// resumed the new stream after its old position would wait for good.
func TestSnapshotStreamDeleted(t *testing.T) {
	n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}), node.Config{})
	led := newLedger()
	nc := n.dial()
	p := newPublisher(t, led, nc, nodeName, "snap")
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	publishSome(ctx, p, 3)
	settle(t, n.js, n.rdb)

	// Junk on a checkpoint subject, which the broadcast consumer does not
	// read; the node's next snapshot takes its position past it.
	subj := streams.Subjects{}.Checkpoint("junk")
	for i := range 3000 {
		m := nats.NewMsg(subj)
		m.Data = []byte("junk")
		if _, err := n.js.PublishMsgAsync(m); err != nil {
			t.Fatalf("junk %d: %v", i, err)
		}
	}
	select {
	case <-n.js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("junk not acknowledged")
	}
	stored := `jetmetrics_broadcast_snapshots_total{result="stored"}`
	waitMetric(t, n.rn.URL, stored, processMetric(t, n.rn.URL, stored)+2)

	// What the deleted stream's checkpoint covered: the one written into
	// the recreated stream at once covers at least that.
	mark := n.mark()
	deleteStream(t, n.js, streams.Config{}.SnapshotStream())
	storedBefore := processMetric(t, n.rn.URL, stored)
	publishSome(ctx, p, 3)
	settle(t, n.js, n.rdb)
	// The broadcast consumer reads the recreated stream: it stores the
	// node's snapshots again.
	waitMetric(t, n.rn.URL, stored, storedBefore+3)
	harness.Eventually(t, settleTimeout, func() error {
		ck, err := snapshot.Checkpoints{JS: n.js}.LatestCheckpoint(ctx, nodeName)
		switch {
		case err != nil:
			return err
		case ck == nil || ck.Mark() < mark:
			return fmt.Errorf("no checkpoint at seq %d in the recreated snapshot stream", mark)
		}
		return nil
	})
	if v := processMetric(t, n.rn.URL, "jetmetrics_snapshot_stream_recreated_total") + processMetric(t, n.rn.URL, "jetmetrics_broadcast_stream_recreated_total"); v != 1 {
		t.Errorf("snapshot stream recreations counted %v, want 1", v)
	}
}

// TestDeltaStreamReplaced: JETMETRICS_DELTAS deleted under a running node,
// then recreated by the node itself or at once by an operator. Its
// sequences restart below the aggregate's mark; every batch the new stream
// acknowledges must still be applied exactly once (none skipped for being
// below the old mark), counters on /metrics never go down, and the reset
// is counted. The producers go on: one that was publishing before (its
// batch marks survive) and a new one.
func TestDeltaStreamReplaced(t *testing.T) {
	for _, tc := range []struct {
		name     string
		recreate bool // the test recreates the stream right away
	}{
		{"deleted", false},
		{"recreated", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}), node.Config{})
			sc := startScraper(t, n.rn.URL+"/metrics", watchNames("fault_stream_total", "fault_stream_sum_total"), nil)
			led := newLedger()
			old := newPublisher(t, led, n.dial(), nodeName, "old")
			ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
			defer cancel()
			publishSome(ctx, old, 40)
			settle(t, n.js, n.rdb)
			before := n.mark()

			deleteStream(t, n.js, streams.Config{}.DeltaStream())
			if tc.recreate {
				if err := streams.Provision(ctx, n.js, streams.Config{}); err != nil {
					t.Fatal(err)
				}
			}
			// Acknowledged by the new stream only: each publish retries
			// until the stream is back.
			fresh := newPublisher(t, led, n.dial(), nodeName, "new")
			for range 30 {
				publishSome(ctx, old, 1)
				publishSome(ctx, fresh, 1)
			}
			last, err := lastSeq(ctx, n.js, nodeName)
			if err != nil {
				t.Fatal(err)
			}
			if last <= before {
				t.Fatalf("the new stream reached seq %d, not past the old mark %d", last, before)
			}
			harness.Eventually(t, settleTimeout, func() error {
				if m := n.mark(); m < before+last {
					return fmt.Errorf("aggregate at version %d, want %d (old mark %d + the new stream's %d)", m, before+last, before, last)
				}
				return nil
			})
			n.checkExposed(led)
			sc.finish(t, 5)
			if v := processMetric(t, n.rn.URL, "jetmetrics_aggregator_stream_resets_total"); v != 1 {
				t.Errorf("stream resets counted %v, want 1", v)
			}
			n.readiness(http.StatusOK)
		})
	}
}

// stopBound is how long a node may take to exit after SIGTERM, whatever
// state its streams are in (docs/design.md).
const stopBound = 25 * time.Second

// nodeReadyWait bounds waiting for a process node to be ready.
const nodeReadyWait = 60 * time.Second

// TestStopWithStreamsDeleted: the node binary, its three streams deleted
// under it while a producer publishes, exits 0 within stopBound of
// SIGTERM, and is ready again after a restart. In "squatted" another
// stream takes the deleted streams' subjects at once, so the node cannot
// recreate them: its consumers keep failing to recreate their server-side
// consumers, and must still stop.
func TestStopWithStreamsDeleted(t *testing.T) {
	for _, squat := range []bool{false, true} {
		t.Run(map[bool]string{false: "deleted", true: "squatted"}[squat], func(t *testing.T) {
			p := harness.StartProcessNode(t, harness.ProcessNodeConfig{Name: nodeName})
			p.WaitReady(nodeReadyWait)
			nc := connect(t, p.NATSURL)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			led := newLedger()
			pub := newPublisher(t, led, nc, nodeName, "stop")
			ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
			defer cancel()
			publishSome(ctx, pub, 5)
			pub.raw(ctx, "", []byte("not a batch"), "")
			sc := streams.Config{}
			var subjects []string
			for _, name := range []string{sc.DeadLetterStream(), sc.SnapshotStream(), sc.DeltaStream()} {
				s, err := js.Stream(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				subjects = append(subjects, s.CachedInfo().Config.Subjects...)
				deleteStream(t, js, name)
			}
			if squat {
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SQUAT", Subjects: subjects, Storage: jetstream.MemoryStorage}); err != nil {
					t.Fatal(err)
				}
				// Long enough for the consumers' recreation attempts to fail.
				harness.Eventually(t, settleTimeout, func() error {
					resp, err := http.Get(p.URL + "/-/ready")
					if err != nil {
						return err
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return fmt.Errorf("/-/ready: %s with the streams gone", resp.Status)
					}
					return nil
				})
			}
			start := time.Now()
			p.Stop()
			took := time.Since(start)
			t.Logf("stopped %s after SIGTERM", took.Round(time.Millisecond))
			if took > stopBound {
				t.Errorf("the node took %s to stop, over the %s bound", took, stopBound)
			}
			// The squatter, in memory, went with the node's embedded server.
			p.Start()
			p.WaitReady(nodeReadyWait)
			p.Stop()
		})
	}
}

// replaceDeltaStream deletes JETMETRICS_DELTAS and provisions it again, as
// an operator would: its sequences restart at 1 below the aggregate's
// version.
func replaceDeltaStream(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	deleteStream(t, js, streams.Config{}.DeltaStream())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := streams.Provision(ctx, js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointAfterStreamReplaced: a checkpoint taken after
// JETMETRICS_DELTAS was replaced holds a version (base + sequence) above
// every sequence the new stream holds. When Redis then loses everything,
// the checkpoint must be restored (its sequence, version − base, is one
// the stream holds), not refused as a forgery: refused, the aggregate is
// rebuilt from the new stream alone and every delta the old one held is
// lost.
func TestCheckpointAfterStreamReplaced(t *testing.T) {
	ns := harness.NATS(t)
	rs := harness.RedisWith(t, redisserver.Config{})
	n := startNodeOn(t, rs, node.Config{NATSURL: ns.ClientURL(), DataDir: t.TempDir()})
	led := newLedger()
	old := newPublisher(t, led, connect(t, ns.ClientURL()), nodeName, "old")
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	version := func(want uint64) {
		t.Helper()
		harness.Eventually(t, settleTimeout, func() error {
			if m := n.mark(); m < want {
				return fmt.Errorf("aggregate at version %d, want %d", m, want)
			}
			return nil
		})
	}
	publishSome(ctx, old, 40)
	settle(t, n.js, n.rdb)

	replaceDeltaStream(t, n.js)
	publishSome(ctx, old, 20)
	version(60)
	// A node checkpoints as soon as it starts: restarted, it writes a
	// checkpoint at version 60, in a stream whose last sequence is 20.
	n.rn.Stop(t)
	n.rn = harness.StartNode(t, n.rn.Config)
	harness.Eventually(t, settleTimeout, func() error {
		ck, err := snapshot.Checkpoints{JS: n.js}.LatestCheckpoint(ctx, nodeName)
		switch {
		case err != nil:
			return err
		case ck == nil || ck.Mark() < 60:
			return errors.New("no checkpoint at version 60 yet")
		}
		return nil
	})
	if err := n.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	t.Log("wiped Redis at version 60")
	publishSome(ctx, old, 5)
	version(65)
	n.checkExposed(led)
	if v := processMetric(t, n.rn.URL, "jetmetrics_aggregator_checkpoints_refused_total"); v != 0 {
		t.Errorf("checkpoints refused: %v, want 0", v)
	}
	if v := processMetric(t, n.rn.URL, "jetmetrics_aggregator_checkpoint_restores_total"); v != 1 {
		t.Errorf("checkpoint restores: %v, want 1", v)
	}
}

// TestHighWaterAfterStreamReplaced: after JETMETRICS_DELTAS was replaced
// the node served versions (base + sequence) above every sequence the new
// stream holds. It restarts on a Redis rolled back to an earlier version
// of the same stream, as a crash with the AOF's tail lost leaves it. Until
// the aggregator has replayed, /metrics must answer 503, never the rolled
// back counters: the high-water mark is seeded at base + the stream's last
// sequence, not at the sequence alone. Redis refuses writes (CLIENT PAUSE
// WRITE) while the test looks, so the aggregator cannot catch up first.
func TestHighWaterAfterStreamReplaced(t *testing.T) {
	ns := harness.NATS(t)
	rs := harness.RedisWith(t, redisserver.Config{})
	cfg := node.Config{
		NATSURL:   ns.ClientURL(),
		WebListen: fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)),
		DataDir:   t.TempDir(),
	}
	n := startNodeOn(t, rs, cfg)
	url := n.rn.URL + "/metrics"
	client := &http.Client{Timeout: 10 * time.Second}
	sc := startReader(t, func() (map[string]*dto.MetricFamily, string, error) {
		fams, unavailable, err := scrape(client, url)
		// While no node runs nothing answers: no answer, not a wrong one.
		if ue := (*neturl.Error)(nil); errors.As(err, &ue) {
			return nil, "down: " + err.Error(), nil
		}
		return fams, unavailable, err
	}, watchNames("fault_stream_total", "fault_stream_sum_total"), nil)
	led := newLedger()
	old := newPublisher(t, led, connect(t, ns.ClientURL()), nodeName, "old")
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	publishSome(ctx, old, 40)
	settle(t, n.js, n.rdb)
	replaceDeltaStream(t, n.js)

	version := func(want uint64) {
		t.Helper()
		harness.Eventually(t, settleTimeout, func() error {
			if m := n.mark(); m < want {
				return fmt.Errorf("aggregate at version %d, want %d", m, want)
			}
			return nil
		})
	}
	publishSome(ctx, old, 30)
	version(70)
	rolledBack, err := n.store.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	publishSome(ctx, old, 30)
	version(100)
	// Served at version 100 (the stream's last sequence is 60).
	waitMetric(t, n.rn.URL, fmt.Sprintf("fault_stream_total{p=%q}", old.id), 100)
	n.rn.Stop(t)

	if err := n.store.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.store.Restore(ctx, rolledBack); err != nil {
		t.Fatal(err)
	}
	t.Logf("Redis rolled back to version %d", n.mark())
	if err := n.rdb.Do(ctx, "CLIENT", "PAUSE", 60_000, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	paused := true
	unpause := func() {
		if paused {
			paused = false
			if err := n.rdb.Do(context.Background(), "CLIENT", "UNPAUSE").Err(); err != nil {
				t.Error(err)
			}
		}
	}
	defer unpause()

	cfg = n.rn.Config
	cfg.Logger = harness.Logger(t).With().Str("test_node", nodeName).Str("run", "2").Logger()
	restarted, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- restarted.Run(rctx) }()
	defer func() {
		unpause()
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("restarted node: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("restarted node did not stop within a minute")
		}
	}()
	// The first answer past the start: 503 because the aggregate is behind
	// what was served, not the rolled-back counters.
	var status int
	var body string
	harness.Eventually(t, settleTimeout, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		status, body = resp.StatusCode, string(b)
		if status == http.StatusServiceUnavailable && strings.Contains(body, "starting") {
			return errors.New("not seeded yet")
		}
		return nil
	})
	if status != http.StatusServiceUnavailable {
		t.Errorf("/metrics answered %d with Redis rolled back to version 70 and writes paused, want 503", status)
	}
	t.Logf("/metrics while rolled back: %d %s", status, strings.TrimSpace(body))
	unpause()
	settle(t, n.js, n.rdb)
	harness.Eventually(t, settleTimeout, func() error {
		fams, err := harness.Scrape(url)
		if err != nil {
			return err
		}
		return led.check(harness.Samples(fams))
	})
	sc.finish(t, 5)
}
