package observer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jetmetrics/jetmetrics/producers/observer"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// Update adds and removes targets while the observer runs: the target
// that stays keeps its schedule and its status (its poll count goes on
// from where it was), the removed one is polled no more, the added one is
// polled from its next instant.
func TestObserverUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		var s starts
		o := newObserver(t, observer.Config{Targets: []string{"keep", "drop"}, Interval: interval},
			observer.PollerFunc(func(ctx context.Context, p observer.Poll) error {
				s.add(p.Target, time.Now())
				return nil
			}), nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- o.Run(ctx) }()
		time.Sleep(5*interval + interval/2)
		synctest.Wait()
		before := statusOf(o)
		if before["keep"].Polls < 5 || before["drop"].Polls < 5 {
			t.Fatalf("before the update: %+v", before)
		}
		if err := o.Update([]string{"keep", "keep"}); err == nil {
			t.Fatal("a target listed twice was accepted")
		}
		updated := time.Now()
		if err := o.Update([]string{"keep", "add"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * interval)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		after := statusOf(o)
		if _, ok := after["drop"]; ok {
			t.Errorf("the removed target still has a status: %+v", after["drop"])
		}
		if got := after["keep"].Polls; got < before["keep"].Polls+5 {
			t.Errorf("kept target: %d polls after the update, %d before: its count restarted or its loop stopped", got, before["keep"].Polls)
		}
		if n := len(s.get("add")); n < 4 {
			t.Errorf("added target polled %d times in 5 intervals", n)
		}
		for _, at := range s.get("drop") {
			if at.After(updated) {
				t.Errorf("removed target polled at %s, after the update", at)
			}
		}
		keep := s.get("keep")
		for i := 1; i < len(keep); i++ {
			if d := keep[i].Sub(keep[i-1]); d != interval {
				t.Errorf("kept target's polls %d and %d start %s apart across the update, want %s", i-1, i, d, interval)
			}
		}
	})
}

func statusOf(o *observer.Observer) map[string]observer.TargetStatus {
	out := make(map[string]observer.TargetStatus)
	for _, st := range o.Status() {
		out[st.Target] = st
	}
	return out
}

