package fault_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// bucketValue is the one value each bucket of fault_spread is observed
// at, by upper bound: every observation ≤ 1 is 0.5, ≤ 4 is 2, ≤ 16 is 8,
// and beyond 32. So a histogram whose buckets, count and sum changed
// together has sum = Σ value × (observations in the bucket).
var bucketValue = map[float64]float64{1: 0.5, 4: 2, 16: 8, math.Inf(1): 32}

// checkHistogram checks one histogram family as a reader sees it: buckets
// cumulative and non-decreasing, the +Inf bucket equal to the count, and
// the sum equal to what the counts imply.
func checkHistogram(f *dto.MetricFamily) error {
	for _, m := range f.GetMetric() {
		h := m.GetHistogram()
		var prev uint64
		var sum float64
		for _, b := range h.GetBucket() {
			c := b.GetCumulativeCount()
			if c < prev {
				return fmt.Errorf("%s%v: bucket le=%v has %d, below the bucket before it (%d)", f.GetName(), m.GetLabel(), b.GetUpperBound(), c, prev)
			}
			if math.IsInf(b.GetUpperBound(), 1) && c != h.GetSampleCount() {
				return fmt.Errorf("%s%v: +Inf bucket %d, count %d", f.GetName(), m.GetLabel(), c, h.GetSampleCount())
			}
			sum += bucketValue[b.GetUpperBound()] * float64(c-prev)
			prev = c
		}
		if h.GetSampleCount() < prev {
			return fmt.Errorf("%s%v: count %d below the last bucket %d", f.GetName(), m.GetLabel(), h.GetSampleCount(), prev)
		}
		sum += bucketValue[math.Inf(1)] * float64(h.GetSampleCount()-prev)
		if sum != h.GetSampleSum() {
			return fmt.Errorf("%s%v: sum %v, but the buckets and count (%d) say %v: torn", f.GetName(), m.GetLabel(), h.GetSampleSum(), h.GetSampleCount(), sum)
		}
	}
	return nil
}

// readStored reads the aggregate straight from Redis, the way /metrics
// does, without HTTP in between: many more reads in the same time.
func readStored(store *aggregate.Store) func() (map[string]*dto.MetricFamily, string, error) {
	return func() (map[string]*dto.MetricFamily, string, error) {
		st, err := store.Load(context.Background())
		if err != nil {
			return nil, "", err
		}
		fams := map[string]*dto.MetricFamily{}
		for _, f := range exposition.Families([]*aggregate.State{st}, false) {
			fams[f.GetName()] = f
		}
		return fams, "", nil
	}
}

// TestHistogramNeverTorn (scenario 8): histograms read over and over, both
// through /metrics and straight from Redis the way /metrics reads it, while
// producers publish observations: no read ever shows buckets, count and
// sum out of step.
func TestHistogramNeverTorn(t *testing.T) {
	// Batches published by hand, each consistent in itself: what the
	// aggregator and the exposition make of them.
	t.Run("raw", func(t *testing.T) {
		n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}), node.Config{})
		watch := watchNames("fault_spread")
		web := startScraper(t, n.rn.URL+"/metrics", watch, checkHistogram)
		direct := startReader(t, readStored(n.store), watch, checkHistogram)
		led := newLedger()
		ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
		defer cancel()
		// At least minBatches each, and on until both readers have read
		// enough while the load runs (a fast machine finishes the minimum
		// before the readers get going); never more than maxBatches.
		const producers, minBatches, maxBatches = 3, 1000, 20_000
		enough := func() bool { return web.reads() >= 10 && direct.reads() >= 200 }
		var wg sync.WaitGroup
		for w := range producers {
			p := newPublisher(t, led, n.dial(), nodeName, fmt.Sprintf("hist-%d", w))
			wg.Go(func() {
				for i := range maxBatches {
					if i >= minBatches && (enough() || ctx.Err() != nil) {
						return
					}
					// Counts vary by batch; each bucket holds its own value.
					c := []uint64{uint64(i%3 + 1), uint64(i % 2), uint64(i%5) / 2, uint64(i%7) / 3}
					sum := 0.5*float64(c[0]) + 2*float64(c[1]) + 8*float64(c[2]) + 32*float64(c[3])
					b := p.cut(
						histogram("fault_spread", latencyBuckets, c, sum, "producer", p.id),
						histogram("fault_spread", latencyBuckets, []uint64{0, c[0], 0, c[3]}, 2*float64(c[0])+32*float64(c[3]), "producer", p.id, "kind", "b"),
					)
					p.ack(ctx, b)
				}
			})
		}
		wg.Wait()
		settle(t, n.js, n.rdb)
		web.finish(t, 10)
		direct.finish(t, 200)
		n.checkExposed(led)
	})

	// The SDK, observed from several goroutines while it flushes every
	// millisecond: an Observe racing a flush must not leave its bucket in
	// one batch and its share of the sum in the next.
	t.Run("sdk", func(t *testing.T) {
		n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}), node.Config{})
		direct := startReader(t, readStored(n.store), watchNames("fault_spread"), checkHistogram)
		p, err := producers.New(producers.Config{Node: nodeName, Name: "observer", FlushInterval: time.Millisecond, Logger: harness.Logger(t)}, n.dial())
		if err != nil {
			t.Fatal(err)
		}
		h, err := p.NewHistogram(producers.HistogramOpts{Name: "fault_spread", Help: "spread", Buckets: latencyBuckets})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, v := range []float64{0.5, 2, 8, 32} {
			wg.Go(func() {
				for i := range 20_000_000 {
					h.Observe(v)
					if i%1024 == 0 {
						select {
						case <-stop:
							return
						default:
						}
					}
				}
			})
		}
		harness.Eventually(t, loadTimeout, func() error {
			if n := direct.reads(); n < 150 {
				return fmt.Errorf("%d reads so far", n)
			}
			return nil
		})
		close(stop)
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
		settle(t, n.js, n.rdb)
		direct.finish(t, 150)
		// Once everything is applied the halves have met again.
		fams, _, err := readStored(n.store)()
		if err != nil {
			t.Fatal(err)
		}
		if err := checkHistogram(fams["fault_spread"]); err != nil {
			t.Errorf("after the last flush: %v", err)
		}
	})
}
