package observers_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	jmnode "github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/producers"
	pp "github.com/jetmetrics/jetmetrics/producers/probes"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// post POSTs to url and returns the status and body.
func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// probeServer is a service to probe that counts its requests.
func probeServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// A reload through POST /-/reload adds a probe and removes the volume
// while the aggregator counts on exactly; a bad file is refused whole with
// its file:line:key, the metric says so and the old targets still run.
// fileNode is a node started from a config file, with
// --web.enable-lifecycle, whose reload reads the file again.
type fileNode struct {
	*harness.RunningNode
	t    *testing.T
	path string
}

// startFileNode writes content to a config file and starts a node from
// it. adjust, when set, changes each config a reload makes (as the command
// does for keys no flag overrides).
func startFileNode(t *testing.T, content string, adjust func(*jmnode.Config)) *fileNode {
	t.Helper()
	n := &fileNode{t: t, path: filepath.Join(t.TempDir(), "jetmetrics.yaml")}
	n.write(content)
	f, err := config.Load(n.path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := jmnode.Config{File: f, WebEnableLifecycle: true}
	cfg.Reload = func() (jmnode.Config, error) {
		c := cfg
		var err error
		c.File, err = config.Load(n.path)
		if err == nil && adjust != nil {
			adjust(&c)
		}
		return c, err
	}
	n.RunningNode = harness.StartNode(t, cfg)
	return n
}

// write replaces the node's config file (a reload reads it).
func (n *fileNode) write(content string) {
	n.t.Helper()
	writeFile(n.t, n.path, content)
}

// samples scrapes the node's /metrics.
func (n *fileNode) samples() map[string]float64 {
	n.t.Helper()
	fams, err := harness.Scrape(n.URL + "/metrics")
	if err != nil {
		n.t.Fatal(err)
	}
	return harness.Samples(fams)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReloadAppliesTheFile(t *testing.T) {
	arr := newArray(t, 100, 0)
	svcA, callsA := probeServer(t)
	svcB, callsB := probeServer(t)
	observers := "observers:\n  volume: {observe-interval: 1s, observe-timeout: 500ms}\n  probe: {observe-interval: 1s, observe-timeout: 500ms}\n"
	probeA := "  - {name: svc-a, kind: http, target: " + svcA.URL + "}\n"
	rn := startFileNode(t, observers+"volumes:\n  - {name: vol-1, backend: http-json, endpoint: "+arr.srv.URL+", fields: {iops-read: r}}\nprobes:\n"+probeA, nil)

	harness.Eventually(t, 20*time.Second, func() error {
		if arr.calls.Load() == 0 || callsA.Load() == 0 {
			return fmt.Errorf("volume polled %d times, svc-a %d", arr.calls.Load(), callsA.Load())
		}
		return nil
	})

	// Deltas published before, across and after the reload.
	p, err := producers.New(producers.Config{Node: rn.Name(), Name: "reload", FlushInterval: 50 * time.Millisecond}, rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.NewCounter(producers.Opts{Name: "reload_events_total", Help: "h"})
	if err != nil {
		t.Fatal(err)
	}
	c.Add(5)

	rn.write(observers + "probes:\n" + probeA + "  - {name: svc-b, kind: http, target: " + svcB.URL + "}\n")
	c.Add(7)
	if code, body := post(t, rn.URL+"/-/reload"); code != http.StatusOK {
		t.Fatalf("POST /-/reload: %d %s", code, body)
	}
	c.Add(11)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	harness.Eventually(t, 20*time.Second, func() error {
		var list struct {
			Services []struct {
				Service string `json:"service"`
				Up      *bool  `json:"up"`
			} `json:"services"`
		}
		if code := get(t, rn.URL+"/api/v1/services", &list); code != http.StatusOK {
			return fmt.Errorf("services: %d", code)
		}
		up := map[string]bool{}
		for _, s := range list.Services {
			up[s.Service] = s.Up != nil && *s.Up
		}
		if !up["svc-a"] || !up["svc-b"] || len(up) != 2 {
			return fmt.Errorf("services %v, want svc-a and svc-b up", up)
		}
		return nil
	})
	// The volume is gone from the API, and is not polled any more: while
	// svc-b is probed three more times, the backend sees no call.
	var vols struct {
		Volumes []result `json:"volumes"`
	}
	if code := get(t, rn.URL+"/api/v1/volumes", &vols); code != http.StatusOK || len(vols.Volumes) != 0 {
		t.Fatalf("volumes after the reload: %d %+v, want none", code, vols.Volumes)
	}
	polled, probed := arr.calls.Load(), callsB.Load()
	harness.Eventually(t, 20*time.Second, func() error {
		if callsB.Load() < probed+3 {
			return fmt.Errorf("svc-b probed %d times since", callsB.Load()-probed)
		}
		return nil
	})
	if got := arr.calls.Load(); got != polled {
		t.Errorf("the removed volume was polled %d more times", got-polled)
	}
	// The aggregator counted every delta once, across the reload.
	harness.Eventually(t, 20*time.Second, func() error {
		fams, err := harness.Scrape(rn.URL + "/metrics")
		if err != nil {
			return err
		}
		s := harness.Samples(fams)
		if got := s["reload_events_total"]; got != 23 {
			return fmt.Errorf("reload_events_total = %v, want 23", got)
		}
		if s["jetmetrics_config_last_reload_successful"] != 1 {
			return fmt.Errorf("jetmetrics_config_last_reload_successful = %v, want 1", s["jetmetrics_config_last_reload_successful"])
		}
		return nil
	})

	// A bad file is refused whole: 400 naming file:line:key, metric 0,
	// both probes still run.
	rn.write(observers + "probes:\n" + probeA + "limits:\n  max-seriess: 10\n")
	code, body := post(t, rn.URL+"/-/reload")
	if code != http.StatusBadRequest || !strings.Contains(body, rn.path+":7: limits.max-seriess: unknown key (did you mean max-series?)") {
		t.Fatalf("POST /-/reload of a bad file: %d %q, want 400 naming %s:7: limits.max-seriess", code, body, rn.path)
	}
	if got := rn.samples()["jetmetrics_config_last_reload_successful"]; got != 0 {
		t.Errorf("jetmetrics_config_last_reload_successful = %v after a refused reload, want 0", got)
	}
	probed = callsB.Load()
	harness.Eventually(t, 20*time.Second, func() error {
		if callsB.Load() < probed+2 {
			return fmt.Errorf("svc-b probed %d times since the refused reload", callsB.Load()-probed)
		}
		return nil
	})
}

// Without --web.enable-lifecycle POST /-/reload is 403 and names the flag.
func TestReloadNeedsLifecycleFlag(t *testing.T) {
	rn := harness.StartNode(t, jmnode.Config{})
	code, body := post(t, rn.URL+"/-/reload")
	if code != http.StatusForbidden || !strings.Contains(body, "--web.enable-lifecycle") {
		t.Fatalf("POST /-/reload: %d %q, want 403 naming --web.enable-lifecycle", code, body)
	}
}

// A reload that adds a probe changes the probe observer in place: the
// unchanged probe keeps its lease (every write of its key across the
// reload is a renewal by the same node, revisions growing, never a
// release or a new lease), and its counters go on from where they were —
// this node's probe count and the cluster's checks counter — while the
// added probe is probed too.
func TestReloadKeepsUnchangedProbeLease(t *testing.T) {
	svcA, _ := probeServer(t)
	svcB, callsB := probeServer(t)
	head := "observers:\n  probe: {observe-interval: 1s, observe-timeout: 500ms}\nprobes:\n  - {name: svc-a, kind: http, target: " + svcA.URL + "}\n"
	rn := startFileNode(t, head, nil)
	metric := func(name, service, result string) float64 {
		t.Helper()
		var sum float64
		for k, v := range rn.samples() {
			if strings.HasPrefix(k, name+"{") && strings.Contains(k, `service="`+service+`"`) && strings.Contains(k, `result="`+result+`"`) {
				sum += v
			}
		}
		return sum
	}
	harness.Eventually(t, 20*time.Second, func() error {
		if got := metric("jetmetrics_service_checks_total", "svc-a", "success"); got < 3 {
			return fmt.Errorf("svc-a checked %v times", got)
		}
		return nil
	})

	js, err := jetstream.New(rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), "jetmetrics_leases")
	if err != nil {
		t.Fatal(err)
	}
	const key = "probe.lease.svc-a"
	before, err := kv.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("svc-a's lease: %v", err)
	}
	w, err := kv.Watch(t.Context(), key, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	probes := metric(pp.ProbesMetric, "svc-a", "success")
	checks := metric("jetmetrics_service_checks_total", "svc-a", "success")

	rn.write(head + "  - {name: svc-b, kind: http, target: " + svcB.URL + "}\n")
	if code, body := post(t, rn.URL+"/-/reload"); code != http.StatusOK {
		t.Fatalf("POST /-/reload: %d %s", code, body)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		if callsB.Load() < 2 {
			return fmt.Errorf("svc-b probed %d times", callsB.Load())
		}
		if got := metric(pp.ProbesMetric, "svc-a", "success"); got < probes+3 {
			return fmt.Errorf("svc-a probes: %v after the reload, %v before", got, probes)
		}
		if got := metric("jetmetrics_service_checks_total", "svc-a", "success"); got < checks+3 {
			return fmt.Errorf("svc-a checks: %v after the reload, %v before", got, checks)
		}
		return nil
	})
	rev, renewals := onlyRenewals(t, w, before)
	s := rn.samples()
	for _, svc := range []string{"svc-a", "svc-b"} {
		if got := s[`jetmetrics_observer_leader{observer="probe",target="`+svc+`"}`]; got != 1 {
			t.Errorf("jetmetrics_observer_leader of %s = %v, want 1", svc, got)
		}
	}
	t.Logf("svc-a's lease renewed %d times across the reload, holder %s, revision %d → %d", renewals, before.Value(), before.Revision(), rev)
}

// onlyRenewals reads every write of before's lease key that w has seen
// since before and fails the test unless they are renewals by before's
// holder, revisions growing, one at least: never a release, an expiry or
// a lease taken again. It returns the last revision and the count.
func onlyRenewals(t *testing.T, w jetstream.KeyWatcher, before jetstream.KeyValueEntry) (uint64, int) {
	t.Helper()
	rev, renewals := before.Revision(), 0
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut || string(e.Value()) != string(before.Value()) || e.Revision() <= rev {
				t.Fatalf("%s: %s of %q at revision %d after %d — released or taken again across the reload", before.Key(), e.Operation(), e.Value(), e.Revision(), rev)
			}
			rev = e.Revision()
			renewals++
		default:
			if renewals == 0 {
				t.Fatalf("%s was not renewed across the reload", before.Key())
			}
			return rev, renewals
		}
	}
}

