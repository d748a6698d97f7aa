package producers_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
)

func TestConcurrentUpdatesArriveExactlyOnce(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Millisecond})

	requests, err := p.NewCounterVec(producers.Opts{Name: "requests_total", Help: "Requests."}, "worker")
	if err != nil {
		t.Fatal(err)
	}
	total, err := p.NewCounter(producers.Opts{Name: "all_total", Help: "All."})
	if err != nil {
		t.Fatal(err)
	}
	bytes, err := p.NewFloatCounter(producers.Opts{Name: "bytes_total"})
	if err != nil {
		t.Fatal(err)
	}
	last, err := p.NewGaugeVec(producers.Opts{Name: "last_iteration"}, "worker")
	if err != nil {
		t.Fatal(err)
	}
	temp, err := p.NewFloatGaugeVec(producers.Opts{Name: "temperature"}, "worker")
	if err != nil {
		t.Fatal(err)
	}
	lat, err := p.NewHistogram(producers.HistogramOpts{Name: "latency_seconds", Buckets: []float64{1, 2, 5}})
	if err != nil {
		t.Fatal(err)
	}
	wide, err := p.NewHistogramVec(producers.HistogramOpts{Name: "size_bytes", Buckets: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}, "worker")
	if err != nil {
		t.Fatal(err)
	}

	const workers, n = 8, 5000
	var wg sync.WaitGroup
	// Flush concurrently too, so cuts race with updates as often as possible.
	stopFlushing := flushBackToBack(t, p)
	for w := range workers {
		wg.Go(func() {
			label := fmt.Sprint(w)
			for i := range n {
				// Resolve through With half the time, as callers do.
				requests.MustWith(label).Inc()
				total.Add(2)
				bytes.Add(0.25)
				last.MustWith(label).Set(int64(i))
				temp.MustWith(label).Set(float64(i) / 2)
				lat.Observe(float64(i % 7))
				wide.MustWith(label).Observe(float64(i % 12))
			}
		})
	}
	wg.Wait()
	stopFlushing()
	if err := p.Close(testCtx(t)); err != nil {
		t.Fatalf("close: %v", err)
	}

	a := aggregateAll(t, readAll(t, e.stream))
	batches := a.checkSeqs(t, p.ID())
	t.Logf("%d batches, %d duplicates", batches, a.duplicates)
	if got := p.Stats().Seq; got != uint64(batches) {
		t.Errorf("Stats.Seq = %d, %d batches stored", got, batches)
	}
	for w := range workers {
		k := fmt.Sprintf("requests_total,worker=%d", w)
		if a.counters[k] != n {
			t.Errorf("%s = %v, want %d", k, a.counters[k], n)
		}
		if k := fmt.Sprintf("last_iteration,worker=%d", w); a.gauges[k] != n-1 {
			t.Errorf("%s = %v, want %d", k, a.gauges[k], n-1)
		}
		if k := fmt.Sprintf("temperature,worker=%d", w); a.gauges[k] != float64(n-1)/2 {
			t.Errorf("%s = %v, want %v", k, a.gauges[k], float64(n-1)/2)
		}
		k = fmt.Sprintf("size_bytes,worker=%d", w)
		want := make([]uint64, 11)
		wantSum := 0.0
		for i := range n {
			v := i % 12
			want[min(max(v-1, 0), 10)]++
			wantSum += float64(v)
		}
		if !slices.Equal(a.hcounts[k], want) || a.hsums[k] != wantSum {
			t.Errorf("%s = %v sum %v, want %v sum %v", k, a.hcounts[k], a.hsums[k], want, wantSum)
		}
	}
	if got := a.counters["all_total"]; got != 2*workers*n {
		t.Errorf("all_total = %v, want %d", got, 2*workers*n)
	}
	if got := a.counters["bytes_total"]; got != 0.25*workers*n {
		t.Errorf("bytes_total = %v, want %v", got, 0.25*workers*n)
	}
	wantLat := make([]uint64, 4)
	wantSum := 0.0
	for i := range n {
		v := i % 7
		switch {
		case v <= 1:
			wantLat[0]++
		case v <= 2:
			wantLat[1]++
		case v <= 5:
			wantLat[2]++
		default:
			wantLat[3]++
		}
		wantSum += float64(v)
	}
	for i := range wantLat {
		wantLat[i] *= workers
	}
	if got := a.hcounts["latency_seconds"]; !slices.Equal(got, wantLat) || a.hsums["latency_seconds"] != wantSum*workers {
		t.Errorf("latency_seconds = %v sum %v, want %v sum %v", got, a.hsums["latency_seconds"], wantLat, wantSum*workers)
	}
	if a.help["requests_total"] != "Requests." || a.help["all_total"] != "All." {
		t.Errorf("help texts %v", a.help)
	}
}

