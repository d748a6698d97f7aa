package observers_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/jetmetrics/jetmetrics/consumers/volumecache"
	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/pkg/obscache"
	"github.com/jetmetrics/jetmetrics/pkg/volumes"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	pv "github.com/jetmetrics/jetmetrics/producers/volumes"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	interval = 200 * time.Millisecond
	leaseTTL = 2 * time.Second
)

// calls counts backend calls per volume and instant slot.
type calls struct {
	mu    sync.Mutex
	slots map[string]map[int64][]string
}

func (c *calls) add(volume, node string, at time.Time) {
	slot := (at.UnixNano() - int64(observer.Phase("volume", volume, interval))) / int64(interval)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slots == nil {
		c.slots = map[string]map[int64][]string{}
	}
	if c.slots[volume] == nil {
		c.slots[volume] = map[int64][]string{}
	}
	c.slots[volume][slot] = append(c.slots[volume][slot], node)
}

// doubles returns the slots any volume was polled in more than once.
func (c *calls) doubles() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for v, slots := range c.slots {
		for s, nodes := range slots {
			if len(nodes) > 1 {
				out = append(out, fmt.Sprintf("%s slot %d by %v", v, s, nodes))
			}
		}
	}
	return out
}

type backend struct {
	volume, node string
	calls        *calls
}

func (b backend) PerformanceMetric(ctx context.Context) (volumes.Metric, error) {
	b.calls.add(b.volume, b.node, time.Now())
	return volumes.Metric{IOPSRead: 1, LatencyUsecRead: 100}, nil
}

type node struct {
	name  string
	nc    *nats.Conn
	cache *obscache.Cache
	stop  func()
}

func startNode(t *testing.T, s *natsserver.Server, name string, vols []string, c *calls) *node {
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	obs := streams.ObsConfig{LeaseTTL: leaseTTL, MemoryStorage: true}
	if err := streams.ProvisionObs(t.Context(), js, obs); err != nil {
		t.Fatal(err)
	}
	kv, err := streams.ProvisionLeases(t.Context(), js, obs)
	if err != nil {
		t.Fatal(err)
	}
	log := harness.Logger(t).With().Str("node", name).Logger()
	backends := map[string]pv.Backend{}
	for _, v := range vols {
		backends[v] = backend{volume: v, node: name, calls: c}
	}
	poller, err := pv.New(pv.Config{Node: name, Backends: backends}, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	leases, err := observer.NewLeases(observer.LeaseConfig{Observer: "volume", Node: name, Targets: vols}, kv, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := observer.New(observer.Config{Name: "volume", Node: name, Targets: vols, Interval: interval}, leases, poller, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	cache := obscache.New(harness.RedisClient(t, harness.Redis(t)), "jetmetrics", "volume")
	writer, err := volumecache.New(volumecache.Config{Node: name, Streams: obs, TTL: 30 * time.Second}, js, cache, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{leases.Run, o.Run, writer.Run} {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	n := &node{name: name, nc: nc, cache: cache}
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			nc.Close()
		})
	}
	t.Cleanup(n.stop)
	return n
}

// cachedSince returns an error unless n's cache holds, for every volume, a
// result observed after since by a node other than not.
func (n *node) cachedSince(ctx context.Context, vols []string, since time.Time, not string) error {
	for _, v := range vols {
		o, ok, err := volumecache.Get(ctx, n.cache, v)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("%s has no %s", n.name, v)
		case !o.ObservedAt.After(since):
			return fmt.Errorf("%s has %s from %s, not after %s", n.name, v, o.ObservedAt.Format("15:04:05.000"), since.Format("15:04:05.000"))
		case o.Node == not:
			return fmt.Errorf("%s has %s from %s", n.name, v, not)
		}
	}
	return nil
}

// Three nodes observe nine volumes: every node's cache holds every volume,
// each volume is polled at most once per instant; when a node is cut off,
// the others take its volumes over within two lease TTLs and every cache
// follows, and no instant is polled twice.
func TestThreeNodesObserveOnce(t *testing.T) {
	s := harness.NATS(t)
	var vols []string
	for i := range 9 {
		vols = append(vols, fmt.Sprintf("svm1/vol_%d", i))
	}
	var c calls
	nodes := []*node{startNode(t, s, "n0", vols, &c), startNode(t, s, "n1", vols, &c), startNode(t, s, "n2", vols, &c)}
	start := time.Now()
	harness.Eventually(t, 10*leaseTTL, func() error {
		for _, n := range nodes {
			if err := n.cachedSince(t.Context(), vols, start, ""); err != nil {
				return err
			}
		}
		return nil
	})

	nodes[0].nc.Close() // cut off: it keeps running until its leases lapse
	cut := time.Now()
	harness.Eventually(t, 2*leaseTTL+interval, func() error {
		for _, n := range nodes[1:] {
			if err := n.cachedSince(t.Context(), vols, cut.Add(leaseTTL/2), "n0"); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("every cache fresh from the survivors %s after the cut", time.Since(cut).Round(time.Millisecond))
	nodes[0].stop()
	if d := c.doubles(); len(d) > 0 {
		t.Errorf("polled twice: %v", d)
	}
}
