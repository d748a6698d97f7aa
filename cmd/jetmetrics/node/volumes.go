package node

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
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
	// Demo is set when Vols are --demo's, the machine's disks.
	Demo bool
}

// volumeKeyOf is the key of the volume generation for file.
func (n *Node) volumeKeyOf(file config.File) volumeKey {
	return volumeKey{Vols: n.volumesOf(file), Obs: file.Observers.Volume, Demo: len(file.Volumes) == 0 && n.cfg.Demo}
}

// volumeGen provisions the observation stream and the lease bucket and
// builds a generation of the volume parts for key's volumes: leases,
// observer and cache writer, with the API's state and the gauges. It is
// empty when there are no volumes. The stream and the bucket are made
// through admin, the node's admin connection; the parts use js, the
// node's own.
func (n *Node) volumeGen(ctx context.Context, js, admin jetstream.JetStream, rdb *redis.Client, key volumeKey) (*obsGen, error) {
	g := newGen(key)
	vols := key.Vols
	if len(vols) == 0 {
		g.publish = func() {
			n.volumes.Store(nil)
			n.clusterVolumes.Store(nil)
			n.vols.Store(nil)
		}
		return g, nil
	}
	reg := g.reg
	obs := key.Obs.WithDefaults()
	sc, kv, err := n.provisionObs(ctx, js, admin)
	if err != nil {
		return nil, err
	}

	log := n.log.With().Str("component", "volumes").Logger()
	keyPrefix := n.cfg.RedisKeyPrefix
	if keyPrefix == "" {
		keyPrefix = aggregate.DefaultKeyPrefix
	}
	made, err := makeBackends(vols, nil)
	if err != nil {
		return nil, err
	}
	// backends are the ones in use: an update replaces them, the end of
	// the generation closes them.
	var backends atomic.Pointer[volumeBackends]
	backends.Store(made)
	closeBackends := func() { backends.Load().closeUnused(nil) }
	names := volumeNames(vols)
	poller, err := pv.New(pv.Config{Node: n.cfg.Name, Subjects: sc.Subjects(), Backends: made.polled()}, js, reg)
	if err != nil {
		closeBackends()
		return nil, err
	}
	leases, err := observer.NewLeases(observer.LeaseConfig{Observer: volumeObserver, Node: n.cfg.Name, Targets: names,
		TTL: sc.LeaseBucketConfig().TTL, Provision: n.leaseProvisioner(js, admin)}, kv, log, reg)
	if err != nil {
		closeBackends()
		return nil, err
	}
	ocfg := observer.Config{Name: volumeObserver, Node: n.cfg.Name, Targets: names,
		Interval: obs.ObserveInterval, Timeout: obs.ObserveTimeout, MaxConcurrent: obs.MaxConcurrent}
	o, err := observer.New(ocfg, leases, poller, log, reg)
	if err != nil {
		closeBackends()
		return nil, err
	}
	cache := obscache.New(rdb, keyPrefix, volumeObserver)
	writer, err := volumecache.New(volumecache.Config{Node: n.cfg.Name, Streams: sc, TTL: obs.CacheTTL}, js, cache, log, reg)
	if err != nil {
		closeBackends()
		return nil, err
	}
	// /metrics: the volumes this node leads, so that scraping every node
	// yields each volume once. /metrics/cluster: every volume, from this
	// node's cache, labelled with the node that polled it.
	leads := func(v string) bool { _, ok := leases.Lease(v); return ok }
	local, err := volumecache.NewCollector(cache, names, leads, 0, log)
	if err != nil {
		closeBackends()
		return nil, err
	}
	if err := reg.Register(local); err != nil {
		closeBackends()
		return nil, fmt.Errorf("register volume gauges: %w", err)
	}
	cluster, err := volumecache.NewClusterCollector(cache, names, 0, log)
	if err != nil {
		closeBackends()
		return nil, err
	}
	creg := prometheus.NewRegistry()
	if err := creg.Register(cluster); err != nil {
		closeBackends()
		return nil, fmt.Errorf("register cluster volume gauges: %w", err)
	}
	s := (&volumeService{
		node: n.cfg.Name, obs: obs, cache: cache, js: js, streams: sc, leases: leases,
		base: ctx, log: log, last: map[string]known{},
	}).withVolumes(vols, made.polled())
	g.publish = func() {
		n.vols.Store(&vols)
		n.volumes.Store(s)
		n.clusterVolumes.Store(creg)
	}
	g.discard = closeBackends

	// A reload that changes only the volumes (not the observer's
	// settings, not to or from --demo's) changes them in place: the
	// volumes that stay keep their leases, schedules, backends and
	// counters.
	g.update = func(_ context.Context, key any) (*change, error) {
		next, cur := key.(volumeKey), g.key.(volumeKey)
		if cur.Demo || next.Demo || len(next.Vols) == 0 || !reflect.DeepEqual(next.Obs, cur.Obs) {
			return nil, nil
		}
		// The new and changed volumes' backends (reading their secrets
		// and TLS files): until its first poll a backend holds no
		// connection, and discard closes the clients made for them.
		nextMade, err := makeBackends(next.Vols, backends.Load())
		if err != nil {
			return nil, err
		}
		names := volumeNames(next.Vols)
		tcfg := ocfg
		tcfg.Targets = names
		if err := checkTargets(tcfg); err != nil {
			nextMade.closeUnused(backends.Load())
			return nil, fmt.Errorf("--config.file: volumes: %w", err)
		}
		return &change{
			apply: func(ctx context.Context) error {
				polled := nextMade.polled()
				if err := poller.SetBackends(polled); err != nil {
					nextMade.closeUnused(backends.Load())
					return err
				}
				backends.Swap(nextMade).closeUnused(nextMade)
				// What is polled from now on is what the API shows.
				s = s.withVolumes(next.Vols, polled)
				n.volumes.Store(s)
				n.vols.Store(&next.Vols)
				return errors.Join(leases.SetTargets(ctx, names), o.Update(names), local.SetVolumes(names), cluster.SetVolumes(names))
			},
			discard: func() { nextMade.closeUnused(backends.Load()) },
		}, nil
	}
	g.parts = []Component{
		component{name: "volume-leases", run: func(ctx context.Context) error { return keepLeases(ctx, leases, log) }, ready: func(context.Context) error {
			if leases.TTL() == 0 {
				return errors.New("reading the lease bucket")
			}
			return nil
		}},
		component{name: "volume-observer", run: func(ctx context.Context) error {
			err := o.Run(ctx)
			// The observer has stopped polling: the backends are done.
			closeBackends()
			return err
		}},
		component{name: "volume-cache", run: writer.Run, ready: readyFlag(writer.Ready, "not reading the observation stream yet")},
	}
	return g, nil
}

// volumeNames are the volumes' names, in the configuration's order.
func volumeNames(vols []config.Volume) []string {
	names := make([]string, len(vols))
	for i, v := range vols {
		names[i] = v.Name
	}
	return names
}

// withVolumes is the service of vols with their backends: s's cache,
// leases and connections, and the last results known of the volumes
// that stay. s does not change: a request that loaded it finishes with
// the volumes it had.
func (s *volumeService) withVolumes(vols []config.Volume, backends map[string]pv.Backend) *volumeService {
	next := &volumeService{
		node: s.node, obs: s.obs, vols: vols, byName: make(map[string]int, len(vols)), backends: backends,
		cache: s.cache, js: s.js, streams: s.streams, leases: s.leases, base: s.base, log: s.log, last: map[string]known{},
	}
	for i, v := range vols {
		next.byName[v.Name] = i
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, k := range s.last {
		if _, ok := next.byName[name]; ok {
			next.last[name] = k
		}
	}
	return next
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