func TestFlushPublishesEverythingBefore(t *testing.T) {
	e := newEnv(t)
	// A long interval: only Flush publishes.
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	c, err := p.NewCounter(producers.Opts{Name: "c_total", Help: "C."})
	if err != nil {
		t.Fatal(err)
	}
	g, err := p.NewGauge(producers.Opts{Name: "g"})
	if err != nil {
		t.Fatal(err)
	}
	c.Add(5)
	g.Set(-7)
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatalf("flush: %v", err)
	}
	msgs := readAll(t, e.stream)
	if len(msgs) != 1 {
		t.Fatalf("%d messages after one flush, want 1", len(msgs))
	}
	b := msgs[0].batch
	if b.Seq != 1 || b.Node != "node1" || b.Producer != p.ID() || b.Time == 0 {
		t.Errorf("batch header %+v", b)
	}
	a := aggregateAll(t, msgs)
	if a.counters["c_total"] != 5 || a.gauges["g"] != -7 || a.help["c_total"] != "C." {
		t.Errorf("aggregate %+v", a)
	}

	// Nothing new: no message, no sequence consumed.
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if n := len(readAll(t, e.stream)); n != 1 {
		t.Fatalf("%d messages after an empty flush, want 1", n)
	}

	// Help is sent once per incarnation; unchanged series are left out.
	c.Inc()
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatalf("flush: %v", err)
	}
	msgs = readAll(t, e.stream)
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	b = msgs[1].batch
	if b.Seq != 2 || len(b.Metrics) != 1 || b.Metrics[0].Help != "" || b.Metrics[0].Value != 1 {
		t.Errorf("second batch %+v", b)
	}
	st := p.Stats()
	if st.Published != 2 || st.Seq != 2 || st.Series != 2 || st.Unacknowledged != 0 || st.PendingUpdates != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestNewSeriesAreAnnounced(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	v, err := p.NewHistogramVec(producers.HistogramOpts{Name: "h", Help: "H."}, "code")
	if err != nil {
		t.Fatal(err)
	}
	v.MustWith("200")
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	msgs := readAll(t, e.stream)
	if len(msgs) != 1 || len(msgs[0].batch.Metrics) != 1 {
		t.Fatalf("messages %+v", msgs)
	}
	m := msgs[0].batch.Metrics[0]
	if m.Name != "h" || m.Help != "H." || m.Labels["code"] != "200" || len(m.Buckets) != 11 || slices.Max(m.Counts) != 0 || m.Sum != 0 {
		t.Errorf("announcement %+v", m)
	}
}

