package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	cl "github.com/jetmetrics/jetmetrics/consumers/latency"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/latency"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	pp "github.com/jetmetrics/jetmetrics/producers/probes"
)

// probeObserver is the probe observer's name: the first token of its
// lease keys and the seed of its services' phases.
const probeObserver = "probe"

// serviceState is what the node knows of its probed services: their
// names, the latency states in Redis and the leases. The API reads it.
type serviceState struct {
	names  []string
	byName map[string]bool
	store  *cl.Store
	leases *observer.Leases
}

// leaders are the nodes leading each service as this node last saw the
// leases; a vacant lease is missing.
func (s *serviceState) leaders() map[string]string {
	out := map[string]string{}
	for _, l := range s.leases.Leaders() {
		out[l.Target] = l.Node
	}
	return out
}

// probing reports whether the node probes services: the configuration
// file has probes, or --demo probes its own.
func (n *Node) probing() bool { return len(n.currentFile().Probes) > 0 || n.cfg.Demo }

// probeKey is what a probe generation is built from.
type probeKey struct {
	Probes []config.Probe
	Obs    config.Observer
}

// probeGen builds a generation of the probe parts for file's probes (or
// --demo's when it has none): leases, observer (probing the services
// this node leads, publishing each result and recording it through the
// delta pipeline) and the latency state writer, with the API's state and
// the gauges. It is empty when the node probes nothing.
func (n *Node) probeGen(ctx context.Context, js, admin jetstream.JetStream, rdb *redis.Client, nc *nats.Conn, file config.File) (*obsGen, error) {
	g := newGen(probeKey{file.Probes, file.Observers.Probe})
	if len(file.Probes) == 0 && !n.cfg.Demo {
		g.publish = func() {
			n.services.Store(nil)
			n.clusterServices.Store(nil)
		}
		return g, nil
	}
	reg := g.reg
	obs := file.Observers.Probe.WithDefaults()
	sc, kv, err := n.provisionObs(ctx, js, admin)
	if err != nil {
		return nil, err
	}
	log := n.log.With().Str("component", "probes").Logger()

	var (
		probers  map[string]pp.Prober
		timeouts map[string]time.Duration
		closers  []func()
		sets     *probeSets
	)
	if len(file.Probes) > 0 {
		set, err := pp.FromConfig(file.Probes, nc)
		if err != nil {
			return nil, fmt.Errorf("--config.file: %w", err)
		}
		probers, timeouts = set.Probers, set.Timeouts
		sets = newProbeSets(file.Probes, set)
		closers = append(closers, sets.close)
	} else {
		d, err := pp.NewDemo(pp.DemoConfig{WebURL: loopbackURL(n.WebAddr()), Conn: nc})
		if err != nil {
			return nil, fmt.Errorf("--demo: %w", err)
		}
		probers = d.Probers
		closers = append(closers, func() {
			if err := d.Close(); err != nil {
				log.Warn().Err(err).Msg("demo probes")
			}
		})
	}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}

	// Each probe is also a sample of the SDK's per-service latency handle,
	// published to this node's own aggregate: the histogram and the checks
	// counter, exactly once like every delta.
	sdk, err := producers.New(producers.Config{Node: n.cfg.Name, Name: "probes", Prefix: n.cfg.Streams.Prefix,
		// The producer names the node itself.
		Logger: n.cfg.Logger.With().Str("component", "probes").Logger()}, nc)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("probe producer: %w", err)
	}
	recorded := make(map[string]pp.Prober, len(probers))
	handles := make(map[string]*producers.ServiceLatency, len(probers))
	for name, pr := range probers {
		h, err := sdk.Latency(name)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("probe producer: service %q: %w", name, err)
		}
		recorded[name], handles[name] = recordingProber{pr, h}, h
	}

	poller, err := pp.New(pp.Config{Node: n.cfg.Name, Subjects: sc.Subjects(), Probers: recorded, Timeouts: timeouts}, js, reg)
	if err != nil {
		closeAll()
		return nil, err
	}
	names := poller.Targets()
	leases, err := observer.NewLeases(observer.LeaseConfig{Observer: probeObserver, Node: n.cfg.Name, Targets: names,
		TTL: sc.LeaseBucketConfig().TTL, Provision: n.leaseProvisioner(js, admin)}, kv, log, reg)
	if err != nil {
		closeAll()
		return nil, err
	}
	ocfg := observer.Config{Name: probeObserver, Node: n.cfg.Name, Targets: names,
		Interval: obs.ObserveInterval, Timeout: obs.ObserveTimeout, MaxConcurrent: obs.MaxConcurrent}
	o, err := observer.New(ocfg, leases, poller, log, reg)
	if err != nil {
		closeAll()
		return nil, err
	}
	keyPrefix := n.cfg.RedisKeyPrefix
	if keyPrefix == "" {
		keyPrefix = aggregate.DefaultKeyPrefix
	}
	store := cl.NewStore(rdb, keyPrefix)
	resets, err := latency.NewResets(reg, log)
	if err != nil {
		closeAll()
		return nil, err
	}
	writer, err := cl.New(cl.Config{Node: n.cfg.Name, Streams: sc, Services: names}, js, store, resets, log, reg)
	if err != nil {
		closeAll()
		return nil, err
	}
	s := &serviceState{names: names, byName: map[string]bool{}, store: store, leases: leases}
	for _, name := range names {
		s.byName[name] = true
	}
	// /metrics: the services this node leads, so that scraping every node
	// yields each service once. /metrics/cluster: every service, from this
	// node's store, labelled with the node whose probe was folded last.
	leads := func(v string) bool { _, ok := leases.Lease(v); return ok }
	local, err := cl.NewCollector(store, names, leads, 0, log)
	if err != nil {
		closeAll()
		return nil, err
	}
	if err := reg.Register(local); err != nil {
		closeAll()
		return nil, fmt.Errorf("register service latency gauges: %w", err)
	}
	cluster, err := cl.NewClusterCollector(store, names, 0, log)
	if err != nil {
		closeAll()
		return nil, err
	}
	creg := prometheus.NewRegistry()
	if err := creg.Register(cluster); err != nil {
		closeAll()
		return nil, fmt.Errorf("register cluster service latency gauges: %w", err)
	}
	g.publish = func() {
		n.services.Store(s)
		n.clusterServices.Store(creg)
	}
	g.discard = func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if cerr := sdk.Close(cctx); cerr != nil {
			log.Warn().Err(cerr).Msg("probe producer: close")
		}
		closeAll()
	}

	if sets != nil {
		// A reload that changes only the probes (not the observer's
		// settings, not to or from --demo's) changes them in place.
		g.update = func(_ context.Context, key any) (*change, error) {
			next := key.(probeKey)
			if len(next.Probes) == 0 || !reflect.DeepEqual(next.Obs, g.key.(probeKey).Obs) {
				return nil, nil
			}
			changed := sets.changed(next.Probes)
			set, err := pp.FromConfig(changed, nc)
			if err != nil {
				return nil, fmt.Errorf("--config.file: %w", err)
			}
			targets := make([]string, len(next.Probes))
			for i, p := range next.Probes {
				targets[i] = p.Name
			}
			tcfg := ocfg
			tcfg.Targets = targets
			if err := checkTargets(tcfg); err != nil {
				set.Close()
				return nil, fmt.Errorf("--config.file: probes: %w", err)
			}
			return &change{
				apply: func(ctx context.Context) error {
					// The added services' latency handles are made here,
					// not in preparing: the SDK announces a handle's
					// series (at 0) from its next flush, which a change
					// never applied must not show. Config.Validate bounds
					// the names as the SDK does.
					for _, p := range changed {
						if handles[p.Name] != nil {
							continue
						}
						h, err := sdk.Latency(p.Name)
						if err != nil {
							set.Close()
							return fmt.Errorf("probe producer: service %q: %w", p.Name, err)
						}
						handles[p.Name] = h
					}
					nextRecorded := make(map[string]pp.Prober, len(next.Probes))
					nextTimeouts := map[string]time.Duration{}
					for _, p := range next.Probes {
						nextRecorded[p.Name] = recorded[p.Name]
						if pr, ok := set.Probers[p.Name]; ok {
							nextRecorded[p.Name] = recordingProber{pr, handles[p.Name]}
						}
						if p.Timeout > 0 {
							nextTimeouts[p.Name] = p.Timeout
						}
					}
					if err := poller.SetProbers(nextRecorded, nextTimeouts); err != nil {
						set.Close()
						return err
					}
					recorded = nextRecorded
					// The replaced probers' connections close once no probe
					// uses their set any more.
					sets.replace(next.Probes, set)
					names := poller.Targets()
					state := &serviceState{names: names, byName: map[string]bool{}, store: store, leases: leases}
					for _, name := range names {
						state.byName[name] = true
					}
					n.services.Store(state)
					return errors.Join(leases.SetTargets(ctx, names), o.Update(names),
						local.SetServices(names), cluster.SetServices(names))
				},
				discard: set.Close,
			}, nil
		}
	}

	runLeases := func(ctx context.Context) error { return keepLeases(ctx, leases, log) }
	g.parts = []Component{
		component{name: "probe-leases", run: runLeases, ready: func(context.Context) error {
			if leases.TTL() == 0 {
				return errors.New("reading the lease bucket")
			}
			return nil
		}},
		component{name: "probe-observer", run: func(ctx context.Context) error {
			err := o.Run(ctx)
			// The observer has stopped probing: flush what it recorded.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if cerr := sdk.Close(cctx); cerr != nil {
				log.Warn().Err(cerr).Msg("probe producer: final flush")
			}
			closeAll()
			return err
		}},
		component{name: "latency-state", run: writer.Run, ready: readyFlag(writer.Ready, "not reading the observation stream yet")},
	}
	return g, nil
}

