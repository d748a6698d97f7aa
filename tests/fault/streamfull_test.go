package fault_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// fullDeltaBound is the delta stream's byte bound in TestDeltaStreamFull:
// a few dozen of the workload's batches.
const fullDeltaBound = 16 << 10

// TestDeltaStreamFull: a node whose delta stream has a tiny byte bound
// (discard new). An SDK producer records until the stream refuses its
// batch: Flush fails saying the stream is full ("maximum bytes exceeded",
// producers.ErrStreamFull), the producer keeps the batch and keeps
// counting in memory and retrying, and the node's
// jetmetrics_stream_bytes / jetmetrics_stream_max_bytes show the stream
// over 90 % of its bound (JetmetricsStreamNearlyFull's threshold). Then
// the operator raises the bound on the stream itself, as
// docs/operations.md "Stream bounds" says, and every increment recorded
// before, during and after arrives exactly once.
func TestDeltaStreamFull(t *testing.T) {
	n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}),
		node.Config{Streams: streams.Config{DeltaMaxBytes: fullDeltaBound}})
	deltas := streams.Config{}.DeltaStream()

	p, err := producers.New(producers.Config{
		Node: nodeName, Name: "full", FlushInterval: 5 * time.Millisecond,
		PublishTimeout: outagePublishTimeout, Logger: harness.Logger(t),
	}, n.dial())
	if err != nil {
		t.Fatal(err)
	}
	w := sdkWorkload(t, p)

	// Record and flush until a flush is refused; bounded: the stream holds
	// far fewer batches than steps.
	flush := func(wait time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		return p.Flush(ctx)
	}
	var full error
	step := 0
	for ; step < 2000 && full == nil; step++ {
		w.step(step)
		full = flush(time.Second)
	}
	if full == nil {
		t.Fatalf("%d flushes into a delta stream of %d bytes all acknowledged", step, fullDeltaBound)
	}
	t.Logf("flush %d refused: %v", step, full)
	if !errors.Is(full, producers.ErrStreamFull) || !strings.Contains(full.Error(), "maximum bytes exceeded") {
		t.Fatalf("flush into a full delta stream: %v; want an error saying the stream is full (producers.ErrStreamFull, maximum bytes exceeded)", full)
	}

	// Still full: the producer keeps counting and retrying the same batch.
	retries := p.Stats().Retries
	for range 5 {
		w.step(step)
		step++
		if err := flush(100 * time.Millisecond); !errors.Is(err, producers.ErrStreamFull) {
			t.Fatalf("flush into a still full delta stream: %v; want producers.ErrStreamFull", err)
		}
	}
	waitBacklog(t, p, retries, 300*time.Millisecond)
	if s := p.Stats(); s.PendingUpdates == 0 || s.Dropped != 0 || !errors.Is(s.PublishError, producers.ErrStreamFull) {
		t.Fatalf("producer while the stream is full: %+v; want pending updates, nothing dropped and a publish error wrapping ErrStreamFull", s)
	}

	// The node shows the fill while the stream is full.
	harness.Eventually(t, settleTimeout, func() error {
		fams, err := harness.Scrape(n.rn.URL + "/metrics")
		if err != nil {
			return err
		}
		got := harness.Samples(fams)
		size := got[fmt.Sprintf("jetmetrics_stream_bytes{stream=%q}", deltas)]
		bound := got[fmt.Sprintf("jetmetrics_stream_max_bytes{stream=%q}", deltas)]
		if bound != fullDeltaBound || size < 0.9*bound || size > bound {
			return fmt.Errorf("jetmetrics_stream_bytes %v, jetmetrics_stream_max_bytes %v; want the bound %d and over 90 %% of it", size, bound, fullDeltaBound)
		}
		return nil
	})

	// The operator raises the bound on the running stream.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := n.js.Stream(ctx, deltas)
	if err != nil {
		t.Fatal(err)
	}
	sc := s.CachedInfo().Config
	sc.MaxBytes = 64 * fullDeltaBound
	if _, err := n.js.UpdateStream(ctx, sc); err != nil {
		t.Fatalf("raise the delta stream's bound: %v", err)
	}

	// Everything recorded arrives, and recording goes on.
	for range 20 {
		w.step(step)
		step++
		if err := flush(loadTimeout); err != nil {
			t.Fatalf("flush after the bound was raised: %v", err)
		}
	}
	if err := p.Stats().PublishError; err != nil {
		t.Fatalf("publish error once acknowledged: %v; want none", err)
	}
	w.close(t)
	t.Logf("producer %s after %d steps: %+v", p.ID(), step, p.Stats())
	n.checkExposed(w.led)
	n.noDeadLetters()
}