// A reload that changes the volume list changes the volume observer in
// place: the unchanged volume keeps its lease (only renewals by the same
// node across the reload) and its poll counter goes on from where it
// was; the added volume is polled and listed; the removed one leaves
// /api/v1/volumes and its backend gets no more calls.
func TestReloadKeepsUnchangedVolumeLease(t *testing.T) {
	kept, removed, added := newArray(t, 100, 0), newArray(t, 200, 0), newArray(t, 300, 0)
	volume := func(name string, a *array) string {
		return "  - {name: " + name + ", backend: http-json, endpoint: " + a.srv.URL + ", fields: {iops-read: r, iops-write: w}}\n"
	}
	head := "observers:\n  volume: {observe-interval: 1s, observe-timeout: 500ms}\nvolumes:\n" + volume("vol-kept", kept)
	rn := startFileNode(t, head+volume("vol-removed", removed), nil)
	polls := func(volume string) float64 {
		t.Helper()
		return rn.samples()[`jetmetrics_volume_stats_observe_total{status="success",volume="`+volume+`"}`]
	}
	listed := func() (map[string]result, error) {
		var list struct {
			Volumes []result `json:"volumes"`
		}
		if code := get(t, rn.URL+"/api/v1/volumes", &list); code != http.StatusOK {
			return nil, fmt.Errorf("GET /api/v1/volumes: %d", code)
		}
		out := map[string]result{}
		for _, v := range list.Volumes {
			out[v.Volume] = v
		}
		return out, nil
	}
	harness.Eventually(t, 20*time.Second, func() error {
		if got := polls("vol-kept"); got < 3 || removed.calls.Load() == 0 {
			return fmt.Errorf("vol-kept polled %v times, vol-removed %d", got, removed.calls.Load())
		}
		return nil
	})

	js, err := jetstream.New(rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), "jetmetrics_leases")
	if err != nil {
		t.Fatal(err)
	}
	before, err := kv.Get(t.Context(), "volume.lease.vol-kept")
	if err != nil {
		t.Fatalf("vol-kept's lease: %v", err)
	}
	w, err := kv.Watch(t.Context(), before.Key(), jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	keptPolls := polls("vol-kept")

	rn.write(head + volume("vol-added", added))
	if code, body := post(t, rn.URL+"/-/reload"); code != http.StatusOK {
		t.Fatalf("POST /-/reload: %d %s", code, body)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		if added.calls.Load() < 2 {
			return fmt.Errorf("vol-added polled %d times", added.calls.Load())
		}
		switch got := polls("vol-kept"); {
		case got < keptPolls:
			t.Fatalf("vol-kept's poll counter went back from %v to %v across the reload", keptPolls, got)
		case got < keptPolls+3:
			return fmt.Errorf("vol-kept polls: %v after the reload, %v before", got, keptPolls)
		}
		vols, err := listed()
		if err != nil {
			return err
		}
		if _, ok := vols["vol-removed"]; ok || len(vols) != 2 || vols["vol-added"].Status != "ok" || vols["vol-kept"].Status != "ok" {
			return fmt.Errorf("/api/v1/volumes: %+v, want vol-kept and vol-added, polled", vols)
		}
		return nil
	})
	var e struct {
		Error string `json:"error"`
	}
	if code := get(t, rn.URL+"/api/v1/volumes/vol-removed/performance-metric", &e); code != http.StatusNotFound {
		t.Errorf("GET vol-removed's performance-metric after the reload: %d %q, want 404", code, e.Error)
	}
	// The removed volume's backend gets no call while vol-kept is polled
	// twice more (a poll in flight at the reload has long ended).
	calls, keptPolls := removed.calls.Load(), polls("vol-kept")
	harness.Eventually(t, 20*time.Second, func() error {
		if got := polls("vol-kept"); got < keptPolls+2 {
			return fmt.Errorf("vol-kept polled %v times since", got-keptPolls)
		}
		return nil
	})
	if got := removed.calls.Load(); got != calls {
		t.Errorf("the removed volume's backend was called %d more times", got-calls)
	}

	rev, renewals := onlyRenewals(t, w, before)
	s := rn.samples()
	for _, v := range []string{"vol-kept", "vol-added"} {
		if got := s[`jetmetrics_observer_leader{observer="volume",target="`+v+`"}`]; got != 1 {
			t.Errorf("jetmetrics_observer_leader of %s = %v, want 1", v, got)
		}
	}
	t.Logf("vol-kept's lease renewed %d times across the reload, holder %s, revision %d → %d", renewals, before.Value(), before.Revision(), rev)
}

