package fault_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

	deleteStream(t, n.js, streams.Config{}.SnapshotStream())
	storedBefore := processMetric(t, n.rn.URL, stored)
	publishSome(ctx, p, 3)
	settle(t, n.js, n.rdb)
	mark := n.mark()
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
