package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// latencyLoad is what one process records through its latency handles:
// for each of goroutines, iterations calls to each service, every
// failEvery-th one failed, the others taking samples[i%len(samples)].
type latencyLoad struct {
	goroutines, iterations, failEvery int
	services                          []string
}

// Multiples of 1/512 s: whole nanoseconds, exact in binary, so every sum
// is exact whatever the order of addition. They fall in the buckets of
// 2^-13 (the lowest), 2^-9, 2^-6, 2^-3, 1 and 2 (bounds themselves: le is
// inclusive) and +Inf (past 128 s).
var latencySamples = []time.Duration{
	0, time.Second / 512, time.Second / 64, time.Second / 8, time.Second, 2 * time.Second, 256 * time.Second,
}

// run publishes the load through a producer of the node and closes it.
func (l latencyLoad) run(t *testing.T, rn *harness.RunningNode, name string) {
	t.Helper()
	p, err := producers.New(producers.Config{Node: rn.Name(), Name: name, FlushInterval: 20 * time.Millisecond}, rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, service := range l.services {
		for range l.goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lat, err := p.Latency(service)
				if err != nil {
					t.Error(err)
					return
				}
				for i := range l.iterations {
					if i%l.failEvery == l.failEvery-1 {
						lat.Fail(errors.New("upstream said 503"))
						continue
					}
					lat.Observe(latencySamples[i%len(latencySamples)])
				}
			}()
		}
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// want is the exposition the load makes, with labels as the text format
// orders them: node (when not empty) first, le last.
func (l latencyLoad) want(node string) map[string]float64 {
	bounds := streams.ServiceLatencyBuckets()
	counts := make([]float64, len(bounds)+1)
	var sum, ok, failed float64
	for i := range l.iterations {
		if i%l.failEvery == l.failEvery-1 {
			failed++
			continue
		}
		s := latencySamples[i%len(latencySamples)].Seconds()
		b := len(bounds)
		for j, ub := range bounds {
			if s <= ub {
				b = j
				break
			}
		}
		counts[b]++
		sum += s
		ok++
	}
	g := float64(l.goroutines)
	out := map[string]float64{}
	for _, service := range l.services {
		lbl := fmt.Sprintf("service=%q", service)
		if node != "" {
			lbl = fmt.Sprintf("node=%q,", node) + lbl
		}
		var cum float64
		for j, ub := range bounds {
			cum += counts[j]
			out[fmt.Sprintf("%s_bucket{%s,le=%q}", streams.ServiceLatencyName, lbl, fmt.Sprint(ub))] = g * cum
		}
		out[fmt.Sprintf("%s_bucket{%s,le=\"+Inf\"}", streams.ServiceLatencyName, lbl)] = g * ok
		out[fmt.Sprintf("%s_count{%s}", streams.ServiceLatencyName, lbl)] = g * ok
		out[fmt.Sprintf("%s_sum{%s}", streams.ServiceLatencyName, lbl)] = g * sum
		result := func(r string) string {
			if node == "" {
				return fmt.Sprintf("%s{result=%q,service=%q}", streams.ServiceChecksName, r, service)
			}
			return fmt.Sprintf("%s{node=%q,result=%q,service=%q}", streams.ServiceChecksName, node, r, service)
		}
		out[result(streams.ResultSuccess)] = g * ok
		out[result(streams.ResultFailure)] = g * failed
	}
	return out
}

// expectServiceView polls url until its jetmetrics_service_* samples are
// exactly want, nothing more, with the families typed histogram and
// counter.
func expectServiceView(t *testing.T, url string, want map[string]float64) {
	t.Helper()
	harness.Eventually(t, converge, func() error {
		fams, err := harness.Scrape(url)
		if err != nil {
			return err
		}
		got := harness.Samples(fams)
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				return fmt.Errorf("%s: %s = %v (present %v), want %v", url, k, g, ok, v)
			}
		}
		for k, v := range got {
			if strings.HasPrefix(k, "jetmetrics_service_") {
				if _, ok := want[k]; !ok {
					return fmt.Errorf("%s: unexpected sample %s = %v", url, k, v)
				}
			}
		}
		for name, typ := range map[string]dto.MetricType{
			streams.ServiceLatencyName: dto.MetricType_HISTOGRAM,
			streams.ServiceChecksName:  dto.MetricType_COUNTER,
		} {
			if f := fams[name]; f.GetType() != typ {
				return fmt.Errorf("%s: family %s has type %v, want %v", url, name, f.GetType(), typ)
			}
		}
		return nil
	})
}

// TestServiceLatencyHandleExact: two nodes on one NATS; on each, a
// process's latency handles record known calls from many goroutines to the
// same services. Each node's /metrics shows exactly its own process's
// histogram and check counts, and each node's /metrics/cluster shows both
// nodes', exactly, with the node label.
func TestServiceLatencyHandleExact(t *testing.T) {
	ns := harness.NATS(t)
	cfg := func(name string) node.Config {
		return node.Config{Name: name, NATSURL: ns.ClientURL(), SnapshotInterval: 200 * time.Millisecond, SnapshotTTL: 10 * time.Second}
	}
	a := harness.StartNode(t, cfg("a"))
	b := harness.StartNode(t, cfg("b"))

	loadA := latencyLoad{goroutines: 8, iterations: 2000, failEvery: 5, services: []string{"payments-api", "ledger"}}
	loadB := latencyLoad{goroutines: 3, iterations: 700, failEvery: 4, services: []string{"payments-api"}}
	loadA.run(t, a, "checkout")
	loadB.run(t, b, "refunds")

	expectServiceView(t, a.URL+"/metrics", loadA.want(""))
	expectServiceView(t, b.URL+"/metrics", loadB.want(""))
	cluster := loadA.want("a")
	for k, v := range loadB.want("b") {
		cluster[k] = v
	}
	expectServiceView(t, a.URL+"/metrics/cluster", cluster)
	expectServiceView(t, b.URL+"/metrics/cluster", cluster)
}
