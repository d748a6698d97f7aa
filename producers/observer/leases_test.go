package observer_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

const pollInterval = 200 * time.Millisecond

// Lease TTLs of the tests: on a cluster each write goes through raft,
// slow under -race on a busy machine, so the TTL there is longer.
const (
	leaseTTL        = 2 * time.Second
	clusterLeaseTTL = 3 * time.Second
)

// polled is one call of the poller.
type polled struct {
	target, node string
	slot         time.Time
	revision     uint64
	at           time.Time
}

// pollLog records every poll of every node.
type pollLog struct {
	mu    sync.Mutex
	polls []polled
}

func (l *pollLog) add(p polled) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.polls = append(l.polls, p)
}

// since returns the polls of slots at or after from, by target, in slot
// order.
func (l *pollLog) since(from time.Time) map[string][]polled {
	// Copy under the lock, sort outside it: the pollers wait for the lock.
	l.mu.Lock()
	polls := slices.Clone(l.polls)
	l.mu.Unlock()
	out := make(map[string][]polled)
	for _, p := range polls {
		if !p.slot.Before(from) {
			out[p.target] = append(out[p.target], p)
		}
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].slot.Before(ps[j].slot) })
	}
	return out
}

// rig is a set of observer nodes sharing one lease bucket.
type rig struct {
	t       *testing.T
	ttl     time.Duration
	servers []*natsserver.Server
	targets []string
	log     pollLog
}

func newRig(t *testing.T, servers []*natsserver.Server, targets int) *rig {
	r := &rig{t: t, servers: servers, ttl: leaseTTL}
	if len(servers) > 1 {
		r.ttl = clusterLeaseTTL
	}
	for i := range targets {
		r.targets = append(r.targets, fmt.Sprintf("vol-%02d", i))
	}
	return r
}

// obsNode is one node's leases and observer.
type obsNode struct {
	name   string
	nc     *nats.Conn
	leases *observer.Leases
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs node name, connected to the rig's i-th server (modulo).
func (r *rig) start(name string, i int) *obsNode {
	t := r.t
	t.Helper()
	nc, err := r.servers[i%len(r.servers)].Connect()
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	kv, err := streams.ProvisionLeases(pctx, js, streams.ObsConfig{LeaseTTL: r.ttl, MemoryStorage: true, Replicas: len(r.servers)})
	if err != nil {
		t.Fatal(err)
	}
	log := harness.Logger(t).With().Str("node", name).Logger()
	reg := prometheus.NewRegistry()
	leases, err := observer.NewLeases(observer.LeaseConfig{Observer: "volume", Node: name, Targets: r.targets}, kv, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	o, err := observer.New(observer.Config{Name: "volume", Node: name, Targets: r.targets, Interval: pollInterval},
		leases, observer.PollerFunc(func(ctx context.Context, p observer.Poll) error {
			r.log.add(polled{target: p.Target, node: p.Lease.Node, slot: p.Scheduled, revision: p.Lease.Revision, at: time.Now()})
			return nil
		}), log, reg)
	if err != nil {
		t.Fatal(err)
	}
	n := &obsNode{name: name, nc: nc, leases: leases, reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := leases.Run(ctx); err != nil {
				t.Errorf("%s leases: %v", name, err)
			}
		})
		wg.Go(func() {
			if err := o.Run(ctx); err != nil {
				t.Errorf("%s observer: %v", name, err)
			}
		})
		wg.Wait()
	}()
	t.Cleanup(n.stop)
	return n
}

// stop stops the node gracefully: its leases are released.
func (n *obsNode) stop() {
	n.cancel()
	<-n.done
	n.nc.Close()
}

// crash cuts the node off from NATS without releasing anything; it keeps
// running, as a node behind a partition does, until stop.
func (n *obsNode) crash() { n.nc.Close() }

// held returns the targets n holds a valid lease on.
func (n *obsNode) held() []string {
	var out []string
	for _, l := range n.leases.Leaders() {
		if l.Held {
			out = append(out, l.Target)
		}
	}
	return out
}

// waitSpread waits until every target is held by exactly one of nodes and
// none holds more than ceil(targets/nodes).
func (r *rig) waitSpread(nodes []*obsNode, within time.Duration) {
	r.t.Helper()
	limit := (len(r.targets) + len(nodes) - 1) / len(nodes)
	harness.Eventually(r.t, within, func() error {
		by := make(map[string][]string)
		for _, n := range nodes {
			held := n.held()
			if len(held) > limit {
				return fmt.Errorf("%s holds %d leases, more than %d", n.name, len(held), limit)
			}
			for _, t := range held {
				by[t] = append(by[t], n.name)
			}
		}
		for _, t := range r.targets {
			if len(by[t]) != 1 {
				return fmt.Errorf("target %s held by %v", t, by[t])
			}
		}
		return nil
	})
}

