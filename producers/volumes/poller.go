package volumes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/pkg/volumes"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Backend reports one volume's performance. The backends in
// pkg/volumes/... satisfy it.
type Backend interface {
	PerformanceMetric(ctx context.Context) (volumes.Metric, error)
}

// Config configures a Poller.
type Config struct {
	// Node is this node's name, written into each result.
	Node string
	// Subjects builds the result subjects (zero value: the default
	// prefix).
	Subjects streams.Subjects
	// Backends are the volumes by name.
	Backends map[string]Backend
	// PublishTimeout bounds publishing one result, which happens after the
	// poll's own deadline when the backend timed out (default 2 s).
	PublishTimeout time.Duration
}

// Poller polls volumes and publishes their results.
type Poller struct {
	cfg      Config // Backends as New was given them
	js       jetstream.JetStream
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// set is the volumes polled now: SetBackends swaps it whole.
	set atomic.Pointer[volumeSet]
}

// volumeSet is the volumes a poller polls, with their result subjects.
type volumeSet struct {
	backends map[string]Backend
	results  *observer.Results
}

var _ observer.Poller = (*Poller)(nil)

// Buckets of jetmetrics_volume_stats_observe_duration_seconds, the
// Backend.AI proposal's.
var durationBuckets = []float64{0.1, 0.5, 1, 2, 5, 10, 30}

// New returns a poller publishing through js. It registers
// jetmetrics_volume_stats_observe_total{volume,status} and
// jetmetrics_volume_stats_observe_duration_seconds{volume} with reg (nil:
// none); they count this node's polls, so summed over the nodes they count
// each poll once.
func New(cfg Config, js jetstream.JetStream, reg prometheus.Registerer) (*Poller, error) {
	if err := streams.CheckToken("node", cfg.Node); err != nil {
		return nil, fmt.Errorf("new volume poller: %w", err)
	}
	p := &Poller{
		cfg: cfg,
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmetrics_volume_stats_observe_total",
			Help: "Volume performance polls this node made, by volume and outcome (success or failure).",
		}, []string{"volume", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jetmetrics_volume_stats_observe_duration_seconds",
			Help:    "Time a volume's backend took to answer a poll from this node.",
			Buckets: durationBuckets,
		}, []string{"volume"}),
	}
	p.js = js
	set, err := p.newSet(cfg.Backends)
	if err != nil {
		return nil, fmt.Errorf("new volume poller: %w", err)
	}
	p.set.Store(set)
	if reg != nil {
		for _, c := range []prometheus.Collector{p.total, p.duration} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register volume poll metrics: %w", err)
			}
		}
	}
	return p, nil
}

func (p *Poller) newSet(backends map[string]Backend) (*volumeSet, error) {
	names := make([]string, 0, len(backends))
	for name, b := range backends {
		if b == nil {
			return nil, fmt.Errorf("volume %q has no backend", name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	results, err := observer.NewResults(p.js, p.cfg.Subjects, streams.ObsKindVolume, names, p.cfg.PublishTimeout)
	if err != nil {
		return nil, fmt.Errorf("volume %w", err)
	}
	return &volumeSet{backends: maps.Clone(backends), results: results}, nil
}

// SetBackends replaces the volumes polled, for a configuration reload:
// each poll that starts afterwards uses the new backend of its volume (a
// poll in flight finishes with the one it began with). The counters of
// the volumes that stay go on counting; a removed volume's series are
// deleted. An invalid set changes nothing.
func (p *Poller) SetBackends(backends map[string]Backend) error {
	set, err := p.newSet(backends)
	if err != nil {
		return fmt.Errorf("set volume backends: %w", err)
	}
	old := p.set.Swap(set)
	// A removed volume's series leave /metrics with it.
	for name := range old.backends {
		if _, kept := set.backends[name]; !kept {
			p.total.DeletePartialMatch(prometheus.Labels{"volume": name})
			p.duration.DeleteLabelValues(name)
		}
	}
	return nil
}

// Targets are the volumes' names, sorted, for the observer's and the
// leases' configurations.
func (p *Poller) Targets() []string {
	set := p.set.Load()
	out := make([]string, 0, len(set.backends))
	for name := range set.backends {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Poll asks the volume's backend and publishes the result. It returns
// the backend's error (so the observer records it) after publishing it,
// or the publish error.
func (p *Poller) Poll(ctx context.Context, poll observer.Poll) error {
	set := p.set.Load()
	b, ok := set.backends[poll.Target]
	if !ok {
		return fmt.Errorf("volume %q is not configured", poll.Target)
	}
	start := time.Now()
	m, err := b.PerformanceMetric(ctx)
	took := time.Since(start)
	o := streams.Observation{
		Volume:        poll.Target,
		ObservedAt:    poll.Scheduled,
		Duration:      took,
		Status:        streams.ObsStatusOK,
		Node:          p.cfg.Node,
		LeaseRevision: poll.Lease.Revision,
	}
	switch {
	case err == nil:
		o.Metric = streams.VolumeMetric{
			IOPSRead: m.IOPSRead, IOPSWrite: m.IOPSWrite,
			ThroughputBytesRead: m.BytesReadPerSec, ThroughputBytesWrite: m.BytesWritePerSec,
			LatencyUsecRead: m.LatencyUsecRead, LatencyUsecWrite: m.LatencyUsecWrite,
		}
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		o.Status, o.Error = streams.ObsStatusTimeout, err.Error()
	default:
		o.Status, o.Error = streams.ObsStatusError, err.Error()
	}
	status := "success"
	if o.Status != streams.ObsStatusOK {
		status = "failure"
	}
	p.total.WithLabelValues(poll.Target, status).Inc()
	p.duration.WithLabelValues(poll.Target).Observe(took.Seconds())

	data, encErr := streams.EncodeObservation(o)
	if encErr != nil {
		return fmt.Errorf("volume %s: %w", poll.Target, encErr)
	}
	if perr := set.results.Publish(ctx, poll.Target, poll.Scheduled, data); perr != nil {
		return errors.Join(err, fmt.Errorf("publish volume %s result: %w", poll.Target, perr))
	}
	return err
}
