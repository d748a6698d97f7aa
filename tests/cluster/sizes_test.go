package cluster_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// TestEveryClusterSizeStartsWithDefaults starts embedded clusters of 1, 2,
// 3 and 5 nodes with no --streams.replicas: each becomes ready, and its
// streams have the replica count docs/operations.md gives for its size
// (a 2-node cluster is R1: JetStream R2 loses writes with either node).
func TestEveryClusterSizeStartsWithDefaults(t *testing.T) {
	for _, tc := range []struct{ nodes, replicas int }{{1, 1}, {2, 1}, {3, 3}, {5, 3}} {
		t.Run(fmt.Sprintf("%d nodes", tc.nodes), func(t *testing.T) {
			c := startClusterOf(t, tc.nodes)
			js, err := jetstream.New(c.connect(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			for _, name := range []string{"JETMETRICS_DELTAS", "JETMETRICS_DLQ", "JETMETRICS_SNAP"} {
				s, err := js.Stream(ctx, name)
				if err != nil {
					t.Fatalf("stream %s: %v", name, err)
				}
				if got := s.CachedInfo().Config.Replicas; got != tc.replicas {
					t.Errorf("stream %s: R%d, want R%d", name, got, tc.replicas)
				}
			}
		})
	}
}

// TestReadySaysWhyStreamsWait checks /-/ready names the reason while the
// streams wait: on a first start with one of three servers missing, the
// JetStream leader election and the servers it needs. Once the third
// server is up, all three become ready. (The placement reason is
// TestProvisionFailureNamesTheFlag's: JetStream keeps a server it just
// lost as a placement candidate for a while, so it is slow to provoke.)
func TestReadySaysWhyStreamsWait(t *testing.T) {
	const n = 3
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range ports {
		ports[i] = harness.FreePort(t)
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
	}
	security := securityArgs(t)
	start := func(i int) *harness.ProcessNode {
		return harness.StartProcessNode(t, harness.ProcessNodeConfig{
			Name: fmt.Sprintf("n%d", i+1),
			ExtraArgs: append([]string{
				fmt.Sprintf("--nats.cluster.listen=127.0.0.1:%d", ports[i]),
				"--nats.cluster.routes=" + strings.Join(routes, ","),
			}, security...),
		})
	}
	nodes := []*harness.ProcessNode{start(0), start(1)}
	readySays(t, nodes[0], "elect a JetStream leader", "all 3 servers of --nats.cluster.routes")
	nodes = append(nodes, start(2))
	for _, nd := range nodes {
		nd.WaitReady(formTimeout)
	}
}

// readySays polls nd's /-/ready until it answers 503 with every one of
// want in its body.
func readySays(t *testing.T, nd *harness.ProcessNode, want ...string) {
	t.Helper()
	harness.Eventually(t, formTimeout, func() error {
		resp, err := http.Get(nd.URL + "/-/ready")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("/-/ready of %s: %s", nd.Name, resp.Status)
		}
		for _, w := range want {
			if !strings.Contains(string(body), w) {
				return fmt.Errorf("/-/ready of %s lacks %q:\n%s", nd.Name, w, body)
			}
		}
		return nil
	})
}
