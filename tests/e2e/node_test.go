package e2e_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

const converge = 30 * time.Second

// TestTwoProducersExact: two producers, many goroutines each, a known
// number of increments, gauge sets and observations across labelled series;
// after Close, /metrics shows exactly the expected values with the right
// types.
func TestTwoProducersExact(t *testing.T) {
	rn := harness.StartNode(t, node.Config{})
	const goroutines, iterations = 8, 20000
	routes := []string{"/", "/a", "/b", "/c"}
	observations := []float64{0.0625, 0.5, 4, 32} // exact in binary, one per bucket

	var wg sync.WaitGroup
	var closers []*producers.Producer
	for _, name := range []string{"svc-a", "svc-b"} {
		p, err := producers.New(producers.Config{Node: rn.Name(), Name: name, FlushInterval: 50 * time.Millisecond}, rn.Connect(t))
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, p)
		requests, _ := p.NewCounterVec(producers.Opts{Name: "e2e_requests_total", Help: "requests"}, "route")
		work, _ := p.NewFloatCounter(producers.Opts{Name: "e2e_work_seconds_total", Help: "work"})
		last, _ := p.NewGaugeVec(producers.Opts{Name: "e2e_worker_last_iteration", Help: "last"}, "producer", "worker")
		level, _ := p.NewFloatGaugeVec(producers.Opts{Name: "e2e_level", Help: "level"}, "producer")
		latency, err := p.NewHistogramVec(producers.HistogramOpts{Name: "e2e_latency_seconds", Help: "latency", Buckets: []float64{0.1, 1, 10}}, "producer")
		if err != nil {
			t.Fatal(err)
		}
		level.MustWith(name).Set(-1)
		for w := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lastW := last.MustWith(name, fmt.Sprint(w))
				lat := latency.MustWith(name)
				for i := range iterations {
					requests.MustWith(routes[i%len(routes)]).Inc()
					work.Add(0.25)
					lastW.Set(int64(i))
					lat.Observe(observations[i%len(observations)])
				}
				if w == 0 {
					level.MustWith(name).Set(float64(len(name)) + 0.5)
				}
			}()
		}
	}
	wg.Wait()
	for _, p := range closers {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}

	total := 2 * goroutines * iterations
	want := map[string]float64{
		`e2e_work_seconds_total`:                                 float64(total) * 0.25,
		`e2e_level{producer="svc-a"}`:                            5.5,
		`e2e_level{producer="svc-b"}`:                            5.5,
		`e2e_latency_seconds_count{producer="svc-a"}`:            float64(total / 2),
		`e2e_latency_seconds_sum{producer="svc-a"}`:              float64(total/2/4) * (0.0625 + 0.5 + 4 + 32),
		`e2e_latency_seconds_bucket{producer="svc-a",le="0.1"}`:  float64(total / 2 / 4),
		`e2e_latency_seconds_bucket{producer="svc-a",le="1"}`:    float64(total / 2 / 4 * 2),
		`e2e_latency_seconds_bucket{producer="svc-a",le="10"}`:   float64(total / 2 / 4 * 3),
		`e2e_latency_seconds_bucket{producer="svc-a",le="+Inf"}`: float64(total / 2),
		`e2e_latency_seconds_count{producer="svc-b"}`:            float64(total / 2),
	}
	for _, r := range routes {
		want[fmt.Sprintf(`e2e_requests_total{route=%q}`, r)] = float64(total / len(routes))
	}
	for _, name := range []string{"svc-a", "svc-b"} {
		for w := range goroutines {
			want[fmt.Sprintf(`e2e_worker_last_iteration{producer=%q,worker="%d"}`, name, w)] = iterations - 1
		}
	}
	types := map[string]dto.MetricType{
		"e2e_requests_total":        dto.MetricType_COUNTER,
		"e2e_work_seconds_total":    dto.MetricType_COUNTER,
		"e2e_worker_last_iteration": dto.MetricType_GAUGE,
		"e2e_level":                 dto.MetricType_GAUGE,
		"e2e_latency_seconds":       dto.MetricType_HISTOGRAM,
	}
	expectMetrics(t, rn.URL+"/metrics", want, types)
}

