package probes

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

	"github.com/jetmetrics/jetmetrics/pkg/probes"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Prober checks one service once: its latency, or why it failed. The
// probers of pkg/probes satisfy it.
type Prober interface {
	Probe(ctx context.Context) (time.Duration, error)
}

// Config configures a Poller.
type Config struct {
	// Node is this node's name, written into each result.
	Node string
	// Subjects builds the result subjects (zero value: the default
	// prefix).
	Subjects streams.Subjects
	// Probers are the services by name.
	Probers map[string]Prober
	// Timeouts bound some services' probes below the observer's timeout
	// (default: the observer's alone).
	Timeouts map[string]time.Duration
	// PublishTimeout bounds publishing one result, which happens after the
	// probe's own deadline when the service timed out (default 2 s).
	PublishTimeout time.Duration
}

// ProbesMetric is the name of the counter of this node's probes. It is
// not jetmetrics_service_checks_total, the SDK's delta family (which the
// node also feeds with each probe, exactly once across the cluster).
const ProbesMetric = "jetmetrics_service_probes_total"

// Poller probes services and publishes their results.
type Poller struct {
	cfg   Config // Probers and Timeouts as New was given them
	js    jetstream.JetStream
	total *prometheus.CounterVec
	// set is the services probed now: SetProbers swaps it whole.
	set atomic.Pointer[probeSet]
}

// probeSet is the services a poller probes, with their result subjects.
type probeSet struct {
	probers  map[string]Prober
	timeouts map[string]time.Duration
	results  *observer.Results
}

var _ observer.Poller = (*Poller)(nil)

// New returns a poller publishing through js. It registers
// jetmetrics_service_probes_total{service,result} (result success or
// failure) with reg (nil: none); it counts this node's probes, so summed
// over the nodes it counts each probe once.
func New(cfg Config, js jetstream.JetStream, reg prometheus.Registerer) (*Poller, error) {
	if err := streams.CheckToken("node", cfg.Node); err != nil {
		return nil, fmt.Errorf("new probe poller: %w", err)
	}
	p := &Poller{
		cfg: cfg,
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ProbesMetric,
			Help: "Service probes this node made, by service and result (success or failure).",
		}, []string{"service", "result"}),
	}
	p.js = js
	set, err := p.newSet(cfg.Probers, cfg.Timeouts)
	if err != nil {
		return nil, fmt.Errorf("new probe poller: %w", err)
	}
	p.set.Store(set)
	if reg != nil {
		if err := reg.Register(p.total); err != nil {
			return nil, fmt.Errorf("register probe metrics: %w", err)
		}
	}
	return p, nil
}

func (p *Poller) newSet(probers map[string]Prober, timeouts map[string]time.Duration) (*probeSet, error) {
	for name, pr := range probers {
		if pr == nil {
			return nil, fmt.Errorf("service %q has no prober", name)
		}
	}
	for name, d := range timeouts {
		if _, ok := probers[name]; !ok {
			return nil, fmt.Errorf("a timeout for service %q, which has no prober", name)
		}
		if d <= 0 {
			return nil, fmt.Errorf("service %q: timeout %s is not positive", name, d)
		}
	}
	results, err := observer.NewResults(p.js, p.cfg.Subjects, streams.ObsKindProbe, sortedNames(probers), p.cfg.PublishTimeout)
	if err != nil {
		return nil, fmt.Errorf("service %w", err)
	}
	return &probeSet{probers: maps.Clone(probers), timeouts: maps.Clone(timeouts), results: results}, nil
}

// SetProbers replaces the services probed, for a configuration reload:
// each poll that starts afterwards uses the new prober of its service
// (a poll in flight finishes with the one it began with). The probe
// counters of the services that stay go on counting. An invalid set
// changes nothing.
func (p *Poller) SetProbers(probers map[string]Prober, timeouts map[string]time.Duration) error {
	set, err := p.newSet(probers, timeouts)
	if err != nil {
		return fmt.Errorf("set probers: %w", err)
	}
	old := p.set.Swap(set)
	// A removed service's series leave /metrics with it.
	for name := range old.probers {
		if _, kept := set.probers[name]; !kept {
			p.total.DeletePartialMatch(prometheus.Labels{"service": name})
		}
	}
	return nil
}

// Targets are the services' names, sorted, for the observer's and the
// leases' configurations.
func (p *Poller) Targets() []string { return sortedNames(p.set.Load().probers) }

func sortedNames(probers map[string]Prober) []string {
	out := make([]string, 0, len(probers))
	for name := range probers {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Poll probes the service and publishes the result. It returns the
// probe's error (so the observer records it) after publishing it, or the
// publish error.
func (p *Poller) Poll(ctx context.Context, poll observer.Poll) error {
	set := p.set.Load()
	pr, ok := set.probers[poll.Target]
	if !ok {
		return fmt.Errorf("service %q is not configured", poll.Target)
	}
	if d, ok := set.timeouts[poll.Target]; ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	start := time.Now()
	lat, err := pr.Probe(ctx)
	took := time.Since(start)
	r := streams.ProbeResult{
		Service:       poll.Target,
		ObservedAt:    poll.Scheduled,
		Duration:      min(took, streams.MaxProbeDuration),
		Node:          p.cfg.Node,
		LeaseRevision: poll.Lease.Revision,
	}
	result := "success"
	if err == nil {
		r.Success, r.Latency = true, min(max(lat, 0), streams.MaxProbeDuration)
	} else {
		result = "failure"
		r.Reason = probes.ReasonOf(err)
		if !streams.ValidProbeReason(r.Reason) {
			r.Reason = probes.ReasonError // a prober of our own making erred
		}
		r.Error = streams.TruncateProbeError(err.Error())
		if r.Error == "" {
			r.Error = r.Reason
		}
	}
	p.total.WithLabelValues(poll.Target, result).Inc()

	data, encErr := streams.EncodeProbeResult(r)
	if encErr != nil {
		return errors.Join(err, fmt.Errorf("service %s: %w", poll.Target, encErr))
	}
	if perr := set.results.Publish(ctx, poll.Target, poll.Scheduled, data); perr != nil {
		return errors.Join(err, fmt.Errorf("publish service %s result: %w", poll.Target, perr))
	}
	return err
}