// leaseNode is one node's Leases alone, without an observer.
type leaseNode struct {
	name   string
	leases *observer.Leases
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

// runLeases runs a Leases of node over the bucket of ttl on s, making the
// bucket again when it is gone if provision.
func runLeases(t *testing.T, js jetstream.JetStream, node string, targets []string, ttl time.Duration, provision bool) *leaseNode {
	t.Helper()
	n := newLeaseNode(t, js, node, targets, ttl, provision)
	n.run(t)
	return n
}

// newLeaseNode makes the bucket of ttl if it does not exist and a Leases
// of node over it, not running yet.
func newLeaseNode(t *testing.T, js jetstream.JetStream, node string, targets []string, ttl time.Duration, provision bool) *leaseNode {
	t.Helper()
	sc := streams.ObsConfig{LeaseTTL: ttl, MemoryStorage: true}
	kv, err := streams.ProvisionLeases(t.Context(), js, sc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := observer.LeaseConfig{Observer: "volume", Node: node, Targets: targets, TTL: sc.LeaseBucketConfig().TTL}
	if provision {
		cfg.Provision = func(ctx context.Context) (jetstream.KeyValue, error) { return streams.ProvisionLeases(ctx, js, sc) }
	}
	reg := prometheus.NewRegistry()
	l, err := observer.NewLeases(cfg, kv, harness.Logger(t).With().Str("node", node).Logger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	return &leaseNode{name: node, leases: l, reg: reg, done: make(chan struct{})}
}

// run starts n's Run, stopped and waited for when the test ends.
func (n *leaseNode) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		defer close(n.done)
		if err := n.leases.Run(ctx); err != nil {
			t.Errorf("%s leases: %v", n.name, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-n.done })
}

func (n *leaseNode) held() []string {
	var out []string
	for _, l := range n.leases.Leaders() {
		if l.Held {
			out = append(out, l.Target)
		}
	}
	return out
}

func leaseJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := harness.NATS(t).Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// SetTargets keeps the leases of the targets that stay (no release, no
// retake: every write of the key after it is a renewal by the same node,
// with a growing revision), releases the removed target's lease at once
// (its key is deleted when SetTargets returns and another node takes it
// in its first round, long before the TTL), and takes the added one.
func TestLeasesSetTargets(t *testing.T) {
	const ttl = 2 * time.Second
	js := leaseJS(t)
	a := runLeases(t, js, "a", []string{"t1", "t2", "t3"}, ttl, false)
	harness.Eventually(t, 2*ttl, func() error {
		if got := a.held(); !slices.Equal(got, []string{"t1", "t2", "t3"}) {
			return fmt.Errorf("a holds %v", got)
		}
		return nil
	})
	kv, err := js.KeyValue(t.Context(), "jetmetrics_leases")
	if err != nil {
		t.Fatal(err)
	}
	// Every write of t1's and t2's keys from now on.
	w, err := kv.WatchFiltered(t.Context(), []string{"volume.lease.t1", "volume.lease.t2"}, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	revs := map[string]uint64{}
	for _, l := range a.leases.Leaders() {
		revs[l.Target] = l.Revision
	}

	ctx, cancel := context.WithTimeout(t.Context(), ttl)
	defer cancel()
	if err := a.leases.SetTargets(ctx, []string{"t1", "t2", "t1"}); err == nil {
		t.Fatal("SetTargets accepted a target listed twice")
	}
	if err := a.leases.SetTargets(ctx, []string{"t1", "t2", "t4"}); err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(t.Context(), "volume.lease.t3"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("removed target's lease after SetTargets: %v %v, want it released", e, err)
	}
	released := time.Now()
	b := runLeases(t, js, "b", []string{"t3"}, ttl, false)
	harness.Eventually(t, ttl/2, func() error {
		if got := b.held(); !slices.Equal(got, []string{"t3"}) {
			return fmt.Errorf("b holds %v", got)
		}
		return nil
	})
	t.Logf("released lease taken by another node %s after SetTargets", time.Since(released))
	harness.Eventually(t, 2*ttl, func() error {
		if got := a.held(); !slices.Equal(got, []string{"t1", "t2", "t4"}) {
			return fmt.Errorf("a holds %v", got)
		}
		return nil
	})
	if got := testutil.ToFloat64(leaderGauge(t, a.reg, "t4")); got != 1 {
		t.Errorf("a's leader gauge of the added target = %v", got)
	}
	if n, err := testutil.GatherAndCount(a.reg, "jetmetrics_observer_leader"); err != nil || n != 3 {
		t.Errorf("a exposes %d leader gauges (%v), want 3: the removed target's is gone", n, err)
	}
	// Two renewals of each kept lease later, every write was a's renewal.
	seen := map[string]int{}
	deadline := time.After(4 * ttl)
	for seen["volume.lease.t1"] < 2 || seen["volume.lease.t2"] < 2 {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue
			}
			target := e.Key()[len("volume.lease."):]
			if e.Operation() != jetstream.KeyValuePut || string(e.Value()) != "a" || e.Revision() <= revs[target] {
				t.Fatalf("%s: %s of %q at revision %d after %d: the lease was released or taken again", e.Key(), e.Operation(), e.Value(), e.Revision(), revs[target])
			}
			revs[target] = e.Revision()
			seen[e.Key()]++
		case <-deadline:
			t.Fatalf("kept leases renewed %v times in 4 TTLs", seen)
		}
	}
}

// A deleted lease bucket: every node stops leading (Lease, Leaders, the
// gauge) within validFor(ttl) of the deletion, the nodes make the bucket
// again once it has been gone a TTL, and the targets are led again, by
// one node each, never two at once.
func TestLeasesBucketDeleted(t *testing.T) {
	const ttl = 2 * time.Second
	js := leaseJS(t)
	targets := []string{"t0", "t1", "t2", "t3", "t4", "t5"}
	nodes := []*leaseNode{runLeases(t, js, "a", targets, ttl, true), runLeases(t, js, "b", targets, ttl, true)}
	// Both nodes run and share the targets before the deletion: a node
	// whose Run had not started yet would find the bucket gone at its
	// start, which TestLeasesBucketGoneAtStart is about.
	harness.Eventually(t, 4*ttl, func() error { return shared(t, nodes, targets) })

	if err := js.DeleteKeyValue(t.Context(), "jetmetrics_leases"); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	harness.Eventually(t, ttl*3/4+200*time.Millisecond, func() error {
		if by := leadersOf(t, nodes); len(by) > 0 {
			return fmt.Errorf("still led: %v", by)
		}
		for _, n := range nodes {
			for _, target := range targets {
				if g := testutil.ToFloat64(leaderGauge(t, n.reg, target)); g != 0 {
					return fmt.Errorf("%s: leader gauge of %s = %v", n.name, target, g)
				}
				if _, ok := n.leases.Lease(target); ok {
					return fmt.Errorf("%s still grants %s", n.name, target)
				}
			}
		}
		return nil
	})
	t.Logf("leadership dropped %s after the bucket was deleted (ttl %s)", time.Since(deleted), ttl)
	harness.Eventually(t, 4*ttl, func() error { return allLed(t, nodes, targets) })
	t.Logf("led again %s after the bucket was deleted", time.Since(deleted))
	if _, err := js.KeyValue(t.Context(), "jetmetrics_leases"); err != nil {
		t.Errorf("bucket after recovery: %v", err)
	}
	var sum float64
	for _, n := range nodes {
		for _, target := range targets {
			sum += testutil.ToFloat64(leaderGauge(t, n.reg, target))
		}
	}
	if sum != float64(len(targets)) {
		t.Errorf("leader gauges sum to %v over the nodes, want %d", sum, len(targets))
	}
}

// leadersOf returns each target's holders among nodes, failing the test
// on two at once and on a lease Leaders reports held that Lease does not
// grant.
func leadersOf(t *testing.T, nodes []*leaseNode) map[string][]string {
	t.Helper()
	by := map[string][]string{}
	for _, n := range nodes {
		for _, target := range n.held() {
			by[target] = append(by[target], n.name)
			if _, ok := n.leases.Lease(target); !ok && slices.Contains(n.held(), target) {
				// Both go by the clock: a lease whose validity ended between
				// the two calls is not held any more by either.
				t.Errorf("%s: Leaders says held, Lease does not grant %s", n.name, target)
			}
		}
	}
	var twice []string
	for target, ns := range by {
		if len(ns) > 1 {
			twice = append(twice, fmt.Sprintf("%s led by %v", target, ns))
		}
	}
	if len(twice) > 0 {
		slices.Sort(twice)
		t.Fatalf("at once: %s", strings.Join(twice, ", "))
	}
	return by
}

// allLed reports the first of targets without exactly one leader among
// nodes (see leadersOf).
func allLed(t *testing.T, nodes []*leaseNode, targets []string) error {
	t.Helper()
	by := leadersOf(t, nodes)
	for _, target := range targets {
		if len(by[target]) != 1 {
			return fmt.Errorf("%s led by %v", target, by[target])
		}
	}
	return nil
}

// shared reports the first of targets without exactly one leader among
// nodes, or the first node that leads none (see leadersOf).
func shared(t *testing.T, nodes []*leaseNode, targets []string) error {
	t.Helper()
	if err := allLed(t, nodes, targets); err != nil {
		return err
	}
	for _, n := range nodes {
		if len(n.held()) == 0 {
			return fmt.Errorf("%s leads nothing", n.name)
		}
	}
	return nil
}

// A node whose Run starts while the lease bucket is gone (deleted after
// another node took every lease in it, before this one read the bucket's
// TTL) makes it again only once it has been gone the configured TTL: it
// returns no error, leads nothing meanwhile, and at no moment do two
// nodes lead one target. a does not make the bucket again, so the fresh
// one is b's, made a TTL after b found the old one gone: b found it at
// or after started.
func TestLeasesBucketGoneAtStart(t *testing.T) {
	const ttl = 2 * time.Second
	js := leaseJS(t)
	targets := []string{"t0", "t1", "t2", "t3", "t4", "t5"}
	a := runLeases(t, js, "a", targets, ttl, false)
	b := newLeaseNode(t, js, "b", targets, ttl, true)
	nodes := []*leaseNode{a, b}
	harness.Eventually(t, 4*ttl, func() error {
		if got := a.held(); len(got) != len(targets) {
			return fmt.Errorf("a leads %v", got)
		}
		return nil
	})

	if err := js.DeleteKeyValue(t.Context(), "jetmetrics_leases"); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	b.run(t)
	// a's leases of the deleted bucket run out within validFor(ttl), and
	// the fresh bucket's leases come at least a quarter of a TTL later:
	// led again means after a poll that found nothing led.
	dropped := false
	harness.Eventually(t, 4*ttl, func() error {
		by := leadersOf(t, nodes)
		if since := time.Since(started); since < ttl {
			for target, ns := range by {
				if slices.Contains(ns, "b") {
					t.Fatalf("b leads %s %s after it started with the bucket gone, before the ttl %s", target, since, ttl)
				}
			}
		}
		if len(by) == 0 {
			dropped = true
		}
		if !dropped {
			return fmt.Errorf("leases of the deleted bucket still count: %v", by)
		}
		return allLed(t, nodes, targets)
	})
	t.Logf("led again %s after b started with the bucket gone (ttl %s)", time.Since(started), ttl)
	st, err := js.Stream(t.Context(), "KV_jetmetrics_leases")
	if err != nil {
		t.Fatalf("bucket after recovery: %v", err)
	}
	if made := st.CachedInfo().Created; made.Before(started.Add(ttl)) {
		t.Errorf("bucket made again %s after b started with it gone, before the ttl %s", made.Sub(started), ttl)
	}
	// And the nodes go on sharing the targets, one leader each.
	harness.Eventually(t, 4*ttl, func() error { return shared(t, nodes, targets) })
}