func TestLargeFlushIsSplit(t *testing.T) {
	e := newEnv(t)
	const limit = 1024
	p := e.newProducer(t, producers.Config{
		FlushInterval: time.Hour,
		MaxBatchBytes: limit,
		Limits:        series.Limits{MaxLabelValueBytes: 4096},
	})
	v, err := p.NewCounterVec(producers.Opts{Name: "split_total", Help: strings.Repeat("help ", 20)}, "key")
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := range n {
		v.MustWith(fmt.Sprintf("%040d", i)).Add(uint64(i + 1))
	}
	// One series can never fit: it is dropped, the others still go.
	v.MustWith(strings.Repeat("x", 2*limit)).Inc()
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	msgs := readAll(t, e.stream)
	if len(msgs) < 2 {
		t.Fatalf("%d messages, want the flush split", len(msgs))
	}
	for _, m := range msgs {
		if m.size > limit {
			t.Errorf("message %d is %d bytes, limit %d", m.batch.Seq, m.size, limit)
		}
	}
	a := aggregateAll(t, msgs)
	if got := a.checkSeqs(t, p.ID()); got != len(msgs) {
		t.Fatalf("%d sequences for %d messages", got, len(msgs))
	}
	for i := range n {
		k := fmt.Sprintf("split_total,key=%040d", i)
		if a.counters[k] != float64(i+1) {
			t.Fatalf("%s = %v, want %d", k, a.counters[k], i+1)
		}
	}
	if len(a.counters) != n {
		t.Errorf("%d series stored, want %d", len(a.counters), n)
	}
	helps := 0
	for _, m := range msgs {
		for _, x := range m.batch.Metrics {
			if x.Help != "" {
				helps++
			}
		}
	}
	if helps != 1 {
		t.Errorf("help sent %d times, want once", helps)
	}
	if st := p.Stats(); st.Dropped != 1 || st.Seq != uint64(len(msgs)) {
		t.Errorf("stats %+v", st)
	}
}

