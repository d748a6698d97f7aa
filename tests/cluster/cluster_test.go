package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"

	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/natsauth"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

const (
	snapshotInterval = 300 * time.Millisecond
	snapshotTTL      = 2 * time.Second
	formTimeout      = 90 * time.Second
	converge         = 30 * time.Second
)

type cluster struct {
	nodes []*harness.ProcessNode
}

// The cluster's credentials: the secure setup of docs/security.md is the
// tested one. The tests' own connection is an admin (they step down
// leaders and read stream state); workloads publish as a producer.
var (
	adminUser    = clusterUser{"tester", "tester-pw", "admin", ""}
	producerUser = clusterUser{"load", "load-pw", "producer", "    owners: [\"*\"]\n"}
)

const routePassword = "route-pw-s3cret"

type clusterUser struct{ name, password, role, extra string }

// securityArgs writes the users file and the route password file and
// returns the flags that use them.
func securityArgs(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	users := "users:\n"
	for _, u := range []clusterUser{adminUser, producerUser} {
		h, err := bcrypt.GenerateFromPassword([]byte(u.password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		users += fmt.Sprintf("  - user: %s\n    password: %q\n    role: %s\n%s", u.name, h, u.role, u.extra)
	}
	usersFile, pwFile := filepath.Join(dir, "users.yaml"), filepath.Join(dir, "route-password")
	if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwFile, []byte(routePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--nats.users.file=" + usersFile, "--nats.cluster.user=route", "--nats.cluster.password-file=" + pwFile}
}

// startCluster starts three nodes whose embedded NATS servers route to
// each other, with a users file and route credentials, and waits until
// every one is ready.
func startCluster(t *testing.T, extra ...string) *cluster {
	t.Helper()
	return startClusterOf(t, 3, extra...)
}

// startClusterOf is startCluster with n nodes.
func startClusterOf(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range ports {
		ports[i] = harness.FreePort(t)
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
	}
	security := securityArgs(t)
	c := &cluster{}
	for i := range n {
		args := []string{
			"--snapshot.interval=" + snapshotInterval.String(),
			"--snapshot.ttl=" + snapshotTTL.String(),
		}
		if n > 1 { // one node is no cluster: no routes
			args = append(args, fmt.Sprintf("--nats.cluster.listen=127.0.0.1:%d", ports[i]), "--nats.cluster.routes="+strings.Join(routes, ","))
		}
		c.nodes = append(c.nodes, harness.StartProcessNode(t, harness.ProcessNodeConfig{
			Name:      fmt.Sprintf("n%d", i+1),
			ExtraArgs: append(append(args, security...), extra...),
		}))
	}
	start := time.Now()
	for _, nd := range c.nodes {
		nd.WaitReady(formTimeout)
	}
	t.Logf("cluster of %d nodes ready in %v", n, time.Since(start).Round(time.Millisecond))
	return c
}

// connect returns an admin connection that knows every node's NATS, so it
// fails over when one goes away.
func (c *cluster) connect(t *testing.T) *nats.Conn {
	t.Helper()
	return c.connectAs(t, adminUser)
}

// connectAs is connect as u, with the client options the SDK documents.
func (c *cluster) connectAs(t *testing.T, u clusterUser) *nats.Conn {
	t.Helper()
	urls := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		urls[i] = nd.NATSURL
	}
	auth, err := natsauth.ClientOptions{User: u.name, Password: u.password}.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(strings.Join(urls, ","), append(auth, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// workload counts into one node's aggregate through the SDK.
type workload struct {
	p       *producers.Producer
	events  *producers.Counter
	latency *producers.Histogram
	count   int
}

func newWorkload(t *testing.T, nc *nats.Conn, node string) *workload {
	t.Helper()
	p, err := producers.New(producers.Config{Node: node, Name: "load-" + node, FlushInterval: 50 * time.Millisecond}, nc)
	if err != nil {
		t.Fatal(err)
	}
	events, _ := p.NewCounter(producers.Opts{Name: "cl_events_total", Help: "events"})
	latency, err := p.NewHistogram(producers.HistogramOpts{Name: "cl_latency_seconds", Help: "latency", Buckets: []float64{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	return &workload{p: p, events: events, latency: latency}
}

func (w *workload) add(n int) {
	for range n {
		w.events.Inc()
		w.latency.Observe(1.5)
	}
	w.count += n
}

func (w *workload) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// want is the cluster view every node should converge to: each node's
// counter and histogram count.
func want(counts map[string]int) map[string]float64 {
	out := map[string]float64{}
	for node, n := range counts {
		out[fmt.Sprintf(`cl_events_total{node=%q}`, node)] = float64(n)
		out[fmt.Sprintf(`cl_latency_seconds_count{node=%q}`, node)] = float64(n)
		out[fmt.Sprintf(`cl_latency_seconds_bucket{node=%q,le="1"}`, node)] = 0
		out[fmt.Sprintf(`cl_latency_seconds_bucket{node=%q,le="2"}`, node)] = float64(n)
	}
	return out
}

// expectView polls url until its cl_* samples are exactly want (nothing
// more, nothing less), with no duplicate or inconsistent series.
func expectView(t *testing.T, url string, want map[string]float64) {
	t.Helper()
	harness.Eventually(t, converge, func() error {
		fams, err := harness.Scrape(url)
		if err != nil {
			return err
		}
		if err := consistent(fams); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		got := harness.Samples(fams)
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				return fmt.Errorf("%s: %s = %v (present %v), want %v", url, k, g, ok, v)
			}
		}
		for k := range got {
			if strings.HasPrefix(k, "cl_") && !strings.Contains(k, "_sum") && !strings.Contains(k, `le="+Inf"`) {
				if _, ok := want[k]; !ok {
					return fmt.Errorf("%s: unexpected sample %s = %v", url, k, got[k])
				}
			}
		}
		return nil
	})
}

// consistent runs client_golang's own checks (duplicate series, label
// consistency, types) over scraped families.
func consistent(fams map[string]*dto.MetricFamily) error {
	list := make([]*dto.MetricFamily, 0, len(fams))
	for _, f := range fams {
		list = append(list, f)
	}
	_, err := prometheus.Gatherers{exposition.StaticGatherer(list)}.Gather()
	return err
}

// TestClusterConverges: producers on every node; every node's
// /metrics/cluster converges to the exact totals of all nodes, each node's
// /metrics shows its own aggregate alone, and the streams are R3.
func TestClusterConverges(t *testing.T) {
	c := startCluster(t)
	nc := c.connect(t)
	pnc := c.connectAs(t, producerUser)
	counts := map[string]int{}
	for i, nd := range c.nodes {
		w := newWorkload(t, pnc, nd.Name)
		w.add(1000 * (i + 1))
		w.flush(t)
		counts[nd.Name] = w.count
	}
	t.Logf("published")
	for _, nd := range c.nodes {
		expectView(t, nd.URL+"/metrics/cluster", want(counts))
		t.Logf("%s converged", nd.Name)
		// /metrics: this node alone, without a node label.
		harness.Eventually(t, converge, func() error {
			fams, err := harness.Scrape(nd.URL + "/metrics")
			if err != nil {
				return err
			}
			got := harness.Samples(fams)
			if got["cl_events_total"] != float64(counts[nd.Name]) {
				return fmt.Errorf("%s /metrics: cl_events_total = %v, want %d", nd.Name, got["cl_events_total"], counts[nd.Name])
			}
			return nil
		})
	}
	// Filters: ?node= and ?name=, and the JSON form keeps every node.
	expectView(t, c.nodes[0].URL+"/metrics/cluster?node=n2&name=cl_events_total", map[string]float64{`cl_events_total{node="n2"}`: float64(counts["n2"])})

	js, _ := jetstream.New(nc)
	for _, name := range []string{"JETMETRICS_DELTAS", "JETMETRICS_SNAP", "JETMETRICS_DLQ"} {
		s, err := js.Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}
}

// TestClusterKillAndReturn kills a node without a goodbye: within its TTL
// it vanishes from the others' views. Restarted, it comes back with its
// counters continued, not reset.
func TestClusterKillAndReturn(t *testing.T) {
	c := startCluster(t)
	nc := c.connect(t)
	counts := map[string]int{}
	for _, nd := range c.nodes {
		w := newWorkload(t, nc, nd.Name)
		w.add(500)
		w.flush(t)
		counts[nd.Name] = w.count
	}
	for _, nd := range c.nodes {
		expectView(t, nd.URL+"/metrics/cluster", want(counts))
	}

	victim := c.nodes[2]
	victim.Kill()
	killed := time.Now()
	// First: the dead node's series leave both survivors' views. Its last
	// snapshot was published at most an interval before the kill, so this
	// takes at most its TTL.
	var wg sync.WaitGroup
	for _, nd := range c.nodes[:2] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			harness.Eventually(t, converge, func() error {
				fams, err := harness.Scrape(nd.URL + "/metrics/cluster")
				if err != nil {
					return err
				}
				for k := range harness.Samples(fams) {
					if strings.Contains(k, `node="n3"`) {
						return fmt.Errorf("%s still shows %s", nd.Name, k)
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	gone := time.Since(killed)
	t.Logf("killed node vanished from both peers' views %v after the kill (TTL %v)", gone, snapshotTTL)
	if gone > snapshotTTL+time.Second {
		t.Errorf("killed node stayed %v, longer than its TTL %v (+1s polling slack)", gone, snapshotTTL)
	}
	// Then the survivors' views are exact. (If the dead node led the
	// snapshot stream, the survivors' own snapshots wait for a new leader
	// and may drop out of each other's views for that long.)
	survivors := map[string]int{"n1": counts["n1"], "n2": counts["n2"]}
	for _, nd := range c.nodes[:2] {
		expectView(t, nd.URL+"/metrics/cluster", want(survivors))
	}

	victim.Start()
	victim.WaitReady(formTimeout)
	for _, nd := range c.nodes {
		expectView(t, nd.URL+"/metrics/cluster", want(counts))
	}
	w := newWorkload(t, nc, victim.Name)
	w.add(250)
	w.flush(t)
	counts[victim.Name] += w.count
	for _, nd := range c.nodes {
		expectView(t, nd.URL+"/metrics/cluster", want(counts))
	}
}

// TestClusterFaultsNeverGoBackwards runs load while the delta stream's
// leader steps down and one node (with its NATS server) restarts; totals
// end exact and no node's exposed counters ever decrease.
func TestClusterFaultsNeverGoBackwards(t *testing.T) {
	c := startCluster(t)
	nc := c.connect(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	var samplers sync.WaitGroup
	violations := make(chan string, 100)
	scrapes := make([]atomic.Int64, len(c.nodes))
	for i, nd := range c.nodes {
		samplers.Add(1)
		go func() {
			defer samplers.Done()
			sampleMonotonic(ctx, nd, violations, &scrapes[i])
		}()
	}

	works := make([]*workload, len(c.nodes))
	for i, nd := range c.nodes {
		works[i] = newWorkload(t, nc, nd.Name)
	}
	load := func(rounds int) {
		for range rounds {
			for _, w := range works {
				w.add(20)
			}
			for _, w := range works {
				w.flush(t)
			}
		}
	}
	load(10)
	js, _ := jetstream.New(nc)
	if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.JETMETRICS_DELTAS", nil, 10*time.Second); err != nil {
		t.Fatalf("leader step-down: %v", err)
	}
	load(10)
	restarted := c.nodes[1]
	restarted.Stop()
	load(10) // the node's deltas wait in the R3 stream meanwhile
	restarted.Start()
	restarted.WaitReady(formTimeout)
	load(10)

	counts := map[string]int{}
	for _, w := range works {
		counts[strings.TrimPrefix(w.p.ID()[:strings.LastIndexByte(w.p.ID(), '-')], "load-")] = w.count
	}
	for _, nd := range c.nodes {
		expectView(t, nd.URL+"/metrics/cluster", want(counts))
	}
	// Enough answers of every node, the restarted one included, for the
	// check to mean something; on a loaded machine that takes a while.
	harness.Eventually(t, formTimeout, func() error {
		for i := range scrapes {
			if n := scrapes[i].Load(); n < 20 {
				return fmt.Errorf("only %d good scrapes of %s: the monotonicity check saw too little", n, c.nodes[i].Name)
			}
		}
		return nil
	})
	stop()
	samplers.Wait()
	close(violations)
	for v := range violations {
		t.Error(v)
	}
	good := make([]int64, len(scrapes))
	for i := range scrapes {
		good[i] = scrapes[i].Load()
	}
	t.Logf("good scrapes per node: %v", good)
	if s, err := js.Stream(context.Background(), "JETMETRICS_DELTAS"); err == nil {
		t.Logf("delta stream leader now %s", s.CachedInfo().Cluster.Leader)
	}
}

// sampleMonotonic scrapes a node's cluster view until ctx ends and reports
// any counter series whose value went down. It counts the scrapes that
// answered in good.
func sampleMonotonic(ctx context.Context, nd *harness.ProcessNode, violations chan<- string, good *atomic.Int64) {
	last := map[string]float64{}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fams, err := harness.Scrape(nd.URL + "/metrics/cluster")
		if err != nil {
			continue // a node restarting or catching up answers with an error: no sample, not a decrease
		}
		good.Add(1)
		for k, v := range harness.Samples(fams) {
			if !strings.HasPrefix(k, "cl_") || strings.Contains(k, "_sum") {
				continue
			}
			if prev, ok := last[k]; ok && v < prev {
				select {
				case violations <- fmt.Sprintf("%s: %s went from %v to %v", nd.Name, k, prev, v):
				default:
				}
			}
			last[k] = v
		}
	}
}

// TestClusterSharedRedis: three nodes sharing one Redis reach the same
// exact totals; every key carries its node's hash tag.
func TestClusterSharedRedis(t *testing.T) {
	rs := harness.RedisTCP(t)
	c := startCluster(t, "--redis.url="+rs.URL())
	nc := c.connect(t)
	counts := map[string]int{}
	for i, nd := range c.nodes {
		w := newWorkload(t, nc, nd.Name)
		w.add(300 * (i + 1))
		w.flush(t)
		counts[nd.Name] = w.count
	}
	for _, nd := range c.nodes {
		expectView(t, nd.URL+"/metrics/cluster", want(counts))
	}
	keys, err := harness.RedisClient(t, rs).Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.Contains(k, "{") {
			if k != "jetmetrics:peers" {
				t.Errorf("key %q has no hash tag", k)
			}
		}
	}
}
