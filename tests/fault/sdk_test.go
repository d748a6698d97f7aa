package fault_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// workload drives a real SDK producer and keeps, beside it, what it
// recorded. The SDK retries every batch until acknowledged, so once Close
// returns nil everything recorded is acknowledged: the ledger gets it as
// one acknowledged record. Not safe for concurrent use.
type workload struct {
	p        *producers.Producer
	led      *ledger
	label    string
	requests *producers.CounterVec
	latency  *producers.Histogram
	last     *producers.Gauge

	routes   [4]float64
	counts   []uint64
	sum      float64
	lastStep int
}

// sdkWorkload registers the workload's metrics on p. Its series carry
// producer=<p's id>, so several workloads share one aggregate.
func sdkWorkload(t testing.TB, p *producers.Producer) *workload {
	return sdkWorkloadLabelled(t, p, p.ID())
}

// sdkWorkloadLabelled is sdkWorkload with series labelled producer=label
// instead, so a producer restarted with a new id continues the same series.
func sdkWorkloadLabelled(t testing.TB, p *producers.Producer, label string) *workload {
	t.Helper()
	w := &workload{p: p, led: newLedger(), label: label, counts: make([]uint64, len(latencyBuckets)+1)}
	var err error
	if w.requests, err = p.NewCounterVec(producers.Opts{Name: "fault_requests_total", Help: "requests"}, "producer", "route"); err != nil {
		t.Fatal(err)
	}
	lat, err := p.NewHistogramVec(producers.HistogramOpts{Name: "fault_latency", Help: "latency", Buckets: latencyBuckets}, "producer")
	if err != nil {
		t.Fatal(err)
	}
	w.latency = lat.MustWith(label)
	g, err := p.NewGaugeVec(producers.Opts{Name: "fault_last_step", Help: "last step"}, "producer")
	if err != nil {
		t.Fatal(err)
	}
	w.last = g.MustWith(label)
	return w
}

// step records step i: a request on one of four routes, an observation of
// 0.5 (first bucket) and every third step one of 8 (third bucket), and the
// gauge set to i.
func (w *workload) step(i int) {
	w.requests.MustWith(w.label, fmt.Sprint(i%4)).Inc()
	w.routes[i%4]++
	w.latency.Observe(0.5)
	w.counts[0]++
	w.sum += 0.5
	if i%3 == 0 {
		w.latency.Observe(8)
		w.counts[2]++
		w.sum += 8
	}
	w.last.Set(int64(i))
	w.lastStep = i
}

// updates is what the workload recorded, as the ledger counts it.
func (w *workload) updates() []update {
	var us []update
	for r, n := range w.routes {
		if n > 0 {
			us = append(us, counter("fault_requests_total", n, "producer", w.label, "route", fmt.Sprint(r)))
		}
	}
	return append(us,
		histogram("fault_latency", latencyBuckets, append([]uint64(nil), w.counts...), w.sum, "producer", w.label),
		gauge("fault_last_step", float64(w.lastStep), "producer", w.label))
}

// close closes the producer, which flushes everything, and notes it all
// acknowledged.
func (w *workload) close(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.p.Close(ctx); err != nil {
		t.Fatalf("close producer %s: %v", w.p.ID(), err)
	}
	w.led.note(batchID{w.p.ID(), 0}, acked, true, w.updates())
}

// sdkLoad is SDK producers recording in their own goroutines, in chunks of
// steps each followed by a Flush, until stopped.
type sdkLoad struct {
	led       *ledger
	workloads []*workload
	stop      chan struct{}
	wg        sync.WaitGroup
	chunks    atomic.Int64
	flushWait time.Duration
}

const (
	chunkSteps = 50
	// chunkEvery paces each producer's chunks: the load's rate.
	chunkEvery = 10 * time.Millisecond
	// maxChunks bounds each producer's loop whatever the test does.
	maxChunks = 2000
)

// runSDKLoad starts n producers named name-<i> on connections from dial.
// Each chunk's Flush waits for the acknowledgement.
func runSDKLoad(t *testing.T, dial func() *nats.Conn, name string, n int, cfg producers.Config) *sdkLoad {
	return runSDKLoadWaiting(t, dial, name, n, cfg, loadTimeout)
}

// runSDKLoadWaiting is runSDKLoad with each chunk's Flush waiting at most
// flushWait: shorter, the producers keep recording through an outage while
// their batches wait to be acknowledged.
func runSDKLoadWaiting(t *testing.T, dial func() *nats.Conn, name string, n int, cfg producers.Config, flushWait time.Duration) *sdkLoad {
	t.Helper()
	l := &sdkLoad{led: newLedger(), stop: make(chan struct{}), flushWait: flushWait}
	for i := range n {
		cfg.Node, cfg.Name = nodeName, fmt.Sprintf("%s-%d", name, i)
		if cfg.FlushInterval == 0 {
			cfg.FlushInterval = 5 * time.Millisecond
		}
		cfg.Logger = harness.Logger(t)
		p, err := producers.New(cfg, dial())
		if err != nil {
			t.Fatal(err)
		}
		w := sdkWorkload(t, p)
		w.led = l.led
		l.workloads = append(l.workloads, w)
		l.wg.Go(func() {
			pace := time.NewTicker(chunkEvery)
			defer pace.Stop()
			for c := range maxChunks {
				for i := range chunkSteps {
					w.step(c*chunkSteps + i)
				}
				ctx, cancel := context.WithTimeout(context.Background(), l.flushWait)
				err := p.Flush(ctx)
				cancel()
				if err != nil && !(l.flushWait < loadTimeout && errors.Is(err, context.DeadlineExceeded)) {
					t.Errorf("flush %s: %v", p.ID(), err)
					return
				}
				l.chunks.Add(1)
				select {
				case <-l.stop:
					return
				case <-pace.C:
				}
			}
		})
	}
	t.Cleanup(l.halt)
	return l
}

func (l *sdkLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// waitChunks waits until the producers have flushed n more chunks: the
// load is flowing.
func (l *sdkLoad) waitChunks(t testing.TB, n int64) {
	t.Helper()
	target := l.chunks.Load() + n
	harness.Eventually(t, loadTimeout, func() error {
		if c := l.chunks.Load(); c < target {
			return fmt.Errorf("producers flushed %d chunks, waiting for %d", c, target)
		}
		return nil
	})
}

// finish stops the load, closes every producer (a final flush) and returns
// the ledger of what they recorded, all of it acknowledged.
func (l *sdkLoad) finish(t testing.TB) *ledger {
	t.Helper()
	l.halt()
	for _, w := range l.workloads {
		w.close(t)
	}
	return l.led
}