// A reload whose file fails to apply changes nothing, and the next reload
// of the same file applies all of it. The file adds a volume, raises no
// flag but lowers limits.max-series-per-metric, and adds an https probe
// whose tls.ca-file passes validation (a readable file) but holds no
// certificate, so making its prober fails after the volume change was
// prepared: POST /-/reload is 500 naming the file, the metric is 0, and
// nothing of the file shows: not the volume (neither listed nor polled),
// not the probe, not the limit (a new series is still accepted). Once the
// CA file holds the certificate, reloading the same file applies the
// volume, the probe and the limit.
func TestReloadIsAllOrNothing(t *testing.T) {
	vol1, vol2 := newArray(t, 100, 0), newArray(t, 200, 0)
	svcA, callsA := probeServer(t)
	var callsB atomic.Int64
	svcB := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		callsB.Add(1)
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(svcB.Close)
	ca := filepath.Join(t.TempDir(), "svc-b-ca.pem")
	volume := func(name string, a *array) string {
		return "  - {name: " + name + ", backend: http-json, endpoint: " + a.srv.URL + ", fields: {iops-read: r}}\n"
	}
	observers := "observers:\n  volume: {observe-interval: 1s, observe-timeout: 500ms}\n  probe: {observe-interval: 1s, observe-timeout: 500ms}\n"
	probeA := "  - {name: svc-a, kind: http, target: " + svcA.URL + "}\n"
	rn := startFileNode(t, observers+"volumes:\n"+volume("vol-1", vol1)+"probes:\n"+probeA, func(c *jmnode.Config) {
		// As the command does for a key no flag overrides.
		c.MaxSeriesPerMetric = c.File.Limits.MaxSeriesPerMetric
	})
	samples := rn.samples
	rejected := func(s map[string]float64) float64 {
		var sum float64
		for k, v := range s {
			if strings.HasPrefix(k, "jetmetrics_aggregator_rejected_updates_total") {
				sum += v
			}
		}
		return sum
	}
	listed := func() (vols, svcs []string) {
		t.Helper()
		var v struct {
			Volumes []result `json:"volumes"`
		}
		if code := get(t, rn.URL+"/api/v1/volumes", &v); code != http.StatusOK {
			t.Fatalf("GET /api/v1/volumes: %d", code)
		}
		for _, r := range v.Volumes {
			vols = append(vols, r.Volume)
		}
		var s struct {
			Services []struct {
				Service string `json:"service"`
			} `json:"services"`
		}
		if code := get(t, rn.URL+"/api/v1/services", &s); code != http.StatusOK {
			t.Fatalf("GET /api/v1/services: %d", code)
		}
		for _, r := range s.Services {
			svcs = append(svcs, r.Service)
		}
		slices.Sort(vols)
		slices.Sort(svcs)
		return vols, svcs
	}
	p, err := producers.New(producers.Config{Node: rn.Name(), Name: "all-or-nothing", FlushInterval: 50 * time.Millisecond}, rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	events, err := p.NewCounterVec(producers.Opts{Name: "aon_events_total", Help: "h"}, "k")
	if err != nil {
		t.Fatal(err)
	}
	add := func(k string) {
		t.Helper()
		c, err := events.With(k)
		if err != nil {
			t.Fatal(err)
		}
		c.Inc()
	}
	// counted waits until aon_events_total{k} is want.
	counted := func(k string, want float64) {
		t.Helper()
		harness.Eventually(t, 20*time.Second, func() error {
			if got := samples()[`aon_events_total{k="`+k+`"}`]; got != want {
				return fmt.Errorf("aon_events_total{k=%q} = %v, want %v", k, got, want)
			}
			return nil
		})
	}
	add("a")
	add("b")
	counted("a", 1)
	counted("b", 1)
	harness.Eventually(t, 20*time.Second, func() error {
		if vol1.calls.Load() == 0 || callsA.Load() == 0 {
			return fmt.Errorf("vol-1 polled %d times, svc-a %d", vol1.calls.Load(), callsA.Load())
		}
		return nil
	})

	writeFile(t, ca, "not a certificate\n")
	rn.write(observers + "limits:\n  max-series-per-metric: 3\nvolumes:\n" + volume("vol-1", vol1) + volume("vol-2", vol2) +
		"probes:\n" + probeA + "  - {name: svc-b, kind: http, target: " + svcB.URL + ", tls: {ca-file: " + ca + "}}\n")
	code, body := post(t, rn.URL+"/-/reload")
	if code != http.StatusInternalServerError || !strings.Contains(body, "svc-b") || !strings.Contains(body, ca+" holds no PEM certificate") ||
		!strings.Contains(body, "the running configuration stays") {
		t.Fatalf("POST /-/reload with a CA file holding no certificate: %d %q, want 500 naming svc-b and the file, the running configuration staying", code, body)
	}
	if got := samples()["jetmetrics_config_last_reload_successful"]; got != 0 {
		t.Errorf("jetmetrics_config_last_reload_successful = %v after a failed reload, want 0", got)
	}
	if vols, svcs := listed(); !slices.Equal(vols, []string{"vol-1"}) || !slices.Equal(svcs, []string{"svc-a"}) {
		t.Errorf("after the failed reload: volumes %v, services %v; want vol-1 and svc-a alone", vols, svcs)
	}
	// The old limit: a third series of the metric is taken.
	add("c")
	counted("c", 1)
	if got := rejected(samples()); got != 0 {
		t.Errorf("%v series updates rejected after the failed reload, want 0 (the old limits)", got)
	}
	// Neither vol-2 nor svc-b is polled while vol-1 and svc-a are, twice.
	polled, probed := vol1.calls.Load(), callsA.Load()
	harness.Eventually(t, 20*time.Second, func() error {
		if vol1.calls.Load() < polled+2 || callsA.Load() < probed+2 {
			return fmt.Errorf("vol-1 polled %d times since the failed reload, svc-a %d", vol1.calls.Load()-polled, callsA.Load()-probed)
		}
		return nil
	})
	if vol2.calls.Load() != 0 || callsB.Load() != 0 {
		t.Errorf("after the failed reload vol-2 was polled %d times and svc-b %d, want never", vol2.calls.Load(), callsB.Load())
	}

	// The same file, once its CA file is right, applies whole.
	writeFile(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: svcB.Certificate().Raw})))
	if code, body := post(t, rn.URL+"/-/reload"); code != http.StatusOK {
		t.Fatalf("POST /-/reload of the same file, its CA file fixed: %d %s", code, body)
	}
	if got := samples()["jetmetrics_config_last_reload_successful"]; got != 1 {
		t.Errorf("jetmetrics_config_last_reload_successful = %v, want 1", got)
	}
	if vols, svcs := listed(); !slices.Equal(vols, []string{"vol-1", "vol-2"}) || !slices.Equal(svcs, []string{"svc-a", "svc-b"}) {
		t.Errorf("after the reload: volumes %v, services %v; want vol-1, vol-2, svc-a and svc-b", vols, svcs)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		if vol2.calls.Load() == 0 || callsB.Load() == 0 {
			return fmt.Errorf("vol-2 polled %d times, svc-b %d", vol2.calls.Load(), callsB.Load())
		}
		return nil
	})
	// The new limit: a fourth series is refused. d goes first, so once a's
	// second increment is counted d has been decided.
	add("d")
	add("a")
	counted("a", 2)
	s := samples()
	if v, ok := s[`aon_events_total{k="d"}`]; ok || rejected(s) == 0 {
		t.Errorf("a fourth series under max-series-per-metric 3: aon_events_total{k=\"d\"} = %v (present %v), %v updates rejected; want it refused", v, ok, rejected(s))
	}
}
