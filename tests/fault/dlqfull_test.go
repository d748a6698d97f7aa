package fault_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/streams"
)

// fullDLQBound is the dead-letter stream's byte bound in
// TestDeadLetterStreamFull: a few of the test's dead letters.
const fullDLQBound = 4 << 10

// TestDeadLetterStreamFull: the dead-letter stream is full while bad input
// keeps arriving among good deltas. Either way the stream can be full,
// the aggregator keeps applying every good delta exactly once and stays
// ready, and jetmetrics_rejected_total counts every rejection:
//
//   - discard old (as provisioned): the newest letters replace the oldest,
//     the stream stays within its bound, and no letter is dropped;
//   - refusing (a stream defined with discard new, as an external NATS's
//     may be): each letter the stream refuses is dropped, counted in
//     jetmetrics_aggregator_dead_letters_dropped_total{reason}, where
//     before it stalled the node for good, retrying the publish.
func TestDeadLetterStreamFull(t *testing.T) {
	for _, tc := range []struct {
		name    string
		discard jetstream.DiscardPolicy
	}{
		{"discard old", jetstream.DiscardOld},
		{"refusing", jetstream.DiscardNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigConfig{})
			ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
			defer cancel()
			dlq := r.streams.DeadLetterStreamConfig()
			dlq.MaxBytes, dlq.Discard = fullDLQBound, tc.discard
			if _, err := r.js.UpdateStream(ctx, dlq); err != nil {
				t.Fatal(err)
			}
			in := r.start(aggregator.Config{})
			led := newLedger()
			p := newPublisher(t, led, r.nc, nodeName, "dlqfull")
			// Every third batch is followed by a message that is not JSON,
			// about a kilobyte: a few fill the stream, and the last ones
			// alone are larger than its bound.
			const batches = 60
			bad := 0
			for i := range batches {
				p.ack(ctx, p.cut(mixed(p.id, i)...))
				if i%3 == 1 {
					p.raw(ctx, "", []byte(`{"v":1,"node":"`+strings.Repeat("x", 1000+i*100)), "")
					bad++
				}
			}
			r.checkStored(led)
			if !in.agg.Ready() {
				t.Error("aggregator not ready after applying everything")
			}
			got, err := storedSamples(ctx, r.store)
			if err != nil {
				t.Fatal(err)
			}
			if k := fmt.Sprintf("jetmetrics_rejected_total{reason=%q}", streams.ReasonUndecodable); got[k] != float64(bad) {
				t.Errorf("%s = %v, want %d", k, got[k], bad)
			}
			s, err := r.js.Stream(ctx, dlq.Name)
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			dropped := in.counterValue("jetmetrics_aggregator_dead_letters_dropped_total")
			t.Logf("dead-letter stream: %d letters, %d bytes of %d; %d rejected, %v dropped", info.State.Msgs, info.State.Bytes, fullDLQBound, bad, dropped)
			if info.State.Bytes > fullDLQBound {
				t.Errorf("dead-letter stream holds %d bytes, over its bound %d", info.State.Bytes, fullDLQBound)
			}
			switch {
			case tc.discard == jetstream.DiscardOld && dropped != 0:
				t.Errorf("%v dead letters dropped; a discard-old stream takes every letter", dropped)
			case tc.discard == jetstream.DiscardNew && (dropped == 0 || dropped+float64(info.State.Msgs) != float64(bad)):
				t.Errorf("%v dead letters dropped and %d stored, want %d in all and some dropped", dropped, info.State.Msgs, bad)
			}
		})
	}
}
