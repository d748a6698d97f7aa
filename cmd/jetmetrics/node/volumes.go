package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/jetmetrics/jetmetrics/consumers/volumecache"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/backoff"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/obscache"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	pv "github.com/jetmetrics/jetmetrics/producers/volumes"
	"github.com/jetmetrics/jetmetrics/streams"
)

// volumeObserver is the observer's name: the first token of its lease
// keys and the seed of its targets' phases.
const volumeObserver = "volume"

// minLeaseTTL is the shortest lease TTL the node asks for: renewals every
// third of it must get through a busy machine.
const minLeaseTTL = 2 * time.Second

// leaseTTL is the lease bucket's TTL for an observe interval: three
// intervals (30 s at the default 10 s), at least minLeaseTTL. A dead
// leader's volumes are taken over within two of it.
func leaseTTL(interval time.Duration) time.Duration { return max(3*interval, minLeaseTTL) }

// volumeService is what the node knows of its volumes: their backends,
// the cache, the leases, and the last result it served of each. The API
// reads it; the components keep it current.
type volumeService struct {
	node     string
	obs      config.Observer
	vols     []config.Volume
	byName   map[string]int
	backends map[string]pv.Backend
	cache    *obscache.Cache
	js       jetstream.JetStream
	streams  streams.ObsConfig
	leases   *observer.Leases
	// base bounds the live calls, which outlive the request that started
	// them: the node's run context.
	base   context.Context
	flight singleflight.Group
	log    zerolog.Logger

	mu   sync.Mutex
	last map[string]known
}

// volumeKey is what a volume generation is built from.
type volumeKey struct {
	Vols []config.Volume
	Obs  config.Observer
}

// volumeGen provisions the observation stream and the lease bucket and
// builds a generation of the volume parts for vols: leases, observer and
// cache writer, with the API's state and the gauges. It is empty when vols
// is. The stream and the bucket are made through admin, the node's admin
// connection; the parts use js, the node's own.
func (n *Node) volumeGen(ctx context.Context, js, admin jetstream.JetStream, rdb *redis.Client, vols []config.Volume, obsCfg config.Observer) (*obsGen, error) {
	g := newGen(volumeKey{vols, obsCfg})
	if len(vols) == 0 {
		g.publish = func() {
			n.volumes.Store(nil)
			n.clusterVolumes.Store(nil)
			n.vols.Store(nil)
		}
		return g, nil
	}
	reg := g.reg
	obs := obsCfg.WithDefaults()
	sc, kv, err := n.provisionObs(ctx, js, admin)
	if err != nil {
		return nil, err
	}

	log := n.log.With().Str("component", "volumes").Logger()
	keyPrefix := n.cfg.RedisKeyPrefix
	if keyPrefix == "" {
		keyPrefix = aggregate.DefaultKeyPrefix
	}
	s := &volumeService{
		node: n.cfg.Name, obs: obs, vols: vols, byName: map[string]int{}, backends: map[string]pv.Backend{},
		cache: obscache.New(rdb, keyPrefix, volumeObserver), js: js, streams: sc,
		base: ctx, log: log, last: map[string]known{},
	}
	names := make([]string, len(vols))
	for i, v := range vols {
		b, err := backendMakers[v.Backend](v)
		if err != nil {
			return nil, fmt.Errorf("--config.file: volumes[%d] (%q): %w", i, v.Name, err)
		}
		s.backends[v.Name], s.byName[v.Name], names[i] = b, i, v.Name
	}
	poller, err := pv.New(pv.Config{Node: n.cfg.Name, Subjects: sc.Subjects(), Backends: s.backends}, js, reg)
	if err != nil {
		return nil, err
	}
	s.leases, err = observer.NewLeases(observer.LeaseConfig{Observer: volumeObserver, Node: n.cfg.Name, Targets: names,
		Provision: n.leaseProvisioner(js, admin)}, kv, log, reg)
	if err != nil {
		return nil, err
	}
	o, err := observer.New(observer.Config{Name: volumeObserver, Node: n.cfg.Name, Targets: names,
		Interval: obs.ObserveInterval, Timeout: obs.ObserveTimeout, MaxConcurrent: obs.MaxConcurrent}, s.leases, poller, log, reg)
	if err != nil {
		return nil, err
	}
	writer, err := volumecache.New(volumecache.Config{Node: n.cfg.Name, Streams: sc, TTL: obs.CacheTTL}, js, s.cache, log, reg)
	if err != nil {
		return nil, err
	}
	// /metrics: the volumes this node leads, so that scraping every node
	// yields each volume once. /metrics/cluster: every volume, from this
	// node's cache, labelled with the node that polled it.
	leads := func(v string) bool { _, ok := s.leases.Lease(v); return ok }
	local, err := volumecache.NewCollector(s.cache, names, leads, 0, log)
	if err != nil {
		return nil, err
	}
	if err := reg.Register(local); err != nil {
		return nil, fmt.Errorf("register volume gauges: %w", err)
	}
	cluster, err := volumecache.NewClusterCollector(s.cache, names, 0, log)
	if err != nil {
		return nil, err
	}
	creg := prometheus.NewRegistry()
	if err := creg.Register(cluster); err != nil {
		return nil, fmt.Errorf("register cluster volume gauges: %w", err)
	}
	g.publish = func() {
		n.vols.Store(&vols)
		n.volumes.Store(s)
		n.clusterVolumes.Store(creg)
	}
	g.parts = []Component{
		component{name: "volume-leases", run: s.runLeases, ready: func(context.Context) error {
			if s.leases.TTL() == 0 {
				return errors.New("reading the lease bucket")
			}
			return nil
		}},
		component{name: "volume-observer", run: o.Run},
		component{name: "volume-cache", run: writer.Run, ready: readyFlag(writer.Ready, "not reading the observation stream yet")},
	}
	return g, nil
}

