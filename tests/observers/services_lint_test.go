package observers_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	jmnode "github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	cl "github.com/jetmetrics/jetmetrics/consumers/latency"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// serviceFamilies are the families a node with probed services serves
// besides the node's own: each must be in the scrape the lint runs over,
// or the lint proves nothing of it.
var serviceFamilies = []string{
	"jetmetrics_service_latency_seconds",
	"jetmetrics_service_checks_total",
	"jetmetrics_service_latency_mean_seconds",
	"jetmetrics_service_latency_ewma_seconds",
	"jetmetrics_service_latency_window_seconds",
	"jetmetrics_service_latency_min_seconds",
	"jetmetrics_service_latency_max_seconds",
	"jetmetrics_service_up",
	"jetmetrics_service_last_success_timestamp_seconds",
	"jetmetrics_latency_state_results_total",
	"jetmetrics_latency_state_resets_total",
}

// A node probing a service that is up and one that is down, with one
// stored state reset: every family of /metrics and /metrics/cluster lints
// clean with promlint, the service families among them.
func TestServiceMetricsLint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := closed.Addr().String()
	_ = closed.Close()

	rs := harness.Redis(t)
	rn := harness.StartNode(t, jmnode.Config{Name: "n1", RedisURL: rs.URL(), SnapshotInterval: 200 * time.Millisecond, File: config.File{
		Observers: config.Observers{Probe: config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond}},
		Probes: []config.Probe{
			{Name: "up", Kind: config.ProbeTCP, Target: l.Addr().String()},
			{Name: "down", Kind: config.ProbeTCP, Target: down},
		},
	}})
	harness.Eventually(t, 20*time.Second, func() error {
		s := svcState(t, rn, "up")
		if s.State == nil || s.State.Successes == 0 {
			return fmt.Errorf("up not probed yet: %+v", s)
		}
		return nil
	})
	// A reset, so that its counter is served too.
	rdb := harness.RedisClient(t, rs)
	tok, _ := streams.TargetToken("up")
	if err := rdb.HSet(t.Context(), cl.NewStore(rdb, aggregate.DefaultKeyPrefix).Key(tok), "state", "not a latency state").Err(); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{"/metrics", "/metrics/cluster"} {
		var fams map[string]*dto.MetricFamily
		harness.Eventually(t, 20*time.Second, func() error {
			var err error
			if fams, err = harness.Scrape(rn.URL + path); err != nil {
				return err
			}
			for _, name := range serviceFamilies {
				if path == "/metrics/cluster" && (name == "jetmetrics_latency_state_resets_total" || name == "jetmetrics_latency_state_results_total") {
					continue // the node's own process metrics, not in the cluster view
				}
				if fams[name] == nil {
					return fmt.Errorf("%s: no %s yet", path, name)
				}
			}
			return nil
		})
		if w := fams["jetmetrics_service_latency_window_seconds"]; w.GetType() != dto.MetricType_SUMMARY {
			t.Errorf("%s: window percentiles typed %v, want a summary", path, w.GetType())
		} else if s := w.GetMetric()[0].GetSummary(); s.GetSampleCount() == 0 || len(s.GetQuantile()) != 3 {
			t.Errorf("%s: window summary %v", path, s)
		}
		list := make([]*dto.MetricFamily, 0, len(fams))
		for _, f := range fams {
			list = append(list, f)
		}
		problems, err := promlint.NewWithMetricFamilies(list).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: promlint: %s: %s", path, p.Metric, p.Text)
		}
	}
}
