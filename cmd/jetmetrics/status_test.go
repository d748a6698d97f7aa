package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	pp "github.com/jetmetrics/jetmetrics/producers/probes"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

func statusRun(args ...string) (string, error) {
	var stdout bytes.Buffer
	err := run(context.Background(), append([]string{"status"}, args...), &stdout, &bytes.Buffer{})
	return stdout.String(), err
}

// Against a --demo node, status shows the node ready, itself up with no
// aggregator lag, its streams led by itself, the demo's observer targets
// led by it from the lease bucket, the machine's disks as volumes polled
// by it, fresh and ok, and its always-failing service down, as a table
// and as JSON, and exits 0 (a service down is no problem of the
// cluster's).
func TestStatusOfDemoNode(t *testing.T) {
	rn := harness.StartNode(t, node.Config{Name: "n1", Demo: true, DemoInterval: 100 * time.Millisecond})
	var rep statusReport
	harness.Eventually(t, 30*time.Second, func() error {
		out, err := statusRun("--web.url="+rn.URL, "--output=json")
		if err != nil {
			return err
		}
		rep = statusReport{}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			return fmt.Errorf("not JSON: %v: %q", err, out)
		}
		switch {
		case !rep.Ready || rep.Node != "n1" || len(rep.Problems) != 0:
			return fmt.Errorf("node %q ready %v problems %q", rep.Node, rep.Ready, rep.Problems)
		case len(rep.Nodes) != 1 || !rep.Nodes[0].Up || rep.Nodes[0].LagMessages == nil || *rep.Nodes[0].LagMessages != 0 || rep.Nodes[0].AppliedSeq == 0:
			return fmt.Errorf("nodes %+v, want n1 up, having applied the demo's deltas, lag 0", rep.Nodes)
		case len(rep.Streams) != 5:
			return fmt.Errorf("streams %+v, want the delta, DLQ, snapshot and observation streams and the lease bucket", rep.Streams)
		case len(rep.ServicesDown) != 1 || rep.ServicesDown[0].Service != pp.DemoDown || rep.ServicesDown[0].Leader != "n1" || rep.ServicesDown[0].LastError == "":
			return fmt.Errorf("services down %+v, want %s alone, led by n1, with its error", rep.ServicesDown, pp.DemoDown)
		case rep.LeadersSource != "bucket" || len(rep.ObserverLeaders) < 4:
			return fmt.Errorf("observer leaders %+v from %q, want the demo's volumes and three probes from the bucket", rep.ObserverLeaders, rep.LeadersSource)
		case len(rep.Volumes) == 0 || rep.VolumesUnhealthy != 0 || rep.VolumesMore != 0:
			return fmt.Errorf("volumes %+v (%d unhealthy, %d more), want the machine's disks, all fresh and ok", rep.Volumes, rep.VolumesUnhealthy, rep.VolumesMore)
		}
		return nil
	})
	for _, v := range rep.Volumes {
		if v.Leader != "n1" || v.Status != "ok" || v.Stale || v.AgeSeconds == nil || v.ObservedAt == nil || v.LastError != "" || v.Backend != "local" {
			t.Errorf("volume %+v, want a local disk led by n1, ok, with the age of its last result", v)
		}
	}
	for _, s := range rep.Streams {
		if s.Replicas != 1 || s.Leader != "n1" || s.Lagging != 0 || s.Error != "" || s.Absent {
			t.Errorf("stream %+v, want R1 led by n1", s)
		}
	}
	for _, l := range rep.ObserverLeaders {
		if l.Leader != "n1" || l.Revision == 0 {
			t.Errorf("observer leader %+v, want n1 with the lease's revision", l)
		}
	}
	if len(rep.Readiness) < 2 || rep.Readiness[0] != "jetmetrics is ready." {
		t.Errorf("readiness lines %q", rep.Readiness)
	}

	out, err := statusRun("--web.url=" + rn.URL)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	t.Logf("table:\n%s", out)
	for _, want := range []string{"node n1 at " + rn.URL + ": READY", "SERVICE DOWN", pp.DemoDown, "NODE", "AGGREGATOR LAG", "n1    self", "STREAM", "JETMETRICS_DELTAS", "DEAD LETTERS BY REASON", "OBSERVER", pp.DemoWeb, "VOLUME", rep.Volumes[0].Volume} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "SERVICE DOWN") > strings.Index(out, "VOLUME ") || strings.Index(out, "VOLUME ") > strings.Index(out, "NODE ") {
		t.Errorf("services down are not the first section, then the volumes:\n%s", out)
	}
}

