package fault_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/consumers/snapshot"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// TestRedisWipedMidChain: Redis loses everything while the node's
// snapshots go out as an incremental chain (a full one, then deltas,
// several of them stored on it in the peer store the node keeps in the
// same Redis). The node restores from its latest checkpoint (always a
// full snapshot; the deltas it covers are purged from the stream) and
// replays the rest: every series ends exact, nothing lost and nothing
// counted twice. The peer store lost the chain's base, so no delta
// applies until a full snapshot comes (asked for by the refused delta, or
// sent by the publisher on its own); /metrics/cluster then serves the
// node's aggregate exactly again.
func TestRedisWipedMidChain(t *testing.T) {
	// Full every 40 intervals of 200 ms: below the 64 deltas a chain may
	// hold, so no full snapshot is requested but for the wipe.
	n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}), node.Config{SnapshotFullEvery: 40})
	load := runSDKLoad(t, n.dial, "chain", 2, producers.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	metric := func(name string) float64 {
		t.Helper()
		fams, err := harness.Scrape(n.rn.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return harness.Samples(fams)[name]
	}

	var ck *aggregate.Dump
	harness.Eventually(t, settleTimeout, func() (err error) {
		ck, err = snapshot.Checkpoints{JS: n.js}.LatestCheckpoint(ctx, nodeName)
		if err == nil && (ck == nil || ck.Mark() == 0) {
			err = fmt.Errorf("no checkpoint of %s yet", nodeName)
		}
		return err
	})
	ds, err := n.js.Stream(ctx, streams.Config{}.DeltaStream())
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Purge(ctx, jetstream.WithPurgeSequence(ck.Mark()+1)); err != nil {
		t.Fatal(err)
	}
	// The chain is in flight: deltas stored on the node's full snapshot.
	peers := aggregate.NewPeers(n.rdb, "")
	harness.Eventually(t, settleTimeout, func() error {
		snaps, err := peers.List(ctx, true)
		if err != nil {
			return err
		}
		for _, s := range snaps {
			if s.Node == nodeName && len(s.Deltas) >= 3 {
				return nil
			}
		}
		return fmt.Errorf("no chain of 3 deltas stored yet")
	})
	// Full snapshots published: the ones a peer asked for, and any the
	// publisher sends on its own (after a failed publish, a checkpoint).
	fulls := func() float64 {
		return metric("jetmetrics_snapshot_published_total") - metric("jetmetrics_snapshot_deltas_total")
	}
	requests, published := metric("jetmetrics_snapshot_full_requests_total"), fulls()
	load.waitChunks(t, 10)
	before := n.mark()
	if err := n.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("wiped Redis at stream mark %d mid-chain (checkpoint at %d)", before, ck.Mark())
	harness.Eventually(t, settleTimeout, func() error {
		if m := n.mark(); m <= before {
			return fmt.Errorf("stream mark %d, was %d before the wipe", m, before)
		}
		return nil
	})
	// The peer store lost the chain's base: a full snapshot rebuilds it,
	// the one a refused delta asks for or one the publisher sends on its
	// own first (a publish failed during the wipe, a checkpoint was due),
	// whichever comes first.
	harness.Eventually(t, settleTimeout, func() error {
		if got, full := metric("jetmetrics_snapshot_full_requests_total"), fulls(); got <= requests && full <= published {
			return fmt.Errorf("%v full snapshots requested and %v published, none since the wipe", got, full)
		}
		return nil
	})
	led := load.finish(t)
	settle(t, n.js, n.rdb)
	n.checkExposed(led)
	if got := metric("jetmetrics_aggregator_checkpoint_restores_total"); got < 1 {
		t.Errorf("restored from the checkpoint %v times, want 1", got)
	}
	// The cluster view of the node: its snapshot chain rebuilt, exact.
	harness.Eventually(t, settleTimeout, func() error {
		fams, err := harness.Scrape(n.rn.URL + "/metrics/cluster")
		if err != nil {
			return err
		}
		// The node's series, without the node label.
		for _, mf := range fams {
			kept := mf.Metric[:0]
			for _, m := range mf.Metric {
				labels := m.Label[:0]
				mine := false
				for _, l := range m.Label {
					if l.GetName() == "node" {
						mine = l.GetValue() == nodeName
						continue
					}
					labels = append(labels, l)
				}
				if mine {
					m.Label = labels
					kept = append(kept, m)
				}
			}
			mf.Metric = kept
		}
		mine := harness.Samples(fams)
		return led.check(mine)
	})
	if got := metric("jetmetrics_snapshot_deltas_total"); got == 0 {
		t.Error("no delta published: the test's chain never existed")
	}
	n.noDeadLetters()
}