// checkOnce fails if any slot of any target was polled more than once,
// and if a target's lease revision went down from one poll to the next or
// stayed the same across a change of node.
func (r *rig) checkOnce(from time.Time) {
	r.t.Helper()
	for target, ps := range r.log.since(from) {
		for i := 1; i < len(ps); i++ {
			a, b := ps[i-1], ps[i]
			if a.slot.Equal(b.slot) {
				r.t.Errorf("%s slot %s polled by %s and %s", target, b.slot.Format("15:04:05.000"), a.node, b.node)
			}
			if b.revision < a.revision || (a.node != b.node && b.revision == a.revision) {
				r.t.Errorf("%s: revision %d of %s after %d of %s", target, b.revision, b.node, a.revision, a.node)
			}
		}
	}
}

// waitPolled waits until every target's last n polls in slots after from
// were made by one node: leadership is settled. It does
// not require every slot: on a machine this busy the process can stall
// for longer than an interval, and a poll that cannot start by its
// deadline is skipped (and recorded as failed), not made up for.
func (r *rig) waitPolled(from time.Time, n int, within time.Duration) {
	r.t.Helper()
	harness.Eventually(r.t, within, func() error {
		got := r.log.since(from)
		for _, t := range r.targets {
			ps := got[t]
			if len(ps) < n {
				return fmt.Errorf("%s polled %d times since %s", t, len(ps), from.Format("15:04:05.000"))
			}
			last := ps[len(ps)-n:]
			for _, p := range last {
				if p.node != last[0].node {
					return fmt.Errorf("%s last polled by %s and %s", t, last[0].node, p.node)
				}
			}
		}
		return nil
	})
}

// Two and three nodes: the targets are spread evenly, every slot of every
// target is polled exactly once, a node cut off from NATS stops polling
// and its targets are taken over within two TTLs, with no slot polled
// twice and fencing tokens that only grow.
func TestLeasesSpreadAndFailover(t *testing.T) {
	for _, tc := range []struct {
		nodes   int
		cluster bool
	}{{2, false}, {3, false}, {3, true}} {
		name := fmt.Sprintf("%d nodes", tc.nodes)
		if tc.cluster {
			name += " on a 3-server cluster, R3 bucket"
		}
		t.Run(name, func(t *testing.T) {
			nodes := tc.nodes
			servers := []*natsserver.Server{harness.NATS(t)}
			if tc.cluster {
				servers = harness.NATSCluster(t, 3)
			}
			r := newRig(t, servers, 30)
			var ns []*obsNode
			for i := range nodes {
				ns = append(ns, r.start(fmt.Sprintf("n%d", i), i))
			}
			r.waitSpread(ns, 10*r.ttl)
			steady := time.Now().Add(pollInterval)
			r.waitPolled(steady, 10, 10*r.ttl)
			r.checkOnce(steady)
			for _, n := range ns {
				var sum float64
				for _, target := range n.held() {
					sum += testutil.ToFloat64(leaderGauge(t, n.reg, target))
				}
				if want := float64(len(n.held())); sum != want {
					t.Errorf("%s: leader gauge sums to %v over its %v held targets", n.name, sum, want)
				}
			}

			victim := ns[0]
			lost := victim.held()
			killed := time.Now()
			victim.crash()
			survivors := ns[1:]
			harness.Eventually(t, 3*r.ttl, func() error {
				got := r.log.since(killed)
				for _, target := range lost {
					if !slices.ContainsFunc(got[target], func(p polled) bool { return p.node != victim.name }) {
						return fmt.Errorf("%s not polled since the crash", target)
					}
				}
				return nil
			})
			got := r.log.since(killed)
			var worst time.Duration
			for _, target := range lost {
				i := slices.IndexFunc(got[target], func(p polled) bool { return p.node != victim.name })
				gap := got[target][i].slot.Sub(killed)
				if i > 0 {
					gap = got[target][i].slot.Sub(got[target][i-1].slot)
				}
				worst = max(worst, gap)
			}
			t.Logf("%d targets taken over; longest gap in their polls %s (ttl %s)", len(lost), worst, r.ttl)
			if worst > 2*r.ttl {
				t.Errorf("takeover left a gap of %s, more than two TTLs", worst)
			}
			r.waitSpread(survivors, 10*r.ttl)
			after := time.Now().Add(pollInterval)
			r.waitPolled(after, 5, 10*r.ttl)
			r.checkOnce(steady.Add(-pollInterval))
		})
	}
}

