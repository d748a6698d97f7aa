package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

func statusRun(args ...string) (string, error) {
	var stdout bytes.Buffer
	err := run(context.Background(), append([]string{"status"}, args...), &stdout, &bytes.Buffer{})
	return stdout.String(), err
}

// Against a --demo node, status shows the node ready, itself up, the
// demo's volumes (the machine's disks) and probed services, as a table
// and as JSON, and exits 0.
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
		case !rep.Ready || rep.Node != "n1":
			return fmt.Errorf("node %q ready %v", rep.Node, rep.Ready)
		case len(rep.Nodes) != 1 || !rep.Nodes[0].Up:
			return fmt.Errorf("nodes %+v, want n1 up", rep.Nodes)
		case len(rep.Volumes) == 0 || rep.Volumes[0].Leader != "n1" || rep.Volumes[0].AgeSeconds == nil:
			return fmt.Errorf("volumes %+v, want the demo's led by n1 with an age", rep.Volumes)
		case len(rep.Services) == 0 || rep.Services[0].Up == nil:
			return fmt.Errorf("services %+v, want the demo's probed", rep.Services)
		}
		return nil
	})
	if len(rep.Readiness) < 2 || rep.Readiness[0] != "jetmetrics is ready." {
		t.Errorf("readiness lines %q", rep.Readiness)
	}

	out, err := statusRun("--web.url=" + rn.URL)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	t.Logf("table:\n%s", out)
	for _, want := range []string{"node n1: READY", "NODE", "n1    self", "VOLUME", rep.Volumes[0].Volume, "SERVICE", rep.Services[0].Service} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
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
