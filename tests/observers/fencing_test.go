package observers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	jmnode "github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// fencedView is what a node shows of one volume: the API's answer and
// the iops_read gauge of /metrics and of /metrics/cluster (with the node
// label of the series there).
type fencedView struct {
	api         result
	local       float64
	cluster     float64
	clusterNode string
}

func viewOf(t *testing.T, rn *harness.RunningNode, volume string) (fencedView, error) {
	t.Helper()
	var v fencedView
	var r result
	if code := get(t, rn.URL+"/api/v1/volumes/"+url.PathEscape(volume)+"/performance-metric", &r); code != http.StatusOK {
		return v, fmt.Errorf("performance-metric: %d %+v", code, r)
	}
	v.api = r
	local, err := harness.Scrape(rn.URL + "/metrics")
	if err != nil {
		return v, err
	}
	v.local = harness.Samples(local)[fmt.Sprintf(`jetmetrics_volume_iops_read{volume=%q}`, volume)]
	cluster, err := harness.Scrape(rn.URL + "/metrics/cluster")
	if err != nil {
		return v, err
	}
	for _, m := range cluster["jetmetrics_volume_iops_read"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["volume"] == volume {
			v.cluster, v.clusterNode = m.GetGauge().GetValue(), labels["node"]
		}
	}
	return v, nil
}

// want returns an error unless every view of the volume shows iops from
// node's result observed at at.
func (v fencedView) want(iops float64, node string, at time.Time) error {
	if v.api.Source != "cache" || v.api.Metric == nil || v.api.Metric.IOPSRead != iops || v.api.Node != node ||
		v.api.ObservedAt == nil || !v.api.ObservedAt.Equal(at) || v.api.Stale {
		return fmt.Errorf("API: %+v (metric %+v), want %v from %s at %s, from the cache", v.api, v.api.Metric, iops, node, at)
	}
	if v.local != iops || v.cluster != iops || v.clusterNode != node {
		return fmt.Errorf("gauges: /metrics %v, /metrics/cluster %v from %q; want %v from %s", v.local, v.cluster, v.clusterNode, iops, node)
	}
	return nil
}

// A node caches the current leader's result; results of a deposed leader
// published after it — an older observation, or the same instant under an
// older lease revision — change neither its API answer nor its gauges. A
// result of the same instant under a newer revision does. The results are
// published by an admin connection to the node's NATS, as a deposed leader
// whose publish was delayed would.
func TestFencedResultKeepsTheNewer(t *testing.T) {
	vol := quiet("fenced") // not polled by the node during the test: only these results count
	arr := newArray(t, 1, 0)
	rn := harness.StartNode(t, jmnode.Config{File: config.File{
		Observers: observers(time.Hour, 2*time.Second, 10*time.Minute),
		Volumes:   []config.Volume{arr.volume(vol)},
	}})
	js, err := jetstream.New(rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := streams.ObsConfig{}.Subjects().Observation(streams.ObsKindVolume, vol)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(iops float64, node string, at time.Time, revision uint64) {
		t.Helper()
		data, err := streams.EncodeObservation(streams.Observation{Volume: vol, Metric: streams.VolumeMetric{IOPSRead: iops},
			ObservedAt: at, Duration: time.Millisecond, Status: streams.ObsStatusOK, Node: node, LeaseRevision: revision})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(t.Context(), subject, data); err != nil {
			t.Fatal(err)
		}
	}
	// written counts the results the node's cache writer found stale and
	// stored: the API is asked only once the writer has read them, so that
	// a miss does not call the backend live.
	written := func(result string) float64 {
		fams, err := harness.Scrape(rn.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return harness.Samples(fams)[fmt.Sprintf(`jetmetrics_volume_cache_results_total{result=%q}`, result)]
	}
	waitWritten := func(stored, stale float64) {
		t.Helper()
		harness.Eventually(t, 10*time.Second, func() error {
			if got, st := written("stored"), written("stale"); got != stored || st != stale {
				return fmt.Errorf("the cache writer stored %v results and found %v stale, want %v and %v", got, st, stored, stale)
			}
			return nil
		})
	}
	stored0, stale0 := written("stored"), written("stale")

	at := time.Now().Truncate(time.Second).Add(-2 * time.Second)
	publish(10, "leader", at, 1000)
	waitWritten(stored0+1, stale0)
	harness.Eventually(t, 10*time.Second, func() error {
		v, err := viewOf(t, rn, vol)
		if err != nil {
			return err
		}
		return v.want(10, "leader", at)
	})

	publish(99, "deposed", at.Add(-time.Second), 900) // its last poll, an instant earlier
	publish(98, "deposed", at, 999)                   // the same instant, under its older lease
	waitWritten(stored0+1, stale0+2)
	v, err := viewOf(t, rn, vol)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.want(10, "leader", at); err != nil {
		t.Errorf("after the deposed leader's results: %v", err)
	}
	if arr.calls.Load() != 0 {
		t.Errorf("the backend was called %d times: the answers were not the cache's", arr.calls.Load())
	}

	// The same instant under a newer lease replaces it.
	publish(11, "successor", at, 1001)
	waitWritten(stored0+2, stale0+2)
	harness.Eventually(t, 10*time.Second, func() error {
		v, err := viewOf(t, rn, vol)
		if err != nil {
			return err
		}
		return v.want(11, "successor", at)
	})
}
