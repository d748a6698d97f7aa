package observers_test

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	jmnode "github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// latencyTally is what jetmetrics_service_latency_seconds and
// jetmetrics_service_checks_total of one service should say: cumulative
// bucket counts by upper bound, count, sum, successes and failures.
type latencyTally struct {
	buckets             map[float64]uint64
	count               uint64
	sum                 float64
	successes, failures uint64
}

func newTally() *latencyTally {
	t := &latencyTally{buckets: map[float64]uint64{}}
	for _, b := range streams.ServiceLatencyBuckets() {
		t.buckets[b] = 0
	}
	return t
}

func (t *latencyTally) observe(d time.Duration) {
	s := float64(d) / 1e9 // the SDK's conversion
	for b := range t.buckets {
		if s <= b {
			t.buckets[b]++
		}
	}
	t.count++
	t.sum += s
	t.successes++
}

func (t *latencyTally) fail() { t.failures++ }

func (t *latencyTally) plus(o *latencyTally) *latencyTally {
	out := newTally()
	for b := range out.buckets {
		out.buckets[b] = t.buckets[b] + o.buckets[b]
	}
	out.count, out.sum = t.count+o.count, t.sum+o.sum
	out.successes, out.failures = t.successes+o.successes, t.failures+o.failures
	return out
}

// matches reports how a scrape's histogram h and checks counters differ
// from t; nil when they agree exactly (the sum to rounding).
func (t *latencyTally) matches(h *dto.Histogram, success, failure float64) error {
	if h == nil {
		return fmt.Errorf("no histogram")
	}
	if h.GetSampleCount() != t.count || float64(t.successes) != success || float64(t.failures) != failure {
		return fmt.Errorf("count %d, successes %v, failures %v; want %d, %d, %d", h.GetSampleCount(), success, failure, t.count, t.successes, t.failures)
	}
	if math.Abs(h.GetSampleSum()-t.sum) > 1e-9*math.Max(1, t.sum) {
		return fmt.Errorf("sum %v, want %v", h.GetSampleSum(), t.sum)
	}
	seen := 0
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			continue
		}
		want, ok := t.buckets[b.GetUpperBound()]
		if !ok || b.GetCumulativeCount() != want {
			return fmt.Errorf("bucket le=%v: %d, want %d (known bound %v)", b.GetUpperBound(), b.GetCumulativeCount(), want, ok)
		}
		seen++
	}
	if seen != len(t.buckets) {
		return fmt.Errorf("%d buckets, want %d", seen, len(t.buckets))
	}
	return nil
}

// streamTallies reads the stream's results of service in order and
// returns the tally of every prefix: tallies[k] holds the first k.
func streamTallies(t *testing.T, js jetstream.JetStream, service string) []*latencyTally {
	t.Helper()
	subj, _ := streams.Subjects{}.Observation(streams.ObsKindProbe, service)
	st, err := js.Stream(t.Context(), "JETMETRICS_OBS")
	if err != nil {
		t.Fatal(err)
	}
	out := []*latencyTally{newTally()}
	for seq := uint64(1); seq <= st.CachedInfo().State.LastSeq; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil || m.Subject != subj {
			continue
		}
		r, err := streams.DecodeProbeResult(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		next := out[len(out)-1].plus(newTally())
		if r.Success {
			next.observe(r.Latency)
		} else {
			next.fail()
		}
		out = append(out, next)
	}
	return out
}

// serviceSeries returns, from a scrape, service's latency histogram and
// its success and failure counts, of the series whose labels besides
// service and result are extra.
func serviceSeries(fams map[string]*dto.MetricFamily, service string, extra map[string]string) (*dto.Histogram, float64, float64) {
	match := func(m *dto.Metric) (string, bool) {
		n, result := 0, ""
		for _, l := range m.GetLabel() {
			switch {
			case l.GetName() == streams.ServiceLabel:
				if l.GetValue() != service {
					return "", false
				}
			case l.GetName() == streams.ResultLabel:
				result = l.GetValue()
			case extra[l.GetName()] == l.GetValue():
				n++
			default:
				return "", false
			}
		}
		return result, n == len(extra)
	}
	var h *dto.Histogram
	for _, m := range fams[streams.ServiceLatencyName].GetMetric() {
		if _, ok := match(m); ok {
			h = m.GetHistogram()
		}
	}
	var success, failure float64
	for _, m := range fams[streams.ServiceChecksName].GetMetric() {
		switch r, ok := match(m); {
		case ok && r == streams.ResultSuccess:
			success = m.GetCounter().GetValue()
		case ok && r == streams.ResultFailure:
			failure = m.GetCounter().GetValue()
		}
	}
	return h, success, failure
}