// A volume whose backend fails is listed first, before a healthy one
// declared before it, with status error and the backend's error, counted
// as unhealthy, in the table and in JSON; status still exits 0 (a
// volume's failing poll, like a service down, is for the alert rules).
func TestStatusShowsFailingVolume(t *testing.T) {
	backend := func(code int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprint(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	good := backend(http.StatusOK, `{"r": 10}`)
	bad := backend(http.StatusServiceUnavailable, `{"error":"controller offline"}`)
	rn := harness.StartNode(t, node.Config{Name: "n1", File: config.File{
		Observers: config.Observers{Volume: config.Observer{ObserveInterval: time.Second, ObserveTimeout: 900 * time.Millisecond, CacheTTL: time.Minute}},
		Volumes: []config.Volume{
			{Name: "good", Backend: config.BackendHTTPJSON, Endpoint: good, Fields: map[string]string{"iops-read": "r"}},
			{Name: "bad", Backend: config.BackendHTTPJSON, Endpoint: bad, Fields: map[string]string{"iops-read": "r"}},
		},
	}})
	var rep statusReport
	harness.Eventually(t, 30*time.Second, func() error {
		out, err := statusRun("--web.url="+rn.URL, "--output=json")
		if err != nil {
			return fmt.Errorf("status: %v\n%s", err, out)
		}
		rep = statusReport{}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			return fmt.Errorf("not JSON: %v: %q", err, out)
		}
		if len(rep.Volumes) != 2 || rep.Volumes[0].Status == "" || rep.Volumes[1].Status == "" {
			return fmt.Errorf("volumes %+v, want both polled", rep.Volumes)
		}
		return nil
	})
	b, g := rep.Volumes[0], rep.Volumes[1]
	if b.Volume != "bad" || b.Status != "error" || !strings.Contains(b.LastError, "503") || b.Leader != "n1" || b.AgeSeconds == nil {
		t.Errorf("first volume %+v, want bad, failing with the backend's 503, led by n1", b)
	}
	if g.Volume != "good" || g.Status != "ok" || g.Stale || g.LastError != "" {
		t.Errorf("second volume %+v, want good, ok", g)
	}
	if rep.VolumesUnhealthy != 1 || rep.VolumesMore != 0 || len(rep.Problems) != 0 {
		t.Errorf("%d unhealthy, %d more, problems %q: want 1, 0 and none", rep.VolumesUnhealthy, rep.VolumesMore, rep.Problems)
	}

	out, err := statusRun("--web.url=" + rn.URL)
	if err != nil {
		t.Fatalf("status exits non-zero for a failing volume: %v", err)
	}
	t.Logf("table:\n%s", out)
	badAt, goodAt := strings.Index(out, "\nbad "), strings.Index(out, "\ngood ")
	if badAt < 0 || goodAt < 0 || badAt > goodAt {
		t.Errorf("table does not list bad before good:\n%s", out)
	}
	line := out[badAt+1:]
	line = line[:strings.IndexByte(line, '\n')]
	if !strings.Contains(line, "n1") || !strings.Contains(line, "error") || !strings.Contains(line, "503") {
		t.Errorf("bad's line %q lacks its leader, status or error", line)
	}
	if !strings.Contains(out, "1 of 2 volumes stale or failing") {
		t.Errorf("table does not count the unhealthy volumes:\n%s", out)
	}
}

// A node that is not ready (its Redis stopped) makes status exit 1 with
// the reason; a node not there is exit 3; a bad flag exit 2.
func TestStatusNotReady(t *testing.T) {
	rs := harness.Redis(t)
	rn := harness.StartNode(t, node.Config{Name: "n1", RedisURL: rs.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rs.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, func() error {
		out, err := statusRun("--web.url=" + rn.URL)
		if err == nil {
			return errors.New("status exits 0 with Redis stopped")
		}
		if exitCode(err) != 1 || !strings.Contains(err.Error(), " at "+rn.URL+" is not ready: jetmetrics is not ready") {
			t.Fatalf("error %v (exit %d), want not ready, exit 1", err, exitCode(err))
		}
		if !strings.Contains(out, "NOT READY") || !strings.Contains(out, "redis") {
			return fmt.Errorf("table does not say why:\n%s", out)
		}
		return nil
	})
	_, err := statusRun("--web.url=http://127.0.0.1:1", "--timeout=2s")
	if err == nil || exitCode(err) != 3 || !strings.Contains(err.Error(), "--web.url=http://127.0.0.1:1 not reached") {
		t.Errorf("unreachable node: error %v (exit %d), want exit 3", err, exitCode(err))
	}
	_, err = statusRun("--output=yaml")
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--output") {
		t.Errorf("bad --output: error %v, want a usage error naming it", err)
	}
}