// expectMetrics polls url until every sample in want has its value and
// every family in types its type, then checks no e2e sample is unexpected.
func expectMetrics(t *testing.T, url string, want map[string]float64, types map[string]dto.MetricType) {
	t.Helper()
	harness.Eventually(t, converge, func() error {
		fams, err := harness.Scrape(url)
		if err != nil {
			return err
		}
		got := harness.Samples(fams)
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				return fmt.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
			}
		}
		for name, typ := range types {
			if f := fams[name]; f == nil || f.GetType() != typ {
				return fmt.Errorf("family %s has type %v, want %v", name, f.GetType(), typ)
			}
		}
		return nil
	})
}

// TestPlainNATSJSON publishes the wire format with plain nats.go, no SDK,
// exactly as docs/wire-format.md describes, including a retry with the same
// id, and sees it in /metrics once.
func TestPlainNATSJSON(t *testing.T) {
	rn := harness.StartNode(t, node.Config{Name: "node-a"})
	nc := rn.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	publish := func(seq int, body string) {
		msg := nats.NewMsg("jetmetrics.delta.node-a.shell-demo-1")
		msg.Header.Set("Nats-Msg-Id", fmt.Sprintf("shell-demo-1:%d", seq))
		msg.Data = []byte(body)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	first := `{"v":1,"node":"node-a","producer":"shell-demo-1","seq":1,"metrics":[
    {"name":"shell_jobs_total","type":"counter","help":"Jobs run from the shell.","labels":{"queue":"default"},"value":3},
    {"name":"shell_queue_depth","type":"gauge","value":7},
    {"name":"shell_job_seconds","type":"histogram","buckets":[0.1,1,10],"counts":[0,1,1,0],"sum":3.4}]}`
	publish(1, first)
	publish(1, first) // a retry: the broker's dedup window drops it
	publish(2, `{"v":1,"node":"node-a","producer":"shell-demo-1","seq":2,"metrics":[
    {"name":"shell_jobs_total","type":"counter","labels":{"queue":"default"},"value":2},
    {"name":"shell_queue_depth","type":"gauge","value":4}]}`)
	expectMetrics(t, rn.URL+"/metrics", map[string]float64{
		`shell_jobs_total{queue="default"}`:   5,
		`shell_queue_depth`:                   4,
		`shell_job_seconds_bucket{le="0.1"}`:  0,
		`shell_job_seconds_bucket{le="1"}`:    1,
		`shell_job_seconds_bucket{le="10"}`:   2,
		`shell_job_seconds_bucket{le="+Inf"}`: 2,
		`shell_job_seconds_count`:             2,
		`shell_job_seconds_sum`:               3.4,
	}, map[string]dto.MetricType{
		"shell_jobs_total":  dto.MetricType_COUNTER,
		"shell_queue_depth": dto.MetricType_GAUGE,
		"shell_job_seconds": dto.MetricType_HISTOGRAM,
	})
	fams, err := harness.Scrape(rn.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if h := fams["shell_jobs_total"].GetHelp(); h != "Jobs run from the shell." {
		t.Errorf("help = %q", h)
	}
}

// TestRestartContinues stops a node and starts it again on the same data
// dir: counters continue where they were, they do not reset.
func TestRestartContinues(t *testing.T) {
	dir := t.TempDir()
	publish := func(rn *harness.RunningNode, n int) {
		p, err := producers.New(producers.Config{Node: rn.Name(), Name: "restarter"}, rn.Connect(t))
		if err != nil {
			t.Fatal(err)
		}
		c, _ := p.NewCounter(producers.Opts{Name: "restart_events_total", Help: "events"})
		g, _ := p.NewFloatGauge(producers.Opts{Name: "restart_gauge", Help: "g"})
		c.Add(uint64(n))
		g.Set(float64(n))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rn := harness.StartNode(t, node.Config{DataDir: dir})
	publish(rn, 5)
	expectMetrics(t, rn.URL+"/metrics", map[string]float64{"restart_events_total": 5, "restart_gauge": 5}, nil)
	rn.Stop(t)

	rn = harness.StartNode(t, node.Config{DataDir: dir})
	expectMetrics(t, rn.URL+"/metrics", map[string]float64{"restart_events_total": 5, "restart_gauge": 5}, nil)
	publish(rn, 3)
	expectMetrics(t, rn.URL+"/metrics", map[string]float64{"restart_events_total": 8, "restart_gauge": 3}, nil)
}
