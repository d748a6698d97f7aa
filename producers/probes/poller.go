package probes

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	cfg     Config
	results *observer.Results
	total   *prometheus.CounterVec
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
	for name, pr := range cfg.Probers {
		if pr == nil {
			return nil, fmt.Errorf("new probe poller: service %q has no prober", name)
		}
	}
	var err error
	if p.results, err = observer.NewResults(js, cfg.Subjects, streams.ObsKindProbe, p.Targets(), cfg.PublishTimeout); err != nil {
		return nil, fmt.Errorf("new probe poller: service %w", err)
	}
	for name, d := range cfg.Timeouts {
		if _, ok := cfg.Probers[name]; !ok {
			return nil, fmt.Errorf("new probe poller: a timeout for service %q, which has no prober", name)
		}
		if d <= 0 {
			return nil, fmt.Errorf("new probe poller: service %q: timeout %s is not positive", name, d)
		}
	}
	if reg != nil {
		if err := reg.Register(p.total); err != nil {
			return nil, fmt.Errorf("register probe metrics: %w", err)
		}
	}
	return p, nil
}

// Targets are the services' names, sorted, for the observer's and the
// leases' configurations.
func (p *Poller) Targets() []string {
	out := make([]string, 0, len(p.cfg.Probers))
	for name := range p.cfg.Probers {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Poll probes the service and publishes the result. It returns the
// probe's error (so the observer records it) after publishing it, or the
// publish error.
func (p *Poller) Poll(ctx context.Context, poll observer.Poll) error {
	pr, ok := p.cfg.Probers[poll.Target]
	if !ok {
		return fmt.Errorf("service %q is not configured", poll.Target)
	}
	if d, ok := p.cfg.Timeouts[poll.Target]; ok {
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
	if perr := p.results.Publish(ctx, poll.Target, poll.Scheduled, data); perr != nil {
		return errors.Join(err, fmt.Errorf("publish service %s result: %w", poll.Target, perr))
	}
	return err
}
