package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/pkg/config"
)

// reloadState is what reloads share: the lock that serialises them, the
// connections new observer generations use, the observers' slots and
// the metrics Prometheus names the same way for its own reloads.
type reloadState struct {
	mu sync.Mutex
	// Set once by components, read under mu.
	js, admin      jetstream.JetStream
	rdb            *redis.Client
	nc             *nats.Conn
	volume, probe  *observerSlot
	success, stamp prometheus.Gauge
}

// reloadTimeout bounds applying a reload (handing each observer's targets
// over: releasing leases, stopping loops).
const reloadTimeout = 30 * time.Second

// ReloadError is why a reload failed. Refused reports that the
// configuration was not accepted (a bad file: fix it and reload again);
// otherwise applying it failed: before anything changed (a secret or TLS
// file that cannot be read, a backend or prober that cannot be made, the
// node still starting), or, with Partial, part way: an observer may run
// the new file's targets while the limits and the rest do not, and the
// next reload applies the file whole.
type ReloadError struct {
	Refused bool
	Partial bool
	Err     error
}

func (e *ReloadError) Error() string { return e.Err.Error() }
func (e *ReloadError) Unwrap() error { return e.Err }

func (n *Node) registerReload() error {
	n.reload.success = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "jetmetrics_config_last_reload_successful",
		Help: "1 if the last configuration reload (SIGHUP, POST /-/reload) succeeded or none was tried, 0 if it was refused or failed.",
	})
	n.reload.stamp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "jetmetrics_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful configuration reload, or of the start.",
	})
	n.reload.success.Set(1)
	n.reload.stamp.SetToCurrentTime()
	for _, c := range []prometheus.Collector{n.reload.success, n.reload.stamp} {
		if err := n.reg.Register(c); err != nil {
			return fmt.Errorf("reload metrics: %w", err)
		}
	}
	return nil
}

// currentFile is the configuration file in force.
func (n *Node) currentFile() config.File { return *n.file.Load() }

// volumeList is the volumes observed now.
func (n *Node) volumeList() []config.Volume {
	if p := n.vols.Load(); p != nil {
		return *p
	}
	return nil
}

// volumesOf are the volumes a node with file observes: the file's, or
// with --demo and none there, the machine's disks.
func (n *Node) volumesOf(file config.File) []config.Volume {
	if len(file.Volumes) == 0 && n.cfg.Demo {
		return n.demoVols
	}
	return file.Volumes
}

// observerSlots builds the first generation of each observer from the
// file and returns the components that run them.
func (n *Node) observerSlots(ctx context.Context, js, admin jetstream.JetStream, rdb *redis.Client, nc *nats.Conn) ([]Component, error) {
	n.reload.mu.Lock()
	defer n.reload.mu.Unlock()
	n.reload.js, n.reload.admin, n.reload.rdb, n.reload.nc = js, admin, rdb, nc
	file := n.currentFile()
	vg, err := n.volumeGen(ctx, js, admin, rdb, n.volumeKeyOf(file))
	if err != nil {
		return nil, err
	}
	pg, err := n.probeGen(ctx, js, admin, rdb, nc, file)
	if err != nil {
		return nil, err
	}
	n.reload.volume, n.reload.probe = newObserverSlot("volumes", vg), newObserverSlot("probes", pg)
	return []Component{n.reload.volume, n.reload.probe}, nil
}

// observerGatherer gathers the metrics of the observers' running
// generations, for /metrics.
func (n *Node) observerGatherer() prometheus.Gatherer {
	return gathererFunc(func() ([]*dto.MetricFamily, error) {
		var out []*dto.MetricFamily
		for _, s := range []*observerSlot{n.reload.volumeSlot(), n.reload.probeSlot()} {
			if s == nil {
				continue
			}
			mfs, err := s.gather()
			if err != nil {
				return nil, err
			}
			out = append(out, mfs...)
		}
		return out, nil
	})
}

