package cluster_test

import (
	"bytes"
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
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// clusterStatus is the part of `jetmetrics status --output=json` the
// tests read.
type clusterStatus struct {
	Node     string   `json:"node"`
	Ready    bool     `json:"ready"`
	Problems []string `json:"problems"`
	Nodes    []struct {
		Name        string  `json:"name"`
		Up          bool    `json:"up"`
		AppliedSeq  uint64  `json:"applied_seq"`
		LagMessages *uint64 `json:"lag_messages"`
	} `json:"nodes"`
	Streams []struct {
		Name     string `json:"name"`
		Replicas int    `json:"replicas"`
		Leader   string `json:"leader"`
		Lagging  int    `json:"lagging"`
		Peers    []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
		} `json:"peers"`
	} `json:"streams"`
	DeadLetters []struct {
		Reason   string `json:"reason"`
		Messages uint64 `json:"messages"`
	} `json:"dead_letters"`
	ObserverLeaders []struct {
		Observer, Target, Leader string
	} `json:"observer_leaders"`
	LeadersSource string            `json:"observer_leaders_source"`
	Errors        map[string]string `json:"errors"`
}

// jmStatus runs the jetmetrics binary's status against url with args and
// returns its stdout and exit code.
func jmStatus(t *testing.T, url string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t), append([]string{"status", "--web.url=" + url}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("jetmetrics status: %v", err)
	return "", "", -1
}

// TestClusterStatus: `jetmetrics status` on any node of a 3-node cluster
// with a probe shows every node with its aggregator lag (0 once deltas
// published to n2 are applied, counted from n2's applied sequence), the
// streams at 3 replicas with a leader and current followers, a bad
// delta's dead letter by reason, and the probe's leader from the lease
// bucket; as JSON and as a table, exit 0. With a node killed, the streams'
// followers on it are not current: exit 1, naming them.
func TestClusterStatus(t *testing.T) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(svc.Close)
	cfg := filepath.Join(t.TempDir(), "jetmetrics.yaml")
	if err := os.WriteFile(cfg, []byte("observers:\n  probe: {observe-interval: 1s, observe-timeout: 500ms}\nprobes:\n  - {name: svc-a, kind: http, target: "+svc.URL+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, "--config.file="+cfg)
	w := newWorkload(t, c.connectAs(t, producerUser), "n2")
	w.add(100)
	w.flush(t)
	// A delta nobody can decode, published for n1: its aggregator
	// dead-letters it.
	js, _ := jetstream.New(c.connect(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, "jetmetrics.delta.n1.bad.bad-1", []byte("not a batch")); err != nil {
		t.Fatal(err)
	}

	for _, nd := range c.nodes {
		var st clusterStatus
		harness.Eventually(t, converge, func() error {
			out, errOut, code := jmStatus(t, nd.URL, "--output=json")
			st = clusterStatus{}
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				return fmt.Errorf("exit %d, not JSON: %v: %q %s", code, err, out, errOut)
			}
			if code != 0 {
				return fmt.Errorf("exit %d: %q %s", code, st.Problems, errOut)
			}
			if st.Node != nd.Name || !st.Ready || len(st.Errors) > 0 {
				return fmt.Errorf("node %q ready %v errors %v", st.Node, st.Ready, st.Errors)
			}
			if len(st.Nodes) != 3 {
				return fmt.Errorf("nodes %+v, want 3", st.Nodes)
			}
			for _, n := range st.Nodes {
				if !n.Up || n.LagMessages == nil || *n.LagMessages != 0 {
					return fmt.Errorf("node %s: up %v lag %v, want up with lag 0", n.Name, n.Up, n.LagMessages)
				}
				if n.Name != "n3" && n.AppliedSeq == 0 {
					return fmt.Errorf("node %s applied nothing yet", n.Name)
				}
			}
			dlq := map[string]uint64{}
			for _, d := range st.DeadLetters {
				dlq[d.Reason] = d.Messages
			}
			if dlq["undecodable"] != 1 {
				return fmt.Errorf("dead letters %+v, want 1 undecodable", st.DeadLetters)
			}
			if len(st.ObserverLeaders) != 1 || st.ObserverLeaders[0].Target != "svc-a" || !strings.HasPrefix(st.ObserverLeaders[0].Leader, "n") || st.LeadersSource != "bucket" {
				return fmt.Errorf("observer leaders %+v (%s), want svc-a led by a node, from the bucket", st.ObserverLeaders, st.LeadersSource)
			}
			return nil
		})
		names := map[string]bool{}
		for _, s := range st.Streams {
			names[s.Name] = true
			if s.Replicas != 3 || s.Leader == "" || len(s.Peers) != 2 || s.Lagging != 0 {
				t.Errorf("%s: stream %+v, want 3 replicas, a leader and 2 current followers", nd.Name, s)
			}
		}
		for _, want := range []string{"JETMETRICS_DELTAS", "JETMETRICS_DLQ", "JETMETRICS_SNAP", "JETMETRICS_OBS", "KV_jetmetrics_leases"} {
			if !names[want] {
				t.Errorf("%s: streams lack %s", nd.Name, want)
			}
		}
		t.Logf("%s: status as JSON agrees", nd.Name)
	}

	table, _, code := jmStatus(t, c.nodes[0].URL)
	t.Logf("table:\n%s", table)
	for _, want := range []string{"node n1 at " + c.nodes[0].URL + ": READY", "SERVICE DOWN", "AGGREGATOR LAG", "n2    peer", "undecodable", "svc-a"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^JETMETRICS_DELTAS +3 +n[123] +none `).MatchString(table) {
		t.Errorf("table lacks the delta stream with 3 replicas, a leader and no lagging follower")
	}
	if code != 0 {
		t.Errorf("status exit %d on a healthy cluster", code)
	}

	// Killed, n3 applies nothing: a batch published for it is its lag,
	// and its replicas fall behind.
	c.nodes[2].Kill()
	w3 := newWorkload(t, c.connectAs(t, producerUser), "n3")
	w3.add(5)
	w3.flush(t)
	harness.Eventually(t, converge, func() error {
		out, errOut, code := jmStatus(t, c.nodes[0].URL)
		if code != 1 || !strings.Contains(errOut, "replica n3 not current") || !strings.Contains(out, "PROBLEMS") {
			return fmt.Errorf("exit %d, stderr %q, want 1 naming replica n3", code, errOut)
		}
		js, _, _ := jmStatus(t, c.nodes[0].URL, "--output=json")
		var st clusterStatus
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			return err
		}
		for _, n := range st.Nodes {
			if n.Name == "n3" && (n.LagMessages == nil || *n.LagMessages != 1) {
				return fmt.Errorf("n3's lag %v, want the 1 batch published while it is down", n.LagMessages)
			}
		}
		return nil
	})
}