// recordingProber records each probe through the SDK's latency handle.
type recordingProber struct {
	pr pp.Prober
	h  *producers.ServiceLatency
}

func (r recordingProber) Probe(ctx context.Context) (time.Duration, error) {
	d, err := r.pr.Probe(ctx)
	if err != nil {
		r.h.Fail(err)
	} else {
		r.h.Observe(max(d, 0))
	}
	return d, err
}

// loopbackURL is the base URL of an HTTP server listening on addr, with a
// wildcard host (every interface) replaced by the loopback address.
func loopbackURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// probeSets tracks which probe Set each configured probe's prober comes
// from, so that a reload changing some probes closes a Set (its nats
// probes' own connections) once none of its probers is in use.
type probeSets struct {
	mu   sync.Mutex
	cur  map[string]config.Probe
	from map[string]*pp.Set
	refs map[*pp.Set]int
}

func newProbeSets(list []config.Probe, set *pp.Set) *probeSets {
	s := &probeSets{cur: map[string]config.Probe{}, from: map[string]*pp.Set{}, refs: map[*pp.Set]int{}}
	s.replace(list, set)
	return s
}

// changed are the probes of list that are new or defined otherwise than
// now.
func (s *probeSets) changed(list []config.Probe) []config.Probe {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []config.Probe
	for _, p := range list {
		if old, ok := s.cur[p.Name]; !ok || !reflect.DeepEqual(old, p) {
			out = append(out, p)
		}
	}
	return out
}

// replace makes list the probes in use, those of set's probers taken
// from set, and closes the sets no probe uses any more.
func (s *probeSets) replace(list []config.Probe, set *pp.Set) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[string]config.Probe{}
	for _, p := range list {
		keep[p.Name] = p
	}
	release := func(name string) {
		old := s.from[name]
		delete(s.from, name)
		if s.refs[old]--; s.refs[old] <= 0 {
			delete(s.refs, old)
			old.Close()
		}
	}
	for name := range s.from {
		if _, ok := keep[name]; !ok {
			release(name)
		}
	}
	for name := range set.Probers {
		if _, ok := s.from[name]; ok {
			release(name)
		}
		s.from[name] = set
		s.refs[set]++
	}
	if s.refs[set] == 0 {
		set.Close()
	}
	s.cur = keep
}

// close closes every set in use.
func (s *probeSets) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for set := range s.refs {
		set.Close()
	}
	s.refs, s.from = map[*pp.Set]int{}, map[string]*pp.Set{}
}