func (r *reloadState) volumeSlot() *observerSlot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.volume
}

func (r *reloadState) probeSlot() *observerSlot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.probe
}

// Reload rereads the configuration (Config.Reload), validates it whole
// and applies it: volumes and probes (changed in place when only the
// list changed; an observer whose settings changed, or that switches to
// or from --demo's targets, restarts, alone) and the aggregator's limits
// (changed in place). A configuration that is not valid is refused and
// nothing changes. Everything that can fail is prepared before anything
// is applied, so a failure changes nothing; what can still fail while
// applying (an observer's parts not handing over within reloadTimeout)
// leaves the limits and the file in force as they were and marks what it
// touched for the next reload, which applies the file whole. Reloads are
// serialised. The outcome is logged and kept in
// jetmetrics_config_last_reload_successful.
func (n *Node) Reload(ctx context.Context) error {
	n.reload.mu.Lock()
	defer n.reload.mu.Unlock()
	// Once begun, a reload is not cut short by its caller going away (a
	// client of POST /-/reload that disconnects): half applied, it would
	// be reported failed while it had changed things.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reloadTimeout)
	defer cancel()
	err := n.applyReload(ctx)
	if err != nil {
		n.reload.success.Set(0)
		n.log.Error().Err(err).Msg(reloadOutcome(err))
		return err
	}
	n.reload.success.Set(1)
	n.reload.stamp.SetToCurrentTime()
	return nil
}

func (n *Node) applyReload(ctx context.Context) error {
	agg := n.agg.Load()
	if !n.running.Load() || n.reload.volume == nil || agg == nil {
		return &ReloadError{Err: errors.New("the node is still starting: reload once it runs (/-/ready)")}
	}
	if n.cfg.Reload == nil {
		n.log.Info().Msg("configuration reload: no --config.file, nothing to reread")
		return nil
	}
	next, err := n.cfg.Reload()
	if err == nil {
		err = next.Validate()
	}
	if err != nil {
		return &ReloadError{Refused: true, Err: err}
	}
	next = next.withDefaults()
	file := next.File

	steps, err := n.prepareReload(file)
	if err != nil {
		return &ReloadError{Err: err}
	}
	for i, st := range steps {
		if err := st.apply(ctx); err != nil {
			for _, rest := range steps[i+1:] {
				rest.discard()
			}
			before := "nothing was changed before it"
			if i > 0 {
				var done []string
				for _, d := range steps[:i] {
					done = append(done, d.what)
				}
				before = strings.Join(done, " and ") + " changed before it"
			}
			return &ReloadError{Partial: true, Err: fmt.Errorf("apply %w (%s; the limits and the rest of the file are not in force)", err, before)}
		}
	}
	// Last, as they cannot fail: the limits, and the file the node now
	// runs (the observation stream's settings are read from it).
	agg.SetLimits(aggregator.Limits{Series: next.Limits, MaxSeries: next.MaxSeries, MaxSeriesPerMetric: next.MaxSeriesPerMetric,
		MaxProducers: next.MaxProducers, MaxMessageBytes: next.MaxBatchBytes})
	n.file.Store(&file)
	restarted := 0
	for _, st := range steps {
		if st.gen != nil {
			restarted++
		}
	}
	n.log.Info().Int("volumes", len(n.volumeKeyOf(file).Vols)).Int("probes", len(file.Probes)).Int("observers_restarted", restarted).
		Int("observers_updated", len(steps)-restarted).
		Int("max_series", agg.Limits().MaxSeries).Msg("configuration reloaded")
	return nil
}

// reloadStep is one observer's part of a reload, prepared: a change of
// its running generation in place, or a new generation to swap in.
type reloadStep struct {
	what string
	slot *observerSlot
	key  any
	// Exactly one of gen and ch is set.
	gen *obsGen
	ch  *change
}

