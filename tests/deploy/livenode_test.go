package deploy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// liveSeriesNames starts a node that has every kind of input a dashboard
// or an alert can show (deltas from the demo producer, the machine's disks
// as volumes, one service probe that succeeds and one that fails, a peer,
// deltas for a node nobody runs), waits until its /metrics shows each, and
// returns the sample names it exports: histogram families as their
// _bucket, _sum and _count series.
func liveSeriesNames(t *testing.T) map[string]bool {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(up.Close)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	rn := harness.StartNode(t, node.Config{
		Demo: true, DemoInterval: 200 * time.Millisecond,
		// Bounded streams export their bounds (jetmetrics_stream_max_bytes).
		Streams:          streams.Config{DeltaMaxBytes: 64 << 20, DeadLetterMaxBytes: 16 << 20},
		SnapshotInterval: 500 * time.Millisecond, OrphanScanInterval: 500 * time.Millisecond,
		File: config.File{
			Observers: config.Observers{
				Probe:  config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond},
				Volume: config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond},
			},
			Probes: []config.Probe{
				{Name: "up-svc", Kind: config.ProbeHTTP, Target: up.URL},
				{Name: "down-svc", Kind: config.ProbeHTTP, Target: down.URL},
			},
		},
	})
	// A peer, and a delta for a node nobody runs.
	harness.StartNode(t, node.Config{Name: "n2", NATSURL: rn.NATSURL(), SnapshotInterval: 500 * time.Millisecond, Streams: rn.Config.Streams})
	nc := rn.Connect(t)
	if err := nc.Publish("jetmetrics.delta.ghost.p-1", []byte(`{"v":1,"node":"ghost","producer":"p-1","seq":1,"metrics":[{"name":"jobs_total","type":"counter","value":1}]}`)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"jetmetrics_peer_up", "jetmetrics_peer_snapshot_age_seconds", "jetmetrics_orphan_deltas",
		"jetmetrics_service_latency_seconds_bucket", "jetmetrics_service_up", "jetmetrics_volume_iops_read",
		"jetmetrics_observer_leader", "jetmetrics_aggregator_applies_total", "demo_http_requests_total",
		"jetmetrics_snapshot_published_total", "jetmetrics_stream_max_bytes",
	}
	var names map[string]bool
	harness.Eventually(t, 60*time.Second, func() error {
		fams, err := harness.Scrape(rn.URL + "/metrics")
		if err != nil {
			return err
		}
		names = seriesNames(fams)
		for _, w := range want {
			if !names[w] {
				return fmt.Errorf("%s not exported yet", w)
			}
		}
		return nil
	})
	return names
}

func seriesNames(fams map[string]*dto.MetricFamily) map[string]bool {
	names := map[string]bool{}
	for name, f := range fams {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		case dto.MetricType_SUMMARY:
			for _, s := range []string{"", "_sum", "_count"} {
				names[name+s] = true
			}
		default:
			names[name] = true
		}
	}
	return names
}
