package fault_test

import (
	"context"
	"testing"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
)

// TestQueueSmallerThanAMessage: with room for less than one decoded
// message between the reader and the fold, the aggregator takes one
// message at a time and still applies every one, exactly once. It would
// hang if a folded message did not give its room back, or if a message
// larger than the bound could not pass an empty queue.
func TestQueueSmallerThanAMessage(t *testing.T) {
	r := newRig(t, rigConfig{})
	r.start(aggregator.Config{MaxQueuedBytes: 1})
	led := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	p := newPublisher(t, led, r.nc, nodeName, "svc-aaaa")
	for i := range 50 {
		p.ack(ctx, p.cut(counter("fault_queued_total", 1, "svc", "x"), gauge("fault_queue_level", float64(i), "svc", "x")))
	}
	r.checkStored(led)
}
