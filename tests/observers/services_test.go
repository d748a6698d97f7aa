package observers_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	jmnode "github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	cl "github.com/jetmetrics/jetmetrics/consumers/latency"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/latency"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	pp "github.com/jetmetrics/jetmetrics/producers/probes"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// svcLatency is GET /api/v1/services/{name}/latency.
type svcLatency struct {
	Service string            `json:"service"`
	Up      *bool             `json:"up"`
	Node    string            `json:"node"`
	Leader  string            `json:"leader"`
	Seq     uint64            `json:"seq"`
	State   *latency.Snapshot `json:"state"`
}

func svcState(t *testing.T, rn *harness.RunningNode, service string) svcLatency {
	t.Helper()
	var s svcLatency
	if code := get(t, rn.URL+"/api/v1/services/"+url.PathEscape(service)+"/latency", &s); code != http.StatusOK {
		t.Fatalf("latency of %s: %d", service, code)
	}
	return s
}

// streamFold folds the stream's results of service with sequences in
// (after, upTo] into a fresh tracker, as the nodes should have: the
// reference every node's state is compared with.
func streamFold(t *testing.T, js jetstream.JetStream, service string, after, upTo uint64) (latency.Snapshot, int) {
	t.Helper()
	st, err := js.Stream(t.Context(), "JETMETRICS_OBS")
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := streams.Subjects{}.Observation(streams.ObsKindProbe, service)
	tr, _ := latency.New(latency.Config{})
	n := 0
	for seq := after + 1; seq <= upTo; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil || m.Subject != subj {
			continue
		}
		r, err := streams.DecodeProbeResult(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if r.Success {
			_ = tr.Observe(r.ObservedAt, r.Latency)
		} else {
			_ = tr.Fail(r.ObservedAt, r.Reason+": "+r.Error)
		}
		n++
	}
	return tr.Snapshot(), n
}

// sameAsStream checks that a node's state is the fold of the stream's
// results up to the node's position, after the given sequence.
func sameAsStream(t *testing.T, js jetstream.JetStream, s svcLatency, after uint64) error {
	want, n := streamFold(t, js, s.Service, after, s.Seq)
	if s.State == nil {
		return fmt.Errorf("%s: no state", s.Service)
	}
	got := *s.State
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("%s at seq %d: state %+v, the stream's %d results say %+v", s.Service, s.Seq, got, n, want)
	}
	return nil
}

