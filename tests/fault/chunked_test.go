package fault_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/consumers/snapshot"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// TestSnapshotPastMaxPayload: a node on a NATS server whose max_payload is
// 64 KiB holds an aggregate whose snapshot is several times that. Its
// snapshots and checkpoints go out in chunks: /metrics/cluster shows the
// node's aggregate exactly, and after Redis loses everything (with the
// deltas the checkpoint covers purged from the stream, so only the
// checkpoint can bring them back) the aggregate is restored exactly.
// Before chunking, every publish failed with "maximum payload exceeded".
func TestSnapshotPastMaxPayload(t *testing.T) {
	ns, err := natsserver.Start(natsserver.Config{Name: "small", StoreDir: t.TempDir(), Port: -1, MaxPayload: 64 << 10, Logger: harness.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}), node.Config{NATSURL: ns.ClientURL(), DataDir: t.TempDir()})
	led := newLedger()
	p := newPublisher(t, led, connect(t, ns.ClientURL()), nodeName, "big")
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	const batches, perBatch = 50, 400
	for b := range batches {
		ups := make([]update, perBatch)
		for i := range ups {
			id := fmt.Sprintf("%x", uint64(b*perBatch+i)*0x9e3779b97f4a7c15)
			ups[i] = counter("fault_big_total", float64((b*perBatch+i)%977+1), "id", id)
		}
		p.ack(ctx, p.cut(ups...))
	}
	settle(t, n.js, n.rdb)
	// A node checkpoints as soon as it starts (then every minute).
	n.rn.Stop(t)
	n.rn = harness.StartNode(t, n.rn.Config)

	// The checkpoint covers every batch and came in chunks.
	var ck *aggregate.Dump
	harness.Eventually(t, settleTimeout, func() (err error) {
		ck, err = snapshot.Checkpoints{JS: n.js}.LatestCheckpoint(ctx, nodeName)
		if err == nil && (ck == nil || ck.Mark() < batches) {
			err = fmt.Errorf("no checkpoint at %d yet", batches)
		}
		return err
	})
	s, err := n.js.Stream(ctx, streams.Config{}.SnapshotStream())
	if err != nil {
		t.Fatal(err)
	}
	head, err := s.GetLastMsgForSubject(ctx, streams.Subjects{}.Checkpoint(nodeName))
	if err != nil {
		t.Fatal(err)
	}
	if c := head.Header.Get(streams.HeaderSnapshotChunks); c == "" || c == "2" {
		t.Fatalf("checkpoint in %q chunks, want several: the test's aggregate is too small", c)
	}
	t.Logf("checkpoint of %d series at seq %d: %s bytes in %s chunks", len(ck.Series), ck.Mark(), head.Header.Get(streams.HeaderSnapshotSize), head.Header.Get(streams.HeaderSnapshotChunks))

	// The peer view: the node's own broadcast snapshot, assembled.
	harness.Eventually(t, settleTimeout, func() error {
		fams, err := harness.Scrape(n.rn.URL + "/metrics/cluster")
		if err != nil {
			return err
		}
		mine := map[string]float64{}
		for k, v := range harness.Samples(fams) {
			if strings.Contains(k, `node="`+nodeName+`"`) {
				k = strings.Replace(k, `,node="`+nodeName+`"`, "", 1)
				k = strings.Replace(k, `{node="`+nodeName+`"}`, "", 1)
				mine[k] = v
			}
		}
		return led.check(mine)
	})

	ds, err := n.js.Stream(ctx, streams.Config{}.DeltaStream())
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Purge(ctx, jetstream.WithPurgeSequence(ck.Mark()+1)); err != nil {
		t.Fatal(err)
	}
	if err := n.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("wiped Redis at stream mark %d", ck.Mark())
	harness.Eventually(t, settleTimeout, func() error {
		if m := n.mark(); m < ck.Mark() {
			return fmt.Errorf("stream mark %d, want %d", m, ck.Mark())
		}
		return nil
	})
	n.checkExposed(led)
	fams, err := harness.Scrape(n.rn.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	smp := harness.Samples(fams)
	if got := smp["jetmetrics_aggregator_checkpoint_restores_total"]; got < 1 {
		t.Errorf("restored from the checkpoint %v times, want 1", got)
	}
	if got := smp["jetmetrics_snapshot_failures_total"]; got != 0 {
		t.Errorf("%v snapshot publications failed", got)
	}
	n.noDeadLetters()
}
