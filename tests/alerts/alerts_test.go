package alerts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

const rulesFile = "../../deploy/prometheus/alerts.yml"

// promtool finds promtool or fails the test naming the task that installs
// it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not on PATH: run `go tool task promtool` (Debian's prometheus package ships it): %v", err)
	}
	return p
}

// alertNames lists the alerts the rules file defines.
func alertNames(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)$`).FindAllStringSubmatch(string(raw), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("no alerts in %s", rulesFile)
	}
	return names
}

func TestRulesFileIsValid(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// Every alert and its expression are in docs/operations.md, so what an
// operator reads is what Prometheus evaluates.
func TestRulesAreDocumented(t *testing.T) {
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	exprs := regexp.MustCompile(`(?m)^\s*- alert: (\S+)\n\s*expr: (.+)$`).FindAllStringSubmatch(string(raw), -1)
	if len(exprs) != len(alertNames(t)) {
		t.Fatalf("%d alerts with an expr on the next line, %d alerts", len(exprs), len(alertNames(t)))
	}
	for _, m := range exprs {
		if !strings.Contains(string(doc), m[1]) || !strings.Contains(string(doc), "`"+m[2]+"`") {
			t.Errorf("docs/operations.md lacks alert %s with `%s`", m[1], m[2])
		}
	}
}

// round is what Prometheus would have scraped at one point: node a's
// samples (nil when its scrape failed) and whether each node answered.
type round struct {
	name     string
	a        map[string]float64
	upA, upB float64
	// fires are the alerts the round's condition must fire.
	fires []string
}

type rig struct {
	t   *testing.T
	a   *harness.RunningNode
	b   *harness.ProcessNode
	reg *prometheus.Registry
	js  jetstream.JetStream

	rounds []round
}

// scrape records a round.
func (r *rig) scrape(name string, fires ...string) {
	r.t.Helper()
	rd := round{name: name, fires: fires}
	if fams, err := harness.Scrape(r.a.URL + "/metrics"); err == nil {
		rd.a, rd.upA = harness.Samples(fams), 1
	}
	if resp, err := http.Get(r.b.URL + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			rd.upB = 1
		}
	}
	r.t.Logf("round %d %s: a up %v, b up %v", len(r.rounds), name, rd.upA, rd.upB)
	r.rounds = append(r.rounds, rd)
}

// waitA polls node a's /metrics until cond holds for its samples.
func (r *rig) waitA(what string, cond func(s map[string]float64) bool) {
	r.t.Helper()
	harness.Eventually(r.t, 90*time.Second, func() error {
		fams, err := harness.Scrape(r.a.URL + "/metrics")
		if err != nil {
			return err
		}
		if !cond(harness.Samples(fams)) {
			return fmt.Errorf("node a: waiting for %s", what)
		}
		return nil
	})
}

// counter reads a counter from node a's registry (its /metrics may answer
// 503 meanwhile).
func (r *rig) counter(name string) float64 {
	r.t.Helper()
	// The peer collector fails while Redis is down; the rest is gathered.
	fams, _ := r.reg.Gather()
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func (r *rig) publish(subject, body string) {
	r.t.Helper()
	if _, err := r.js.Publish(context.Background(), subject, []byte(body)); err != nil {
		r.t.Fatal(err)
	}
}

// sum adds the samples of one metric name.
func sum(s map[string]float64, name string) float64 {
	total := 0.0
	for k, v := range s {
		if k == name || strings.HasPrefix(k, name+"{") {
			total += v
		}
	}
	return total
}

// TestEveryAlertFires runs two real nodes, creates each alert's condition
// in turn, scrapes node a (and whether each node answers) after each, and
// has promtool evaluate the rules file over those samples: nothing fires
// while the cluster is healthy, and each alert fires after its condition.
func TestEveryAlertFires(t *testing.T) {
	tool := promtool(t)
	ctx := context.Background()
	ns := harness.NATS(t)
	rs := harness.RedisTCP(t)
	reg := prometheus.NewRegistry()
	// A service node a probes and a volume it observes, each answering
	// until told to fail.
	var svcFails, volFails atomic.Bool
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if svcFails.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer svc.Close()
	perf := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if volFails.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, `{"read":{"iops":12}}`)
	}))
	defer perf.Close()
	a := harness.StartNode(t, node.Config{
		Name: "a", NATSURL: ns.ClientURL(), RedisURL: rs.URL(), Registry: reg,
		SnapshotInterval: 500 * time.Millisecond, SnapshotTTL: 2 * time.Second,
		OrphanScanInterval: 500 * time.Millisecond,
		File: config.File{
			Observers: config.Observers{
				Probe:  config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond},
				Volume: config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond},
			},
			Probes:  []config.Probe{{Name: "shop", Kind: config.ProbeHTTP, Target: svc.URL}},
			Volumes: []config.Volume{{Name: "perf", Backend: config.BackendHTTPJSON, Endpoint: perf.URL, Fields: map[string]string{"iops-read": "read.iops"}}},
		},
	})
	b := harness.StartProcessNode(t, harness.ProcessNodeConfig{Name: "b", ExtraArgs: []string{
		"--nats.url=" + ns.ClientURL(), "--snapshot.interval=500ms", "--snapshot.ttl=2s",
	}})
	b.WaitReady(90 * time.Second)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, a: a, b: b, reg: reg, js: js}

	// Healthy: a sees b, has scanned the delta stream, leads and observes
	// its volume and service.
	r.waitA("peer b up, a delta scan, the volume and the service observed", func(s map[string]float64) bool {
		return s[`jetmetrics_peer_up{peer="b"}`] == 1 && s[`jetmetrics_delta_scans_total{result="ok"}`] > 0 &&
			s[`jetmetrics_service_up{service="shop"}`] == 1 && s[`jetmetrics_volume_iops_read{volume="perf"}`] == 12 &&
			s[`jetmetrics_observer_leader{observer="volume",target="perf"}`] == 1 &&
			s[`jetmetrics_observer_leader{observer="probe",target="shop"}`] == 1
	})
	r.scrape("healthy")
	r.scrape("healthy")

	// A batch with a negative counter delta is dead-lettered.
	r.publish("jetmetrics.delta.a.bad-1", `{"v":1,"node":"a","producer":"bad-1","seq":1,"metrics":[{"name":"jobs_total","type":"counter","value":-1}]}`)
	r.waitA("a rejection in the DLQ", func(s map[string]float64) bool {
		return sum(s, "jetmetrics_rejected_total") > 0 && s[`jetmetrics_stream_bytes{stream="JETMETRICS_DLQ"}`] > 0
	})
	r.scrape("rejected input", "JetmetricsRejectedInput", "JetmetricsDLQGrowing")

	// The service answers 503.
	svcFails.Store(true)
	r.waitA("service down", func(s map[string]float64) bool {
		v, ok := s[`jetmetrics_service_up{service="shop"}`]
		return ok && v == 0
	})
	r.scrape("probe failing", "JetmetricsProbeFailing")

	// The volume's backend answers 500: a, which leads it, drops its
	// figures.
	volFails.Store(true)
	r.waitA("volume without figures", func(s map[string]float64) bool {
		_, ok := s[`jetmetrics_volume_metric_last_updated_timestamp_seconds{volume="perf"}`]
		return !ok && s[`jetmetrics_observer_leader{observer="volume",target="perf"}`] == 1
	})
	r.scrape("volume stale", "JetmetricsVolumeStale")

	// Deltas for node "A", which does not exist (node "a" does).
	r.publish("jetmetrics.delta.A.typo-1", `{"v":1,"node":"A","producer":"typo-1","seq":1,"metrics":[{"name":"jobs_total","type":"counter","value":1}]}`)
	r.waitA("orphan deltas", func(s map[string]float64) bool {
		return s[`jetmetrics_orphan_deltas{node="A",reason="no_live_node"}`] > 0
	})
	r.scrape("orphan deltas", "JetmetricsOrphanDeltas")

	// b dies without a goodbye: a shows it down, then stale.
	b.Kill()
	r.waitA("peer b down", func(s map[string]float64) bool {
		v, ok := s[`jetmetrics_peer_up{peer="b"}`]
		return ok && v == 0
	})
	r.scrape("peer down", "JetmetricsPeerDown", "JetmetricsNodeDown")
	r.waitA("peer b stale", func(s map[string]float64) bool {
		return s[`jetmetrics_peer_snapshot_age_seconds{peer="b"}`] > 30 && s[`jetmetrics_peer_up{peer="b"}`] == 0
	})
	r.scrape("peer stale", "JetmetricsPeerStale")

	// Redis refuses writes: a's deltas pile up unapplied.
	rdb := harness.RedisClient(t, rs)
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", "60000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	for seq := 1; seq <= 1500; seq++ {
		body := fmt.Sprintf(`{"v":1,"node":"a","producer":"lag-1","seq":%d,"metrics":[{"name":"jobs_total","type":"counter","value":1}]}`, seq)
		if _, err := js.PublishAsync("jetmetrics.delta.a.lag-1", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("lag deltas not acknowledged")
	}
	r.waitA("a backlog", func(s map[string]float64) bool { return s["jetmetrics_delta_backlog_messages"] > 1000 })
	r.scrape("aggregator lag", "JetmetricsAggregatorLag")
	if err := rdb.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	r.waitA("a caught up", func(s map[string]float64) bool { return s["jetmetrics_delta_backlog_messages"] == 0 })

	// The delta stream nears its byte bound (an operator's tight
	// --streams.delta-max-bytes): a sees it over 90 % full.
	ds, err := js.Stream(ctx, "JETMETRICS_DELTAS")
	if err != nil {
		t.Fatal(err)
	}
	dcfg := ds.CachedInfo().Config
	full := dcfg
	full.MaxBytes = int64(ds.CachedInfo().State.Bytes) + 64
	if _, err := js.UpdateStream(ctx, full); err != nil {
		t.Fatal(err)
	}
	r.waitA("delta stream nearly full", func(s map[string]float64) bool {
		return s[`jetmetrics_stream_max_bytes{stream="JETMETRICS_DELTAS"}`] > 0 &&
			s[`jetmetrics_stream_bytes{stream="JETMETRICS_DELTAS"}`] > 0.9*s[`jetmetrics_stream_max_bytes{stream="JETMETRICS_DELTAS"}`]
	})
	r.scrape("delta stream nearly full", "JetmetricsStreamNearlyFull")
	if _, err := js.UpdateStream(ctx, dcfg); err != nil {
		t.Fatal(err)
	}

	// The dead-letter stream refuses letters (full under discard new, as an
	// external NATS's may be defined): a drops them and goes on applying.
	dlq, err := js.Stream(ctx, "JETMETRICS_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	qcfg := dlq.CachedInfo().Config
	refusing := qcfg
	refusing.Discard, refusing.MaxBytes = jetstream.DiscardNew, max(1, int64(dlq.CachedInfo().State.Bytes))
	if _, err := js.UpdateStream(ctx, refusing); err != nil {
		t.Fatal(err)
	}
	r.publish("jetmetrics.delta.a.bad-2", `{"v":1,"node":"a","producer":"bad-2","seq":1,"metrics":[{"name":"jobs_total","type":"counter","value":-1}]}`)
	r.waitA("a dead letter dropped", func(s map[string]float64) bool { return sum(s, "jetmetrics_aggregator_dead_letters_dropped_total") > 0 })
	r.scrape("dead letters dropped", "JetmetricsDeadLettersDropped")
	if _, err := js.UpdateStream(ctx, qcfg); err != nil {
		t.Fatal(err)
	}

	// Redis goes away: the aggregator resumes again and again.
	before := r.counter("jetmetrics_aggregator_resumes_total")
	if err := rs.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 60*time.Second, func() error {
		if got := r.counter("jetmetrics_aggregator_resumes_total"); got < before+4 {
			return fmt.Errorf("%g resumes since redis stopped", got-before)
		}
		return nil
	})
	if err := rs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	r.waitA("a serving after redis is back", func(s map[string]float64) bool {
		return s["jetmetrics_aggregator_resumes_total"] >= before+4
	})
	r.scrape("aggregator resuming", "JetmetricsAggregatorResuming")

	// The snapshot stream's subjects are taken by a stream of someone
	// else's: a cannot publish its snapshots, nor create its stream again
	// (a plain deletion it repairs on its own).
	failures := r.counter("jetmetrics_snapshot_failures_total") // the Redis outage may have failed some
	harness.Eventually(t, 30*time.Second, func() error {
		if err := js.DeleteStream(ctx, "JETMETRICS_SNAP"); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		// Loses the race when a has just created its stream again.
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SQUATTER", Subjects: []string{"jetmetrics.snap.>"}})
		return err
	})
	harness.Eventually(t, 30*time.Second, func() error {
		if r.counter("jetmetrics_snapshot_failures_total") <= failures {
			return fmt.Errorf("no snapshot failure yet")
		}
		return nil
	})
	r.scrape("snapshot publish failing", "JetmetricsSnapshotPublishFailing")

	// The leases are taken by a holder Prometheus does not scrape (a node
	// outside the job, say): a sees itself lose them and follows it.
	leases, err := js.KeyValue(ctx, "jetmetrics_leases")
	if err != nil {
		t.Fatal(err)
	}
	stop, held := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(held)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, key := range []string{"volume.lease.perf", "probe.lease.shop"} {
				if _, err := leases.Put(ctx, key, []byte("elsewhere")); err != nil {
					t.Errorf("take lease %s: %v", key, err)
					return
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	r.waitA("no leader", func(s map[string]float64) bool {
		return s[`jetmetrics_observer_leader{observer="volume",target="perf"}`] == 0 &&
			s[`jetmetrics_observer_leader{observer="probe",target="shop"}`] == 0
	})
	r.scrape("observer without a leader", "JetmetricsObserverWithoutLeader")
	close(stop)
	<-held

	covered := map[string]bool{}
	for _, rd := range r.rounds {
		for _, f := range rd.fires {
			covered[f] = true
		}
	}
	for _, name := range alertNames(t) {
		if !covered[name] {
			t.Errorf("alert %s: no condition of this test makes it fire", name)
		}
	}
	runPromtool(t, tool, r.rounds)
}

// stepsPerRound holds each round's samples for 7 evaluation steps of a
// minute, longer than every rule's `for`, so a condition that lasts fires.
const stepsPerRound = 7

// promtool's unit test file, written as JSON (which is YAML).
type unitTests struct {
	RuleFiles          []string    `json:"rule_files"`
	EvaluationInterval string      `json:"evaluation_interval"`
	Tests              []testGroup `json:"tests"`
}

type testGroup struct {
	Interval    string        `json:"interval"`
	InputSeries []inputSeries `json:"input_series"`
	ExprTests   []exprTest    `json:"promql_expr_test"`
}

type inputSeries struct {
	Series string `json:"series"`
	Values string `json:"values"`
}

type exprTest struct {
	Expr       string      `json:"expr"`
	EvalTime   string      `json:"eval_time"`
	ExpSamples []expSample `json:"exp_samples"`
}

type expSample struct {
	Labels string  `json:"labels"`
	Value  float64 `json:"value"`
}

// withTarget adds node a's job and instance labels to a sample's name.
func withTarget(sample, instance string) string {
	target := fmt.Sprintf(`instance=%q,job="jetmetrics"`, instance)
	if i := strings.IndexByte(sample, '{'); i >= 0 {
		return sample[:i+1] + target + "," + sample[i+1:]
	}
	return sample + "{" + target + "}"
}

func runPromtool(t *testing.T, tool string, rounds []round) {
	t.Helper()
	// Every series of every round, each step held stepsPerRound times; a
	// series missing from a round is stale there.
	values := map[string][]string{}
	add := func(series string, r int, v float64, ok bool) {
		vals := values[series]
		for len(vals) < r*stepsPerRound {
			vals = append(vals, "_")
		}
		for i := range stepsPerRound {
			switch {
			case ok:
				vals = append(vals, fmt.Sprint(v))
			case i == 0 && len(vals) > 0 && vals[len(vals)-1] != "_" && vals[len(vals)-1] != "stale":
				vals = append(vals, "stale")
			default:
				vals = append(vals, "_")
			}
		}
		values[series] = vals
	}
	all := map[string]bool{}
	for _, rd := range rounds {
		for k := range rd.a {
			if strings.HasPrefix(k, "jetmetrics_") {
				all[withTarget(k, "a")] = true
			}
		}
	}
	for r, rd := range rounds {
		add(`up{instance="a",job="jetmetrics"}`, r, rd.upA, true)
		add(`up{instance="b",job="jetmetrics"}`, r, rd.upB, true)
		for series := range all {
			v, ok := 0.0, false
			for k, kv := range rd.a {
				if withTarget(k, "a") == series {
					v, ok = kv, true
				}
			}
			add(series, r, v, ok)
		}
	}
	group := testGroup{Interval: "1m"}
	names := make([]string, 0, len(values))
	for s := range values {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		group.InputSeries = append(group.InputSeries, inputSeries{Series: s, Values: strings.Join(values[s], " ")})
	}
	end := func(r int) string { return fmt.Sprintf("%dm", (r+1)*stepsPerRound-1) }
	firing := `group by (alertname) (ALERTS{alertstate="firing"%s})`
	for r, rd := range rounds {
		if r == 1 { // the end of the healthy rounds: nothing fires
			group.ExprTests = append(group.ExprTests, exprTest{Expr: fmt.Sprintf(firing, ""), EvalTime: end(r), ExpSamples: []expSample{}})
		}
		for _, alert := range rd.fires {
			group.ExprTests = append(group.ExprTests, exprTest{
				Expr:       fmt.Sprintf(firing, fmt.Sprintf(`,alertname=%q`, alert)),
				EvalTime:   end(r),
				ExpSamples: []expSample{{Labels: fmt.Sprintf(`{alertname=%q}`, alert), Value: 1}},
			})
		}
	}
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.MarshalIndent(unitTests{RuleFiles: []string{rules}, EvaluationInterval: "1m", Tests: []testGroup{group}}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "alerts_test.yml")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "test", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules (%d series over %d rounds): %v\n%s\ninput:\n%s", len(names), len(rounds), err, out, raw)
	}
	t.Logf("promtool test rules: %d series over %d rounds\n%s", len(names), len(rounds), out)
}
