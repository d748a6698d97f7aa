package fault_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// connect dials url and reconnects forever, as the SDK asks of its
// callers; closed at cleanup. opts come last.
func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(20 * time.Millisecond), nats.IgnoreDiscoveredServers()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// hostPort is the host:port of a nats:// URL.
func hostPort(t testing.TB, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Host
}

var latencyBuckets = []float64{1, 4, 16}

// mixed is one batch's worth of updates for producer id at step i: a
// counter, a histogram with one observation of a fixed value per bucket,
// and a gauge set to i, so a batch applied twice or out of order shows.
func mixed(id string, i int) []update {
	n := uint64(i%3 + 1)
	return []update{
		counter("fault_requests_total", float64(i%5+1), "producer", id, "route", fmt.Sprint(i%4)),
		histogram("fault_latency", latencyBuckets, []uint64{n, 0, 1, 0}, float64(n)*0.5+8, "producer", id),
		gauge("fault_last_step", float64(i), "producer", id),
	}
}

// TestAckLostRetryInsideWindow (scenario 1): acknowledgements lost on the
// way back, and the batch retried with the same bytes and Nats-Msg-Id
// inside the stream's duplicate window. The broker's deduplication fires:
// it acknowledges the retry as a duplicate and stores one copy, and the
// aggregate counts the batch once.
func TestAckLostRetryInsideWindow(t *testing.T) {
	t.Run("raw", func(t *testing.T) {
		r := newRig(t, rigConfig{})
		r.start(aggregator.Config{})
		led := newLedger()
		ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
		defer cancel()
		const producers, batches = 3, 120
		var wg sync.WaitGroup
		for w := range producers {
			p := newPublisher(t, led, r.nc, nodeName, fmt.Sprintf("raw-%d", w))
			wg.Go(func() {
				for i := range batches {
					b := p.cut(mixed(p.id, i)...)
					if i%4 != 1 {
						p.ack(ctx, b)
						continue
					}
					p.loseAck(b)
					if i == batches-3 {
						continue // never retried: the producer gave up on it
					}
					if !p.retry(ctx, b) {
						t.Errorf("retry of %s inside the window was not acknowledged as a duplicate", b.batchID)
					}
				}
			})
		}
		wg.Wait()
		copies, err := streamCopies(ctx, r.js, nodeName)
		if err != nil {
			t.Fatal(err)
		}
		if err := duplicated(copies); err != nil {
			t.Errorf("the broker stored retries inside its duplicate window:\n%v", err)
		}
		if n := led.count(timedOut); n != producers {
			t.Fatalf("ledger has %d timed-out batches, want %d", n, producers)
		}
		r.checkStored(led)
	})

	t.Run("sdk", func(t *testing.T) {
		r := newRig(t, rigConfig{})
		r.start(aggregator.Config{})
		lk := newLink(t, hostPort(t, r.nats.ClientURL()))
		p, err := producers.New(producers.Config{
			Node: nodeName, Name: "lossy",
			FlushInterval:  5 * time.Millisecond,
			PublishTimeout: 100 * time.Millisecond,
			Logger:         harness.Logger(t),
		}, connect(t, lk.URL()))
		if err != nil {
			t.Fatal(err)
		}
		w := sdkWorkload(t, p)
		const rounds, perRound = 8, 400
		lost := 0
		for round := range rounds {
			lossy := round%2 == 1
			retries := p.Stats().Retries
			lk.dropReplies.Store(lossy)
			for i := range perRound {
				w.step(round*perRound + i)
			}
			if lossy {
				// Lose acknowledgements until the producer has timed out
				// and retried twice: its batch is stored, it does not know.
				harness.Eventually(t, 10*time.Second, func() error {
					if s := p.Stats(); s.Retries < retries+2 {
						return fmt.Errorf("producer retried %d times since the acks started getting lost, want 2", s.Retries-retries)
					}
					return nil
				})
				lost++
				lk.dropReplies.Store(false)
			}
			// Each round is its own batches: the next one starts with
			// nothing in flight.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := p.Flush(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
		w.close(t)
		st := p.Stats()
		t.Logf("producer stats: %+v; acks dropped by the link: %d", st, lk.dropped.Load())
		if st.Duplicates < uint64(lost) {
			t.Errorf("%d acknowledgements flagged duplicate, want at least %d: the broker's dedup did not fire", st.Duplicates, lost)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		copies, err := streamCopies(ctx, r.js, nodeName)
		if err != nil {
			t.Fatal(err)
		}
		if err := duplicated(copies); err != nil {
			t.Errorf("the broker stored the producer's retries twice:\n%v", err)
		}
		r.checkStored(w.led)
	})
}

// TestRetryBeyondWindow (scenario 2): a stream whose duplicate window is
// short (100 ms, the least JetStream allows) and producers whose
// acknowledgements keep getting lost until a retry lands after the window:
// the broker stores that retry a second time, and the aggregator's
// per-producer batch mark must drop it. A stale copy of an older batch
// arriving after newer ones (delayed in the network) must neither count
// again nor move a gauge back.
func TestRetryBeyondWindow(t *testing.T) {
	r := newRig(t, rigConfig{Duplicates: 100 * time.Millisecond})
	r.start(aggregator.Config{})
	led := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	const producers, batches = 3, 60
	var wg sync.WaitGroup
	var mu sync.Mutex
	twice := map[batchID]bool{}
	for w := range producers {
		p := newPublisher(t, led, r.nc, nodeName, fmt.Sprintf("late-%d", w))
		wg.Go(func() {
			var stale *batch
			for i := range batches {
				b := p.cut(mixed(p.id, i)...)
				switch {
				case i%10 == 3:
					p.loseAck(b)
					p.retryPastWindow(ctx, b)
				case i%10 == 7 && stale != nil:
					// A copy of a batch acknowledged long ago turns up
					// after newer batches of the same producer.
					p.ack(ctx, b)
					p.retryPastWindow(ctx, stale)
					b = stale
				default:
					p.ack(ctx, b)
					if i%10 == 5 {
						stale = b
					}
					continue
				}
				mu.Lock()
				twice[b.batchID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	copies, err := streamCopies(ctx, r.js, nodeName)
	if err != nil {
		t.Fatal(err)
	}
	for id := range twice {
		if copies[id] != 2 {
			t.Errorf("batch %s has %d copies in the stream, want 2: the retry did not outlive the window", id, copies[id])
		}
	}
	r.checkStored(led)
}
