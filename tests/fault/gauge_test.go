package fault_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// TestGaugeLastSetWins (scenario 9): a gauge shows the last value set in
// publish order, whatever arrives late, and across a producer restart.
func TestGaugeLastSetWins(t *testing.T) {
	// Raw batches on a stream with a 100 ms duplicate window: a retry that
	// outlives the window and a stale copy that turns up after newer
	// batches must not move the gauge back; a batch lost on its way to the
	// broker never sets it, nor one the producer died holding; the
	// restarted producer (a new id, its batches numbered from 1 again) takes
	// over.
	t.Run("raw", func(t *testing.T) {
		r := newRig(t, rigConfig{Duplicates: 100 * time.Millisecond})
		r.start(aggregator.Config{})
		led := newLedger()
		ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
		defer cancel()

		a := newPublisher(t, led, r.nc, nodeName, "svc-aaaa")
		var old *batch
		for i := range 30 {
			b := a.cut(gauge("fault_level", float64(i), "svc", "x"), counter("fault_sets_total", 1, "svc", "x"))
			switch i {
			case 5:
				old = b
				a.ack(ctx, b)
			case 10:
				a.loseAck(b)
				a.retryPastWindow(ctx, b)
			case 28:
				a.ack(ctx, b)
				a.retryPastWindow(ctx, old) // batch 5 again, after 28
			case 29:
				a.lose(b) // the producer dies with it in flight
			default:
				a.ack(ctx, b)
			}
		}
		// And it had cut one more, never sent.
		a.forget(a.cut(gauge("fault_level", 99, "svc", "x"), counter("fault_sets_total", 1, "svc", "x")))
		r.checkStored(led)

		b := newPublisher(t, led, r.nc, nodeName, "svc-bbbb")
		for i := range 20 {
			b.ack(ctx, b.cut(gauge("fault_level", float64(1000+i), "svc", "x"), counter("fault_sets_total", 1, "svc", "x")))
		}
		r.checkStored(led)
	})

	// The SDK, its acknowledgements lost now and then, setting the gauge
	// from one goroutine between flushes; then the same service restarted:
	// a new producer id, its own sequence, the same series.
	t.Run("sdk", func(t *testing.T) {
		r := newRig(t, rigConfig{})
		r.start(aggregator.Config{})
		lk := newLink(t, hostPort(t, r.nats.ClientURL()))
		led := newLedger()
		step := 0
		for incarnation := range 2 {
			p, err := producers.New(producers.Config{
				Node: nodeName, Name: "svc",
				FlushInterval:  2 * time.Millisecond,
				PublishTimeout: 50 * time.Millisecond,
				Logger:         harness.Logger(t),
			}, connect(t, lk.URL()))
			if err != nil {
				t.Fatal(err)
			}
			w := sdkWorkloadLabelled(t, p, "svc")
			w.led = led
			for round := range 6 {
				lk.dropReplies.Store(round%3 == 2)
				retries := p.Stats().Retries
				for range 200 {
					w.step(step)
					step++
				}
				if lk.dropReplies.Load() {
					harness.Eventually(t, 10*time.Second, func() error {
						if p.Stats().Retries < retries+1 {
							return context.DeadlineExceeded
						}
						return nil
					})
					lk.dropReplies.Store(false)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := p.Flush(ctx)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
			}
			w.close(t)
			t.Logf("incarnation %d, producer %s: %+v", incarnation, p.ID(), p.Stats())
			r.checkStored(led)
		}
	})
}