// flushBackToBack flushes p from a goroutine of its own, one flush after
// another, until the returned stop is called; stop waits for it to end.
func flushBackToBack(t *testing.T, p *producers.Producer) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := p.Flush(testCtx(t)); err != nil {
				t.Errorf("flush: %v", err)
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// TestHistogramBatchKeepsSumAndCountTogether observes 1 from many
// goroutines while flushes race them: in every batch, not only in the
// total, the sum must equal the count, so an observation's bucket and its
// share of the sum are never cut apart.
func TestHistogramBatchKeepsSumAndCountTogether(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	h, err := p.NewHistogram(producers.HistogramOpts{Name: "ones", Buckets: []float64{0.5, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	const workers, n = 4, 20_000
	stopFlushing := flushBackToBack(t, p)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range n {
				h.Observe(1)
			}
		})
	}
	wg.Wait()
	stopFlushing()
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	var total uint64
	batches := 0
	for _, s := range readAll(t, e.stream) {
		for _, m := range s.batch.Metrics {
			var count uint64
			for _, c := range m.Counts {
				count += c
			}
			if m.Sum != float64(count) || count != m.Counts[1] {
				t.Fatalf("message %d: counts %v with sum %v; every observation is 1", s.streamSeq, m.Counts, m.Sum)
			}
			total += count
			batches++
		}
	}
	if total != workers*n {
		t.Errorf("%d observations arrived, want %d", total, workers*n)
	}
	t.Logf("%d batches", batches)
}

func TestHistogramBucketBoundaries(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	few := []float64{-1, 0, 1}
	many := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	for _, tc := range []struct {
		name    string
		buckets []float64
	}{{"few", few}, {"many", many}} {
		h, err := p.NewHistogram(producers.HistogramOpts{Name: tc.name, Buckets: tc.buckets})
		if err != nil {
			t.Fatal(err)
		}
		// Every bound exactly (le is inclusive), just above each bound, and
		// below the first.
		for _, b := range tc.buckets {
			h.Observe(b)
			h.Observe(math.Nextafter(b, math.Inf(1)))
		}
		h.Observe(tc.buckets[0] - 1)
	}
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	a := aggregateAll(t, readAll(t, e.stream))
	for name, buckets := range map[string][]float64{"few": few, "many": many} {
		want := make([]uint64, len(buckets)+1)
		want[0] = 2 // below the first and the first bound itself
		for i := 1; i <= len(buckets); i++ {
			want[i] = 2 // just above bound i-1, and bound i (or +Inf for the last)
		}
		want[len(buckets)] = 1
		if got := a.hcounts[name]; !slices.Equal(got, want) {
			t.Errorf("%s: counts %v, want %v", name, got, want)
		}
	}
}

func TestRejectedValuesAreIgnored(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	fc, _ := p.NewFloatCounter(producers.Opts{Name: "fc_total"})
	fg, _ := p.NewFloatGauge(producers.Opts{Name: "fg"})
	h, _ := p.NewHistogram(producers.HistogramOpts{Name: "h"})
	fc.Add(1.5)
	fc.Add(-1)
	fc.Add(math.NaN())
	fc.Add(math.Inf(1))
	fc.Add(0) // a no-op, not an error
	fg.Set(2.5)
	fg.Set(math.NaN())
	fg.Add(math.Inf(-1))
	h.Observe(3)
	h.Observe(math.Inf(1))
	h.Observe(math.NaN())
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	a := aggregateAll(t, readAll(t, e.stream))
	if a.counters["fc_total"] != 1.5 || a.gauges["fg"] != 2.5 || a.hsums["h"] != 3 || slices.Max(a.hcounts["h"]) != 1 {
		t.Errorf("aggregate %+v", a)
	}
	if got := p.Stats().Rejected; got != 7 {
		t.Errorf("Stats.Rejected = %d, want 7", got)
	}
}

func TestSurvivesNATSOutage(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: 10 * time.Millisecond, PublishTimeout: 200 * time.Millisecond})
	c, err := p.NewCounterVec(producers.Opts{Name: "events_total"}, "phase")
	if err != nil {
		t.Fatal(err)
	}
	g, err := p.NewGauge(producers.Opts{Name: "g"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.NewHistogram(producers.HistogramOpts{Name: "h", Buckets: []float64{10}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	update := func(phase string) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for i := range n {
					c.MustWith(phase).Inc()
					c.MustWith("all").Inc()
					g.Set(int64(i))
					h.Observe(1)
				}
			})
		}
		wg.Wait()
	}

	update("before")
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	e.srv.shutdown()
	update("during")
	// Flush cannot complete while the server is down; its data stays queued.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = p.Flush(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush during outage: %v, want deadline exceeded", err)
	}
	waitFor(t, "publish retries", func() bool { return p.Stats().Retries >= 3 })
	if st := p.Stats(); st.Unacknowledged != 1 || st.PendingUpdates == 0 || st.OldestUnsent < 300*time.Millisecond {
		t.Errorf("stats during outage %+v", st)
	}
	update("during")

	e.srv.start()
	update("after")
	g.Set(-42)
	if err := p.Close(testCtx(t)); err != nil {
		t.Fatalf("close: %v", err)
	}

	a := aggregateAll(t, readAll(t, e.stream))
	a.checkSeqs(t, p.ID())
	t.Logf("stats %+v, %d duplicates stored", p.Stats(), a.duplicates)
	for phase, want := range map[string]float64{"before": 4 * n, "during": 8 * n, "after": 4 * n, "all": 16 * n} {
		if got := a.counters["events_total,phase="+phase]; got != want {
			t.Errorf("events_total{phase=%s} = %v, want %v", phase, got, want)
		}
	}
	if a.gauges["g"] != -42 {
		t.Errorf("g = %v, want -42", a.gauges["g"])
	}
	if got := a.hcounts["h"]; !slices.Equal(got, []uint64{16 * n, 0}) || a.hsums["h"] != 16*n {
		t.Errorf("h = %v sum %v", got, a.hsums["h"])
	}
}

func TestCloseGivesUpWhenContextEnds(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour, PublishTimeout: 100 * time.Millisecond})
	c, _ := p.NewCounter(producers.Opts{Name: "c_total"})
	e.srv.shutdown()
	c.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := p.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close: %v, want deadline exceeded", err)
	}
	if again := p.Close(context.Background()); again != err {
		t.Errorf("second close: %v, want %v", again, err)
	}
	if err := p.Flush(context.Background()); !errors.Is(err, producers.ErrClosed) {
		t.Errorf("flush after close: %v, want ErrClosed", err)
	}
	c.Inc() // ignored, must not panic or block
}

