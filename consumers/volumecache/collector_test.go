package volumecache_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jetmetrics/jetmetrics/consumers/volumecache"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

func (r *rig) publishObs(o streams.Observation) {
	r.t.Helper()
	b, err := streams.EncodeObservation(o)
	if err != nil {
		r.t.Fatal(err)
	}
	subj, err := streams.Subjects{}.Observation(streams.ObsKindVolume, o.Volume)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.js.Publish(r.t.Context(), subj, b); err != nil {
		r.t.Fatal(err)
	}
}

func gaugeNames() []string {
	return []string{"jetmetrics_volume_iops_read", "jetmetrics_volume_iops_write", "jetmetrics_volume_throughput_bytes_read",
		"jetmetrics_volume_throughput_bytes_write", "jetmetrics_volume_latency_usec_read", "jetmetrics_volume_latency_usec_write",
		"jetmetrics_volume_metric_last_updated_timestamp_seconds"}
}

// Only the volumes this node leads with a cached, successful result have
// gauges; the figures are the result's; the gauges go when the entry
// expires, and when the volume leaves the configuration.
func TestCollector(t *testing.T) {
	r := newRig(t)
	w := r.start()
	at := time.Now().UTC().Truncate(time.Second)
	metric := streams.VolumeMetric{IOPSRead: 1200.5, IOPSWrite: 300, ThroughputBytesRead: 52428800, ThroughputBytesWrite: 1048576, LatencyUsecRead: 250, LatencyUsecWrite: 900}
	r.publishObs(streams.Observation{Volume: "svm1/a", ObservedAt: at, Status: streams.ObsStatusOK, Node: "n1", LeaseRevision: 3, Metric: metric})
	r.publishObs(streams.Observation{Volume: "failed", ObservedAt: at, Status: streams.ObsStatusError, Error: "503", Node: "n1", LeaseRevision: 3})
	r.publishObs(streams.Observation{Volume: "led-elsewhere", ObservedAt: at, Status: streams.ObsStatusOK, Node: "n2", LeaseRevision: 4, Metric: metric})
	// Observed so long ago that it expires two seconds from now.
	r.clockAt(at.Add(-ttl + 2*time.Second))
	r.publishObs(streams.Observation{Volume: "expiring", ObservedAt: at.Add(-ttl + 2*time.Second), Status: streams.ObsStatusOK, Node: "n1", LeaseRevision: 5, Metric: metric})
	w.waitRead(t, 4)

	volumes := []string{"svm1/a", "failed", "led-elsewhere", "expiring", "never-polled"}
	leads := func(v string) bool { return v != "led-elsewhere" }
	c, err := volumecache.NewCollector(r.cache, volumes, leads, 0, harness.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i, name := range gaugeNames() {
		v := []float64{1200.5, 300, 52428800, 1048576, 250, 900, float64(at.Unix())}[i]
		fmt.Fprintf(&want, "# HELP %s x\n# TYPE %s gauge\n%s{volume=\"svm1/a\"} %v\n", name, name, name, v)
	}
	// The expiring volume's gauges are there until its entry expires.
	if n := testutil.CollectAndCount(c, "jetmetrics_volume_iops_read"); n != 2 {
		t.Errorf("%d iops_read gauges before the expiry, want svm1/a and expiring", n)
	}
	harness.Eventually(t, 5*time.Second, func() error {
		return testutil.CollectAndCompare(c, strings.NewReader(helpless(want.String())), gaugeNames()...)
	})
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	gone, err := volumecache.NewCollector(r.cache, []string{"failed"}, leads, 0, harness.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(gone); n != 0 {
		t.Errorf("%d gauges once svm1/a left the configuration", n)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
}

// helpless replaces the HELP lines' "x" with the collector's help texts,
// which CollectAndCompare compares too.
func helpless(s string) string {
	helps := map[string]string{
		"jetmetrics_volume_iops_read":                             "Read operations per second of the volume, as last observed.",
		"jetmetrics_volume_iops_write":                            "Write operations per second of the volume, as last observed.",
		"jetmetrics_volume_throughput_bytes_read":                 "Bytes read per second from the volume, as last observed.",
		"jetmetrics_volume_throughput_bytes_write":                "Bytes written per second to the volume, as last observed.",
		"jetmetrics_volume_latency_usec_read":                     "Mean latency of a read from the volume in microseconds, as last observed.",
		"jetmetrics_volume_latency_usec_write":                    "Mean latency of a write to the volume in microseconds, as last observed.",
		"jetmetrics_volume_metric_last_updated_timestamp_seconds": "When the volume's exposed figures were observed, in Unix seconds.",
	}
	for name, help := range helps {
		s = strings.ReplaceAll(s, "# HELP "+name+" x\n", "# HELP "+name+" "+help+"\n")
	}
	return s
}

// The cluster collector exposes every cached, successful volume, led
// here or not, each labelled with the node whose poll it is.
func TestClusterCollector(t *testing.T) {
	r := newRig(t)
	w := r.start()
	at := time.Now().UTC().Truncate(time.Second)
	metric := streams.VolumeMetric{IOPSRead: 7}
	r.publishObs(streams.Observation{Volume: "svm1/a", ObservedAt: at, Status: streams.ObsStatusOK, Node: "n1", LeaseRevision: 3, Metric: metric})
	r.publishObs(streams.Observation{Volume: "b", ObservedAt: at, Status: streams.ObsStatusOK, Node: "n2", LeaseRevision: 4, Metric: metric})
	r.publishObs(streams.Observation{Volume: "failed", ObservedAt: at, Status: streams.ObsStatusError, Error: "503", Node: "n2", LeaseRevision: 5})
	w.waitRead(t, 3)
	c, err := volumecache.NewClusterCollector(r.cache, []string{"svm1/a", "b", "failed"}, 0, harness.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	want := "# HELP jetmetrics_volume_iops_read x\n# TYPE jetmetrics_volume_iops_read gauge\n" +
		"jetmetrics_volume_iops_read{node=\"n1\",volume=\"svm1/a\"} 7\njetmetrics_volume_iops_read{node=\"n2\",volume=\"b\"} 7\n"
	if err := testutil.CollectAndCompare(c, strings.NewReader(helpless(want)), "jetmetrics_volume_iops_read"); err != nil {
		t.Error(err)
	}
}

// SetVolumes changes the volumes a collector exposes, local or cluster:
// the next scrape has the added volume's gauges and not the removed
// one's, whatever the cache still holds; a list with a name that maps to
// no subject token is refused and the exposed volumes stay.
func TestCollectorSetVolumes(t *testing.T) {
	r := newRig(t)
	w := r.start()
	at := time.Now().UTC().Truncate(time.Second)
	for i, v := range []string{"kept", "removed", "svm1/added"} {
		r.publishObs(streams.Observation{Volume: v, ObservedAt: at, Status: streams.ObsStatusOK, Node: "n1", LeaseRevision: uint64(i + 1),
			Metric: streams.VolumeMetric{IOPSRead: float64(i + 1)}})
	}
	w.waitRead(t, 3)
	local, err := volumecache.NewCollector(r.cache, []string{"kept", "removed"}, func(string) bool { return true }, 0, harness.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := volumecache.NewClusterCollector(r.cache, []string{"kept", "removed"}, 0, harness.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	iops := func(labels string) string {
		return "# HELP jetmetrics_volume_iops_read x\n# TYPE jetmetrics_volume_iops_read gauge\n" + labels
	}
	for _, tc := range []struct {
		name          string
		c             *volumecache.Collector
		before, after string
	}{
		{"local", local,
			iops("jetmetrics_volume_iops_read{volume=\"kept\"} 1\njetmetrics_volume_iops_read{volume=\"removed\"} 2\n"),
			iops("jetmetrics_volume_iops_read{volume=\"kept\"} 1\njetmetrics_volume_iops_read{volume=\"svm1/added\"} 3\n")},
		{"cluster", cluster,
			iops("jetmetrics_volume_iops_read{node=\"n1\",volume=\"kept\"} 1\njetmetrics_volume_iops_read{node=\"n1\",volume=\"removed\"} 2\n"),
			iops("jetmetrics_volume_iops_read{node=\"n1\",volume=\"kept\"} 1\njetmetrics_volume_iops_read{node=\"n1\",volume=\"svm1/added\"} 3\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := testutil.CollectAndCompare(tc.c, strings.NewReader(helpless(tc.before)), "jetmetrics_volume_iops_read"); err != nil {
				t.Fatalf("before SetVolumes: %v", err)
			}
			if err := tc.c.SetVolumes([]string{"kept", "svm1/added"}); err != nil {
				t.Fatal(err)
			}
			if err := testutil.CollectAndCompare(tc.c, strings.NewReader(helpless(tc.after)), "jetmetrics_volume_iops_read"); err != nil {
				t.Fatalf("after SetVolumes: %v", err)
			}
			if err := tc.c.SetVolumes([]string{"kept", ""}); err == nil {
				t.Fatal("SetVolumes took an empty name")
			}
			if err := testutil.CollectAndCompare(tc.c, strings.NewReader(helpless(tc.after)), "jetmetrics_volume_iops_read"); err != nil {
				t.Fatalf("after a refused SetVolumes: %v", err)
			}
		})
	}
}
