package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
)

const (
	// clusterTimeout bounds how long NATSCluster waits for a meta leader,
	// complete routes and current peers.
	clusterTimeout = 30 * time.Second
	// electionGrace is how long NATSCluster waits for the first meta
	// leader before it starts over with a fresh cluster; see NATSCluster.
	electionGrace = 2 * time.Second
	// clusterAttempts is how many fresh clusters NATSCluster tries; the
	// last one gets the whole clusterTimeout.
	clusterAttempts = 3
)

// natsLogger is Logger at info level: nats-server's debug output is a
// line per connection and raft message, and writing it through t.Log
// slows the raft traffic enough to make split votes (see NATSCluster)
// more likely.
func natsLogger(t testing.TB) zerolog.Logger {
	return Logger(t).Level(zerolog.InfoLevel)
}

// NATS starts a single nats-server with JetStream on a random loopback
// port, storing in a temporary directory, and shuts it down at cleanup.
func NATS(t testing.TB) *natsserver.Server {
	t.Helper()
	s, err := natsserver.Start(natsserver.Config{
		Name:     "n0",
		StoreDir: t.TempDir(),
		Port:     -1,
		Logger:   natsLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// NATSCluster starts n nats-servers clustered over loopback routes, each
// listing every node's route URL, and waits until every node has its full
// set of routes to every other, JetStream has a meta leader, and every
// node is current with it. All are shut down at cleanup. Config of a node
// restarts it on the same ports with the same routes.
func NATSCluster(t testing.TB, n int) []*natsserver.Server {
	t.Helper()
	return NATSClusterWith(t, n, nil)
}

// NATSClusterWith is NATSCluster with configure applied to each node's
// configuration before it starts (route credentials, route TLS, users),
// after the harness has set its name, store, ports and routes. A nil
// configure changes nothing.
func NATSClusterWith(t testing.TB, n int, configure func(*natsserver.Config)) []*natsserver.Server {
	t.Helper()
	if n < 2 {
		t.Fatalf("nats cluster of %d: need at least 2 nodes", n)
	}
	// A new cluster's first meta leader needs the vote of every node, as
	// all logs are empty. When two nodes' campaign timers fire within the
	// few milliseconds it takes to persist a vote, about one formation in
	// five, the vote splits and nats-server waits out a 4–9s election
	// timeout. A fresh cluster forms in well under a second, so start over
	// instead of waiting.
	var nodes []*natsserver.Server
	for attempt := 1; ; attempt++ {
		last := attempt == clusterAttempts
		var err error
		nodes, err = startCluster(t, n, configure)
		if err == nil && (last || hasMetaLeader(nodes, electionGrace)) {
			break
		}
		if err == nil {
			err = fmt.Errorf("no jetstream meta leader after %s", electionGrace)
		}
		shutdownAll(nodes)
		if last {
			t.Fatalf("nats cluster of %d: %v", n, err)
		}
		t.Logf("nats cluster of %d, attempt %d: %v; starting over", n, attempt, err)
	}
	t.Cleanup(func() { shutdownAll(nodes) })

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	for _, s := range nodes {
		if err := s.WaitJetStreamReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, time.Until(deadline(ctx)), func() error {
		return errors.Join(routesComplete(nodes), clusterCurrent(nodes))
	})
	return nodes
}

// hasMetaLeader reports whether one of nodes becomes JetStream meta
// leader within d.
func hasMetaLeader(nodes []*natsserver.Server, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		for _, s := range nodes {
			if s.Server().JetStreamIsLeader() {
				return true
			}
		}
		select {
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
}

// shutdownAll shuts down every node that is not nil.
func shutdownAll(nodes []*natsserver.Server) {
	for _, s := range nodes {
		if s != nil {
			s.Shutdown()
		}
	}
}

// startCluster starts n nodes on freshly picked route ports, each with a
// new store directory so a failed attempt leaves no state behind. The nodes start concurrently so that their early campaign
// for meta leader finds the others routed; started one by one, the first
// votes fail and the next election waits out a 4–9s timeout.
func startCluster(t testing.TB, n int, configure func(*natsserver.Config)) ([]*natsserver.Server, error) {
	ports := make(map[int]bool)
	for len(ports) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[p] = true
	}
	var listen, routes []string
	for p := range ports {
		hp := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		listen = append(listen, hp)
		routes = append(routes, "nats://"+hp)
	}

	nodes := make([]*natsserver.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		dir := t.TempDir()
		cfg := natsserver.Config{
			Name:          fmt.Sprintf("n%d", i),
			StoreDir:      dir,
			Port:          -1,
			ClusterListen: listen[i],
			Routes:        routes,
			Logger:        natsLogger(t),
		}
		if configure != nil {
			configure(&cfg)
		}
		wg.Go(func() {
			nodes[i], errs[i] = natsserver.Start(cfg)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		shutdownAll(nodes)
		return nil, err
	}
	return nodes, nil
}

// routesComplete returns nil once every node has, to every other node, a
// full route pool and one route per pinned account (the system account's,
// at least). Both ends of a pair dial each other at startup and one of
// each duplicate is closed; until that settles a route can be down for
// the 1s reconnect delay, and messages across it are dropped.
func routesComplete(nodes []*natsserver.Server) error {
	type pair struct{ from, to string }
	pooled := make(map[pair]int)
	pinned := make(map[pair]map[string]bool)
	accounts := make(map[string]bool)
	for _, s := range nodes {
		rz, err := s.Server().Routez(&server.RoutezOptions{})
		if err != nil {
			return fmt.Errorf("routes of %s: %w", s.Config().Name, err)
		}
		for _, r := range rz.Routes {
			p := pair{rz.Name, r.RemoteName}
			if r.Account == "" {
				pooled[p]++
				continue
			}
			accounts[r.Account] = true
			if pinned[p] == nil {
				pinned[p] = make(map[string]bool)
			}
			pinned[p][r.Account] = true
		}
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			p := pair{a.Config().Name, b.Config().Name}
			if pooled[p] != server.DEFAULT_ROUTE_POOL_SIZE || len(pinned[p]) != len(accounts) {
				return fmt.Errorf("%s has %d pooled and %d pinned routes to %s, want %d and %d",
					p.from, pooled[p], len(pinned[p]), p.to, server.DEFAULT_ROUTE_POOL_SIZE, len(accounts))
			}
		}
	}
	return nil
}

// clusterCurrent returns nil once all nodes agree on one meta leader that
// sees every other node as a current peer.
func clusterCurrent(nodes []*natsserver.Server) error {
	var leader *server.Server
	names := make(map[string]bool)
	for _, s := range nodes {
		names[s.Config().Name] = true
		if s.Server().JetStreamIsLeader() {
			leader = s.Server()
		}
	}
	if leader == nil {
		return errors.New("no node is jetstream meta leader")
	}
	info, err := leader.Jsz(&server.JSzOptions{})
	if err != nil {
		return fmt.Errorf("jetstream info from %s: %w", leader.Name(), err)
	}
	if info.Meta == nil {
		return fmt.Errorf("%s has no meta group", leader.Name())
	}
	delete(names, leader.Name())
	for _, p := range info.Meta.Replicas {
		if !p.Current || p.Offline {
			return fmt.Errorf("meta peer %s not current (leader %s)", p.Name, leader.Name())
		}
		delete(names, p.Name)
	}
	if len(names) > 0 {
		return fmt.Errorf("meta leader %s does not list peers %v", leader.Name(), names)
	}
	// Stream placement uses the leader's view of which servers are online
	// (from their stats), which can lag the meta group: an R3 stream made
	// before it lists all three fails with "peer offline".
	if online := leader.JetStreamClusterPeers(); len(online) != len(nodes) {
		return fmt.Errorf("meta leader %s sees %d servers online for placement (%v), want %d", leader.Name(), len(online), online, len(nodes))
	}
	return nil
}

// deadline returns ctx's deadline; ctx must have one.
func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