// upGauges counts, in a scrape of url, the jetmetrics_service_up series of
// each service, and returns the last value seen of each.
func upGauges(url string) (map[string]int, map[string]float64, error) {
	fams, err := harness.Scrape(url)
	if err != nil {
		return nil, nil, err
	}
	count, val := map[string]int{}, map[string]float64{}
	for _, m := range fams["jetmetrics_service_up"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "service" {
				count[l.GetValue()]++
				val[l.GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	return count, val, nil
}

// Two nodes (own Redis each, one NATS) probe an HTTP server that is slow,
// then failing, then healthy again: both nodes hold exactly the state the
// stream's results say, and up follows; a corrupt stored state is reset,
// counted, and started again from the next result; the probing node
// stops and the other continues the same state with no result folded
// twice; scraping both nodes yields each service's gauges once.
func TestNodesFoldServiceLatency(t *testing.T) {
	var mode atomic.Int32 // 0 slow, 1 failing, 2 healthy
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case 0:
			select {
			case <-time.After(30 * time.Millisecond):
			case <-r.Context().Done():
			}
		case 1:
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(web.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpAddr := l.Addr().String()
	t.Cleanup(func() { _ = l.Close() })

	ns := harness.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	file := config.File{
		Observers: config.Observers{Probe: config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond}},
		Probes: []config.Probe{
			{Name: "web/api", Kind: config.ProbeHTTP, Target: web.URL + "/health"},
			{Name: "db", Kind: config.ProbeTCP, Target: tcpAddr},
		},
	}
	rss := []*redisserver.Server{harness.Redis(t), harness.Redis(t)}
	nodes := make([]*harness.RunningNode, 2)
	for i := range nodes {
		nodes[i] = harness.StartNode(t, jmnode.Config{Name: fmt.Sprintf("n%d", i+1), NATSURL: ns.ClientURL(), RedisURL: rss[i].URL(), File: file})
	}

	// Every node: the service's state is the stream's, with phase-wise
	// counts.
	waitState := func(what string, alive []*harness.RunningNode, cond func(s svcLatency) error) {
		t.Helper()
		harness.Eventually(t, 20*time.Second, func() error {
			for _, rn := range alive {
				s := svcState(t, rn, "web/api")
				if err := cond(s); err != nil {
					return fmt.Errorf("%s: %s: %w", rn.Name(), what, err)
				}
			}
			return nil
		})
	}
	waitState("slow", nodes, func(s svcLatency) error {
		if s.State == nil || s.State.Successes < 2 || s.Up == nil || !*s.Up {
			return fmt.Errorf("%+v", s)
		}
		if s.State.MinSeconds < 0.03 {
			return fmt.Errorf("min %v below the server's delay", s.State.MinSeconds)
		}
		return sameAsStream(t, js, s, 0)
	})
	var before latency.Snapshot
	mode.Store(1)
	waitState("failing", nodes, func(s svcLatency) error {
		if s.State == nil || s.State.ConsecutiveFailures < 2 || s.Up == nil || *s.Up || !strings.Contains(s.State.LastError, "503") {
			return fmt.Errorf("%+v", s)
		}
		before = *s.State
		return sameAsStream(t, js, s, 0)
	})
	// Failures changed no latency statistic.
	ok := svcState(t, nodes[0], "web/api")
	if ok.State.MeanSeconds != before.MeanSeconds || ok.State.Count != before.Count || ok.State.MaxSeconds != before.MaxSeconds {
		t.Errorf("failures moved a latency statistic: %+v vs %+v", ok.State, before)
	}
	mode.Store(2)
	waitState("healthy again", nodes, func(s svcLatency) error {
		if s.Up == nil || !*s.Up || s.State.Successes <= before.Successes {
			return fmt.Errorf("%+v", s)
		}
		return sameAsStream(t, js, s, 0)
	})
	if s := svcState(t, nodes[0], "db"); s.State == nil || s.State.Successes == 0 {
		t.Errorf("db: %+v", s)
	}

	// /metrics of both nodes together: each service's gauges once.
	harness.Eventually(t, 10*time.Second, func() error {
		total := map[string]int{}
		for _, rn := range nodes {
			c, _, err := upGauges(rn.URL + "/metrics")
			if err != nil {
				return err
			}
			for k, v := range c {
				total[k] += v
			}
		}
		if total["web/api"] != 1 || total["db"] != 1 {
			return fmt.Errorf("up gauges across the nodes: %v", total)
		}
		return nil
	})
	c, v, err := upGauges(nodes[1].URL + "/metrics/cluster")
	if err != nil || c["web/api"] != 1 || v["web/api"] != 1 {
		t.Errorf("/metrics/cluster: %v %v %v", c, v, err)
	}

	// Corrupt n1's stored states: bytes that are no state, and a key of
	// the wrong type. Each reset is counted, and the next result starts
	// the state again.
	rdb := harness.RedisClient(t, rss[0])
	store := cl.NewStore(rdb, aggregate.DefaultKeyPrefix)
	webTok, _ := streams.TargetToken("web/api")
	dbTok, _ := streams.TargetToken("db")
	mark := svcState(t, nodes[0], "web/api").Seq
	if err := rdb.HSet(t.Context(), store.Key(webTok), "state", "not a latency state").Err(); err != nil {
		t.Fatal(err)
	}
	markDB := svcState(t, nodes[0], "db").Seq
	if err := rdb.Set(t.Context(), store.Key(dbTok), "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		service string
		after   uint64
	}{{"web/api", mark}, {"db", markDB}} {
		harness.Eventually(t, 20*time.Second, func() error {
			s := svcState(t, nodes[0], c.service)
			if s.Seq <= c.after {
				return fmt.Errorf("%s not folded since the corruption", c.service)
			}
			// The state holds only what came after the reset.
			return sameAsStream(t, js, s, c.after)
		})
	}
	fams, err := harness.Scrape(nodes[0].URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resets := harness.Samples(fams)
	if resets[`jetmetrics_latency_state_resets_total{reason="malformed",service="web/api"}`] != 1 &&
		resets[`jetmetrics_latency_state_resets_total{reason="truncated",service="web/api"}`] != 1 {
		t.Errorf("web/api reset not counted: %v", filter(resets, "resets_total"))
	}
	if resets[`jetmetrics_latency_state_resets_total{reason="malformed",service="db"}`] != 1 {
		t.Errorf("db reset not counted: %v", filter(resets, "resets_total"))
	}

	// Stop the node that probes web/api: the other takes over and
	// continues the same state; n2 never had a corrupt state, so it still
	// equals the whole stream.
	leader := svcState(t, nodes[1], "web/api").Leader
	var survivor, stopped *harness.RunningNode
	for _, rn := range nodes {
		if rn.Name() == leader {
			rn.Stop(t)
			stopped = rn
		} else {
			survivor = rn
		}
	}
	if survivor == nil || survivor == nodes[0] && leader != "n2" {
		t.Fatalf("leader %q", leader)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		s := svcState(t, survivor, "web/api")
		if s.Node != survivor.Name() || s.Leader != survivor.Name() {
			return fmt.Errorf("last result by %q, leader %q", s.Node, s.Leader)
		}
		if survivor == nodes[1] {
			return sameAsStream(t, js, s, 0)
		}
		return sameAsStream(t, js, s, mark)
	})

	// Restart the stopped node on its Redis: its state continues from its
	// stored position and equals the stream again, nothing folded twice.
	restarted := harness.StartNode(t, stopped.Config)
	harness.Eventually(t, 20*time.Second, func() error {
		s := svcState(t, restarted, "web/api")
		if s.Seq < svcState(t, survivor, "web/api").Seq {
			return fmt.Errorf("restarted node at seq %d", s.Seq)
		}
		if restarted.Name() == "n2" {
			return sameAsStream(t, js, s, 0)
		}
		return sameAsStream(t, js, s, mark)
	})
}

func filter(m map[string]float64, sub string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.Contains(k, sub) {
			out[k] = v
		}
	}
	return out
}

// --demo probes its own targets: /api/v1/services lists them, the demo's
// down target with failures counted and up false, the node's own web
// endpoint up.
func TestDemoServices(t *testing.T) {
	rn := harness.StartNode(t, jmnode.Config{Demo: true, File: config.File{
		Observers: config.Observers{Probe: config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond},
			Volume: config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond}},
	}})
	harness.Eventually(t, 20*time.Second, func() error {
		var list struct {
			Services []struct {
				Service  string `json:"service"`
				Up       *bool  `json:"up"`
				Failures uint64 `json:"failures"`
				Leader   string `json:"leader"`
			} `json:"services"`
		}
		if code := get(t, rn.URL+"/api/v1/services", &list); code != http.StatusOK {
			return fmt.Errorf("services: %d", code)
		}
		seen := map[string]bool{}
		for _, s := range list.Services {
			if s.Up == nil {
				return fmt.Errorf("%s not probed yet", s.Service)
			}
			switch s.Service {
			case pp.DemoDown:
				if *s.Up || s.Failures == 0 {
					return fmt.Errorf("%+v", s)
				}
			case pp.DemoWeb, pp.DemoNATS:
				if !*s.Up {
					return fmt.Errorf("%+v", s)
				}
			}
			seen[s.Service] = true
		}
		if len(seen) != 3 {
			return fmt.Errorf("services %+v", list.Services)
		}
		return nil
	})
	var e struct {
		Error string `json:"error"`
	}
	if code := get(t, rn.URL+"/api/v1/services/nope/latency", &e); code != http.StatusNotFound || !strings.Contains(e.Error, `"nope" is not configured`) {
		t.Errorf("unknown service: %d %q", code, e.Error)
	}
}