func TestCloseIsIdempotent(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{})
	c, _ := p.NewCounter(producers.Opts{Name: "c_total"})
	c.Inc()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := p.Close(testCtx(t)); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	wg.Wait()
	a := aggregateAll(t, readAll(t, e.stream))
	if a.counters["c_total"] != 1 {
		t.Errorf("c_total = %v, want 1", a.counters["c_total"])
	}
}

func TestCollectorLints(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{})
	problems, err := testutil.CollectAndLint(p.Collector())
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("lint %s: %s", pr.Metric, pr.Text)
	}
	if n := testutil.CollectAndCount(p.Collector()); n != 10 {
		t.Errorf("%d metrics, want 10", n)
	}
	want := fmt.Sprintf(`
# HELP jetmetrics_producer_series Series registered.
# TYPE jetmetrics_producer_series gauge
jetmetrics_producer_series{producer=%q} 1
`, p.ID())
	if _, err := p.NewCounter(producers.Opts{Name: "x_total"}); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(p.Collector(), strings.NewReader(want), "jetmetrics_producer_series"); err != nil {
		t.Error(err)
	}
}

func TestProducerID(t *testing.T) {
	e := newEnv(t)
	a := e.newProducer(t, producers.Config{Name: "billing"})
	b := e.newProducer(t, producers.Config{Name: "billing"})
	if a.ID() == b.ID() {
		t.Fatalf("two incarnations share id %s", a.ID())
	}
	rest, ok := strings.CutPrefix(a.ID(), "billing-")
	if !ok || len(rest) != 8 || strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Errorf("id %q, want billing- and 8 lowercase base32 characters", a.ID())
	}
}

func TestConcurrentWithCreatesOneSeriesPerValues(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	v, err := p.NewCounterVec(producers.Opts{Name: "c_total"}, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, n = 8, 3000
	got := make([][]*producers.Counter, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			got[g] = make([]*producers.Counter, n)
			for i := range n {
				// Goroutines walk the values from different starts and
				// in both directions.
				k := (i + g*977) % n
				if g%2 == 1 {
					k = n - 1 - k
				}
				c := v.MustWith(fmt.Sprint(k%7), fmt.Sprint(k))
				c.Inc()
				got[g][k] = c
			}
		})
	}
	wg.Wait()
	for g := 1; g < goroutines; g++ {
		for k := range n {
			if got[g][k] != got[0][k] {
				t.Fatalf("values %d resolved to two series", k)
			}
		}
	}
	if s := p.Stats().Series; s != n {
		t.Fatalf("%d series, want %d", s, n)
	}
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	a := aggregateAll(t, readAll(t, e.stream))
	for k := range n {
		if c := a.counters[fmt.Sprintf("c_total,a=%d,b=%d", k%7, k)]; c != goroutines {
			t.Fatalf("series %d counted %v, want %d", k, c, goroutines)
		}
	}
}

func TestPrefix(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv.url())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sc := streams.Config{Prefix: "acme"}.DeltaStreamConfig()
	st, err := js.CreateStream(testCtx(t), sc)
	if err != nil {
		t.Fatal(err)
	}
	p := (&env{srv: srv, nc: nc, stream: st}).newProducer(t, producers.Config{Prefix: "acme", FlushInterval: time.Hour})
	c, _ := p.NewCounter(producers.Opts{Name: "c_total"})
	c.Inc()
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	msgs := readAll(t, st)
	if len(msgs) != 1 || msgs[0].subject != "acme.delta.node1.svc."+p.ID() {
		t.Fatalf("stream %s holds %+v", sc.Name, msgs)
	}
}

func TestHelpTooLargeForABatchIsLeftOut(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour, MaxBatchBytes: 1024})
	c, err := p.NewCounter(producers.Opts{Name: "c_total", Help: strings.Repeat("h", 2048)})
	if err != nil {
		t.Fatal(err)
	}
	c.Add(3)
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	a := aggregateAll(t, readAll(t, e.stream))
	if a.counters["c_total"] != 3 || a.help["c_total"] != "" {
		t.Errorf("aggregate %+v", a)
	}
	if d := p.Stats().Dropped; d != 0 {
		t.Errorf("%d updates dropped", d)
	}
}