// obsConfig is the observation stream's and the lease bucket's
// configuration, shared by the volume and probe observers: the deeper
// history of the two, and a lease TTL from the shorter interval of those
// configured.
func (n *Node) obsConfig() streams.ObsConfig {
	file := n.currentFile()
	vol, probe := file.Observers.Volume.WithDefaults(), file.Observers.Probe.WithDefaults()
	depth, interval := vol.HistoryDepth, vol.ObserveInterval
	if n.probing() {
		depth = max(depth, probe.HistoryDepth)
		if len(n.volumeList()) == 0 {
			depth, interval = probe.HistoryDepth, probe.ObserveInterval
		}
		interval = min(interval, probe.ObserveInterval)
	}
	return streams.ObsConfig{
		Prefix:        n.cfg.Streams.Prefix,
		Replicas:      n.cfg.Streams.Replicas,
		HistoryDepth:  depth,
		LeaseTTL:      leaseTTL(interval),
		MemoryStorage: n.cfg.Streams.MemoryStorage,
	}
}

// provisionObs provisions the observation stream and the lease bucket
// once, whichever observer asks first, and returns them.
// The stream and the bucket are made through admin, the node's admin
// connection; the observers use js, the node's own.
func (n *Node) provisionObs(ctx context.Context, js, admin jetstream.JetStream) (streams.ObsConfig, jetstream.KeyValue, error) {
	n.obsMu.Lock()
	defer n.obsMu.Unlock()
	sc := n.obsConfig()
	if n.obsKV != nil {
		return sc, n.obsKV, nil
	}
	var kv jetstream.KeyValue
	err := n.retry(ctx, "provision the observation stream and the lease bucket", func(ctx context.Context) error {
		err := streams.ProvisionObs(ctx, admin, sc)
		if err == nil {
			_, err = streams.ProvisionLeases(ctx, admin, sc)
		}
		if err != nil && !errors.Is(admin.Conn().LastError(), nats.ErrPermissionViolation) {
			return err
		}
		// Made now, or (a --nats.url credential that may not make them)
		// made by an admin before: open them as the node.
		if _, serr := js.Stream(ctx, sc.ObsStream()); serr != nil {
			return errors.Join(err, serr)
		}
		kv, err = js.KeyValue(ctx, sc.LeaseBucket())
		return err
	})
	if err != nil {
		return sc, nil, err
	}
	n.obsKV = kv
	return sc, kv, nil
}

// leaseProvisioner makes the lease bucket again for observers that find
// it gone (deleted by an operator, lost with its stream), as the node
// made it at the start, and opens it as the node.
func (n *Node) leaseProvisioner(js, admin jetstream.JetStream) func(context.Context) (jetstream.KeyValue, error) {
	return func(ctx context.Context) (jetstream.KeyValue, error) {
		n.obsMu.Lock()
		defer n.obsMu.Unlock()
		sc := n.obsConfig()
		if _, err := streams.ProvisionLeases(ctx, admin, sc); err != nil && !errors.Is(admin.Conn().LastError(), nats.ErrPermissionViolation) {
			return nil, err
		}
		kv, err := js.KeyValue(ctx, sc.LeaseBucket())
		if err != nil {
			return nil, err
		}
		n.obsKV = kv
		return kv, nil
	}
}

// runLeases keeps the volume leases.
func (s *volumeService) runLeases(ctx context.Context) error { return keepLeases(ctx, s.leases, s.log) }

// keepLeases keeps an observer's leases, starting again while the bucket
// cannot be read (NATS not reachable yet): targets not observed for a
// while are no reason to stop the node.
func keepLeases(ctx context.Context, leases *observer.Leases, log zerolog.Logger) error {
	retry := backoff.Backoff{Max: 5 * time.Second}
	for {
		err := leases.Run(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		wait := retry.Next()
		log.Warn().Err(err).Dur("backoff", wait).Msg("leases: retrying")
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

// retry runs fn with short attempts until it succeeds or ctx ends: a
// cluster still electing leaders drops requests unanswered.
func (n *Node) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	retry := backoff.Backoff{Max: time.Second}
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		wait := retry.Next()
		n.log.Warn().Err(err).Dur("backoff", wait).Msg(what + ": retrying")
		if !backoff.Sleep(ctx, wait) {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

// gathererFunc adapts a function to prometheus.Gatherer.
type gathererFunc func() ([]*dto.MetricFamily, error)

func (f gathererFunc) Gather() ([]*dto.MetricFamily, error) { return f() }

// clusterVolumeGatherer gathers the observers' gauges of /metrics/cluster
// (volumes and services) once their components exist, nothing before.
func (n *Node) clusterVolumeGatherer() prometheus.Gatherer {
	return gathererFunc(func() ([]*dto.MetricFamily, error) {
		var gs prometheus.Gatherers
		if g := n.clusterVolumes.Load(); g != nil {
			gs = append(gs, g)
		}
		if g := n.clusterServices.Load(); g != nil {
			gs = append(gs, g)
		}
		return gs.Gather()
	})
}