// A node probes an HTTP server that answers fast, slow or 503; a service
// process records its own calls to the same service through the SDK's
// latency handle. The probing node's /metrics, and another node's
// /metrics/cluster for the probing node, show jetmetrics_service_latency_seconds
// and jetmetrics_service_checks_total exactly as the stream's results (a
// prefix of them: the probes go on) plus the process's known samples say:
// every bucket, the count, the sum, successes and failures.
func TestProbeLatencyHistogram(t *testing.T) {
	var hits atomic.Int64
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch hits.Add(1) % 4 {
		case 0:
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		case 1:
			select { // a slow answer, in a later bucket than the fast ones
			case <-time.After(30 * time.Millisecond):
			case <-r.Context().Done():
			}
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(web.Close)

	ns := harness.NATS(t)
	const service = "web"
	n1 := harness.StartNode(t, jmnode.Config{Name: "n1", NATSURL: ns.ClientURL(), SnapshotInterval: 300 * time.Millisecond, File: config.File{
		Observers: config.Observers{Probe: config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond}},
		Probes:    []config.Probe{{Name: service, Kind: config.ProbeHTTP, Target: web.URL + "/health"}},
	}})
	n2 := harness.StartNode(t, jmnode.Config{Name: "n2", NATSURL: ns.ClientURL(), SnapshotInterval: 300 * time.Millisecond})
	nc := n1.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	// The service process: known samples from several goroutines, flushed
	// by Close into n1's aggregate.
	app, err := producers.New(producers.Config{Node: "n1", Name: "app"}, nc)
	if err != nil {
		t.Fatal(err)
	}
	h, err := app.Latency(service)
	if err != nil {
		t.Fatal(err)
	}
	known := newTally()
	samples := []time.Duration{200 * time.Microsecond, 3 * time.Millisecond, 40 * time.Millisecond, 700 * time.Millisecond, 2 * time.Second}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, d := range samples {
				h.Observe(d)
			}
			h.Fail(fmt.Errorf("connection refused"))
		})
	}
	wg.Wait()
	for range 4 {
		for _, d := range samples {
			known.observe(d)
		}
		known.fail()
	}
	if err := app.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		what  string
		url   string
		extra map[string]string
	}{
		{"probing node's /metrics", n1.URL + "/metrics", nil},
		{"other node's /metrics/cluster", n2.URL + "/metrics/cluster", map[string]string{"node": "n1"}},
	} {
		harness.Eventually(t, 30*time.Second, func() error {
			fams, err := harness.Scrape(c.url)
			if err != nil {
				return err
			}
			hist, success, failure := serviceSeries(fams, service, c.extra)
			prefixes := streamTallies(t, js, service)
			last := prefixes[len(prefixes)-1]
			if last.successes < 3 || last.failures < 1 {
				return fmt.Errorf("the stream holds %d successes, %d failures so far", last.successes, last.failures)
			}
			// The newest prefix first: the scrape may lag the stream by a
			// flush and a snapshot, never lead it.
			var firstErr error
			for k := len(prefixes) - 1; k >= 0; k-- {
				p := prefixes[k]
				if p.successes < 3 || p.failures < 1 {
					break // too early a prefix to prove the probes arrive
				}
				err := p.plus(known).matches(hist, success, failure)
				if err == nil {
					return nil
				}
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: against the stream's %d results: %w", c.what, k, err)
				}
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: no prefix of the stream's results", c.what)
			}
			return firstErr
		})
	}
}