// prepareReload prepares the observers' steps for file: everything that
// can fail (secrets and TLS files read, backends and probers made, new
// generations built) is done here, and nothing the node runs changes.
// An observer whose running generation has file's key, and is not stale,
// has no step. New generations come first: handing one over is what can
// still fail while applying.
func (n *Node) prepareReload(file config.File) ([]reloadStep, error) {
	r := &n.reload
	vk, pk := n.volumeKeyOf(file), probeKey{file.Probes, file.Observers.Probe}
	var gens, changes []reloadStep
	for _, o := range []struct {
		what  string
		slot  *observerSlot
		key   any
		build func() (*obsGen, error)
	}{
		{"volumes", r.volume, vk, func() (*obsGen, error) { return n.volumeGen(n.runCtx(), r.js, r.admin, r.rdb, vk) }},
		{"probes", r.probe, pk, func() (*obsGen, error) { return n.probeGen(n.runCtx(), r.js, r.admin, r.rdb, r.nc, file) }},
	} {
		cur := o.slot.cur.Load()
		if !cur.stale && reflect.DeepEqual(o.key, cur.key) {
			continue
		}
		st := reloadStep{what: o.what, slot: o.slot, key: o.key}
		var err error
		if cur.update != nil {
			st.ch, err = cur.update(n.runCtx(), o.key)
		}
		if err == nil && st.ch == nil {
			st.gen, err = o.build()
		}
		if err != nil {
			for _, prepared := range append(gens, changes...) {
				prepared.discard()
			}
			return nil, fmt.Errorf("%s: %w", o.what, err)
		}
		if st.gen != nil {
			gens = append(gens, st)
		} else {
			changes = append(changes, st)
		}
	}
	return append(gens, changes...), nil
}

// apply applies the step; an error names the observer. A change in
// place records its key in the running generation once applied whole,
// and marks it stale when it fails part way, so that the next reload
// applies its file again.
func (st reloadStep) apply(ctx context.Context) error {
	if st.gen != nil {
		return st.slot.Swap(ctx, st.gen)
	}
	cur := st.slot.cur.Load()
	if err := st.ch.apply(ctx); err != nil {
		cur.stale = true
		return fmt.Errorf("%s: %w", st.what, err)
	}
	cur.key, cur.stale = st.key, false
	return nil
}

// discard frees what preparing the step made, for a step never applied.
func (st reloadStep) discard() {
	if st.gen != nil {
		st.gen.drop()
		return
	}
	st.ch.discard()
}

// reloadOutcome is the log line, and the start of POST /-/reload's
// answer, for a reload that failed with err.
func reloadOutcome(err error) string {
	var re *ReloadError
	switch {
	case errors.As(err, &re) && re.Refused:
		return "configuration reload refused: the running configuration stays"
	case errors.As(err, &re) && re.Partial:
		return "configuration reload failed part way: the next reload applies the file whole"
	default:
		return "configuration reload failed: the running configuration stays"
	}
}

// runCtx is the context the components run in: a new observer
// generation's live calls and provisioning are bounded by it.
func (n *Node) runCtx() context.Context {
	if r := n.runner.Load(); r != nil {
		return r.ctx
	}
	return context.Background()
}

// serveReload serves POST /-/reload (with --web.enable-lifecycle): 200
// when the configuration was reloaded, 400 when it was refused, 500 when
// applying it failed, each with a line of text saying so.
func (n *Node) serveReload(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !n.cfg.WebEnableLifecycle {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintln(w, "lifecycle APIs are not enabled: start the node with --web.enable-lifecycle, or send it SIGHUP")
		return
	}
	err := n.Reload(r.Context())
	var re *ReloadError
	switch {
	case err == nil:
		fmt.Fprintln(w, "configuration reloaded")
		return
	case errors.As(err, &re) && re.Refused:
		w.WriteHeader(http.StatusBadRequest)
	default:
		w.WriteHeader(http.StatusInternalServerError)
	}
	fmt.Fprintf(w, "%s: %v\n", reloadOutcome(err), err)
}