// A node that stops gracefully hands its leases over at once, and a node
// that starts again rejoins and gets its share back without a slot polled
// twice.
func TestLeasesReleaseAndRejoin(t *testing.T) {
	r := newRig(t, []*natsserver.Server{harness.NATS(t)}, 30)
	a, b := r.start("a", 0), r.start("b", 1)
	r.waitSpread([]*obsNode{a, b}, 10*r.ttl)
	start := time.Now()

	lost := b.held()
	stopped := time.Now()
	b.stop()
	r.waitSpread([]*obsNode{a}, 10*r.ttl)
	if d := time.Since(stopped); d > r.ttl {
		t.Errorf("released leases taken over after %s, not within the renewal round", d)
	}
	got := r.log.since(stopped)
	for _, target := range lost {
		if ps := got[target]; len(ps) > 0 && ps[0].slot.Sub(stopped) > r.ttl {
			t.Errorf("%s next polled %s after the graceful stop", target, ps[0].slot.Sub(stopped))
		}
	}

	b2 := r.start("b", 1)
	r.waitSpread([]*obsNode{a, b2}, 10*r.ttl)
	rejoined := time.Now().Add(pollInterval)
	r.waitPolled(rejoined, 5, 10*r.ttl)
	r.checkOnce(start)
}

// A lease bucket made by the first node keeps its TTL; a later node
// configured with another uses the bucket's.
func TestLeaseBucketTTLIsTheFirstNodes(t *testing.T) {
	s := harness.NATS(t)
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := streams.ProvisionLeases(ctx, js, streams.ObsConfig{LeaseTTL: 2 * time.Second, MemoryStorage: true}); err != nil {
		t.Fatal(err)
	}
	kv, err := streams.ProvisionLeases(ctx, js, streams.ObsConfig{LeaseTTL: 5 * time.Second, MemoryStorage: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != 2*time.Second || kv.Bucket() != "jetmetrics_leases" {
		t.Errorf("bucket %s ttl %s, want jetmetrics_leases with the first node's 2s", kv.Bucket(), st.TTL())
	}
}

func leaderGauge(t *testing.T, reg *prometheus.Registry, target string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != "jetmetrics_observer_leader" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "target" && lp.GetValue() == target {
						ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("x", "x", nil, nil), prometheus.GaugeValue, m.GetGauge().GetValue())
					}
				}
			}
		}
	})
}

// A node killed and started again under the same name (the process is
// gone; the data directory's lock keeps two of one name from running)
// adopts the leases it held, by renewing them on their revision, instead
// of waiting a TTL for them to expire; no slot is polled twice.
func TestLeasesRestartAdopts(t *testing.T) {
	r := newRig(t, []*natsserver.Server{harness.NATS(t)}, 30)
	a, b := r.start("a", 0), r.start("b", 1)
	r.waitSpread([]*obsNode{a, b}, 10*r.ttl)
	start := time.Now()
	held := b.held()
	b.crash()
	b.stop() // its release fails: the connection is closed
	killed := time.Now()

	b2 := r.start("b", 1)
	harness.Eventually(t, r.ttl, func() error {
		if got := b2.held(); !slices.Equal(got, held) {
			return fmt.Errorf("restarted b holds %v, held %v", got, held)
		}
		return nil
	})
	if d := time.Since(killed); d >= r.ttl/2 {
		t.Errorf("restarted node took %s to adopt its leases, not one round", d)
	}
	r.waitPolled(time.Now().Add(pollInterval), 5, 10*r.ttl)
	r.checkOnce(start)
}

// NewLeases refuses a config that could not wait out a bucket found gone
// at the start: Provision without the TTL the bucket is made with.
func TestNewLeasesConfig(t *testing.T) {
	provision := func(context.Context) (jetstream.KeyValue, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		cfg  observer.LeaseConfig
		ok   bool
	}{
		{"provision with ttl", observer.LeaseConfig{TTL: time.Second, Provision: provision}, true},
		{"no provision, no ttl", observer.LeaseConfig{}, true},
		{"provision without ttl", observer.LeaseConfig{Provision: provision}, false},
		{"negative ttl", observer.LeaseConfig{TTL: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Observer, tc.cfg.Node, tc.cfg.Targets = "volume", "a", []string{"t0"}
			_, err := observer.NewLeases(tc.cfg, nil, harness.Logger(t), nil)
			if (err == nil) != tc.ok {
				t.Errorf("NewLeases: %v, want ok %v", err, tc.ok)
			}
		})
	}
}
