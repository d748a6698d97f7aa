package observer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Poll is one scheduled poll of one target.
type Poll struct {
	Target string
	// Scheduled is the tick the poll belongs to: the same instants on
	// every node, Interval apart.
	Scheduled time.Time
	// Lease is the lease under which the node polls; its Revision is the
	// fencing token the result must carry.
	Lease Lease
}

// Poller polls one target. Poll must return soon after ctx ends; the
// observer gives up waiting at the poll's deadline, but a poll that has
// not returned blocks that target's next polls (StatusOverrun).
type Poller interface {
	Poll(ctx context.Context, p Poll) error
}

// PollerFunc adapts a function to Poller.
type PollerFunc func(ctx context.Context, p Poll) error

// Poll calls f.
func (f PollerFunc) Poll(ctx context.Context, p Poll) error { return f(ctx, p) }

// Poll outcomes recorded per target.
const (
	StatusOK      = "ok"
	StatusError   = "error"
	StatusTimeout = "timeout"
	StatusPanic   = "panic"
	// StatusOverrun: the target's previous poll had not returned yet.
	StatusOverrun = "overrun"
	// StatusBusy: MaxConcurrent polls ran until this one's deadline.
	StatusBusy = "busy"
)

// TargetStatus is the outcome of a target's last poll on this node.
type TargetStatus struct {
	Target string `json:"target"`
	// Status is one of the Status constants; "" before the first poll.
	Status    string        `json:"status"`
	Error     string        `json:"error,omitempty"`
	Scheduled time.Time     `json:"scheduled"`
	Duration  time.Duration `json:"duration_ns"`
	// Polls and Failures count this node's polls of the target.
	Polls    uint64 `json:"polls"`
	Failures uint64 `json:"failures"`
}

// Observer polls its targets on a drift-free schedule: target t is due at
// every instant k·Interval + phase(t) (k whole, Unix time), where the
// phase is a hash of the observer's name and t, the same on every node.
// At each instant the target is polled if the Elector grants this node a
// lease, in a goroutine of its own, so a slow, hanging, failing or
// panicking poll never delays another target or the next instant.
type Observer struct {
	cfg     Config
	elector Elector
	poller  Poller
	log     zerolog.Logger
	sem     chan struct{}
	polls   *prometheus.CounterVec
	wg      sync.WaitGroup // polls in flight

	// mu guards the targets and, while Run runs, the context it runs in
	// (nil otherwise): Update starts and stops loops under it.
	mu      sync.Mutex
	targets map[string]*target
	run     context.Context
	loops   sync.WaitGroup
}

type target struct {
	name    string
	phase   time.Duration
	running atomic.Bool
	// stop ends the target's loop (set while it runs).
	stop context.CancelFunc

	mu     sync.Mutex
	status TargetStatus
}

// New returns an observer of cfg's targets that polls those elector
// grants it through poller. It registers
// jetmetrics_observer_polls_total{observer,status} with reg (nil: none).
func New(cfg Config, elector Elector, poller Poller, log zerolog.Logger, reg prometheus.Registerer) (*Observer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new observer: %w", err)
	}
	if elector == nil || poller == nil {
		return nil, errors.New("new observer: nil elector or poller")
	}
	cfg = cfg.WithDefaults()
	o := &Observer{
		cfg:     cfg,
		elector: elector,
		poller:  poller,
		log:     log.With().Str("observer", cfg.Name).Logger(),
		sem:     make(chan struct{}, cfg.MaxConcurrent),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "jetmetrics_observer_polls_total",
			Help:        "Polls this node made, by outcome.",
			ConstLabels: prometheus.Labels{"observer": cfg.Name},
		}, []string{"status"}),
	}
	for _, s := range []string{StatusOK, StatusError, StatusTimeout, StatusPanic, StatusOverrun, StatusBusy} {
		o.polls.WithLabelValues(s)
	}
	o.targets = make(map[string]*target, len(cfg.Targets))
	for _, t := range cfg.Targets {
		o.targets[t] = o.newTarget(t)
	}
	if reg != nil {
		if err := reg.Register(o.polls); err != nil {
			return nil, fmt.Errorf("register poll counter: %w", err)
		}
	}
	return o, nil
}

// Phase is target's offset within each interval: a hash of the observer's
// name and the target, so targets do not all fire at once and every node
// polls a target at the same instants.
func Phase(observer, target string, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	return time.Duration(hash(observer, target) % uint64(interval))
}

// nextTick returns the first instant k·interval + phase after now.
func nextTick(now time.Time, interval, phase time.Duration) time.Time {
	ns := now.UnixNano() - int64(phase)
	k := ns / int64(interval)
	if ns < 0 && ns%int64(interval) != 0 {
		k-- // floor for instants before the epoch
	}
	return time.Unix(0, (k+1)*int64(interval)+int64(phase))
}

func (o *Observer) newTarget(name string) *target {
	return &target{name: name, phase: Phase(o.cfg.Name, name, o.cfg.Interval), status: TargetStatus{Target: name}}
}

// Run polls until ctx ends, then waits for the polls in flight and
// returns nil. Run once at a time.
func (o *Observer) Run(ctx context.Context) error {
	o.mu.Lock()
	o.log.Info().Int("targets", len(o.targets)).Dur("interval", o.cfg.Interval).Dur("timeout", o.cfg.Timeout).Msg("observer started")
	o.run = ctx
	for _, t := range o.targets {
		o.startLoop(t)
	}
	o.mu.Unlock()
	<-ctx.Done()
	o.mu.Lock()
	o.run = nil
	o.mu.Unlock()
	o.loops.Wait()
	o.wg.Wait()
	o.log.Info().Msg("observer stopped")
	return nil
}

// startLoop starts t's loop in o.run. Call it with o.mu held.
func (o *Observer) startLoop(t *target) {
	ctx, stop := context.WithCancel(o.run)
	t.stop = stop
	o.loops.Go(func() {
		defer stop()
		o.loop(ctx, t)
	})
}

// Update changes the targets while Run runs (or before it): loops start
// for the added targets, at their next instant, and stop for the removed
// ones (a poll of theirs in flight runs to its end; their status is
// dropped); the targets that stay keep their loops, their schedules and
// their status, counters included. A target whose definition changed
// keeps its name here: the Poller swaps the definition in for the next
// poll. An invalid list (an empty or repeated name) changes nothing.
func (o *Observer) Update(targets []string) error {
	cfg := o.cfg
	cfg.Targets = targets
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("update observer: %w", err)
	}
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[t] = true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var added, removed []string
	for name, t := range o.targets {
		if keep[name] {
			continue
		}
		if t.stop != nil {
			t.stop()
		}
		delete(o.targets, name)
		removed = append(removed, name)
	}
	for _, name := range targets {
		if _, ok := o.targets[name]; ok {
			continue
		}
		t := o.newTarget(name)
		o.targets[name] = t
		if o.run != nil {
			o.startLoop(t)
		}
		added = append(added, name)
	}
	slices.Sort(added)
	slices.Sort(removed)
	o.log.Info().Int("targets", len(o.targets)).Strs("added", added).Strs("removed", removed).Msg("observer targets changed")
	return nil
}

// loop fires t at each of its instants. The next instant is computed from
// the clock, never from when the last poll ended, so the schedule does not
// drift; an instant missed (the process was stopped) is skipped.
func (o *Observer) loop(ctx context.Context, t *target) {
	next := nextTick(time.Now(), o.cfg.Interval, t.phase)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		o.fire(ctx, t, next)
		next = nextTick(time.Now(), o.cfg.Interval, t.phase)
		timer.Reset(time.Until(next))
	}
}

// fire starts t's poll for the instant scheduled, if this node leads t,
// without waiting for it.
func (o *Observer) fire(ctx context.Context, t *target, scheduled time.Time) {
	lease, ok := o.elector.Lease(t.name)
	if !ok {
		return
	}
	if !t.running.CompareAndSwap(false, true) {
		o.record(t, scheduled, 0, StatusOverrun, errors.New("the previous poll has not returned"))
		return
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		pctx, cancel := context.WithDeadline(ctx, scheduled.Add(o.cfg.Timeout))
		defer cancel()
		select {
		case o.sem <- struct{}{}:
		case <-pctx.Done():
			t.running.Store(false)
			if ctx.Err() == nil {
				o.record(t, scheduled, 0, StatusBusy, fmt.Errorf("no free slot of %d before the deadline", o.cfg.MaxConcurrent))
			}
			return
		}
		done := make(chan error, 1)
		start := time.Now()
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			// The slot and the target are taken until the poller returns,
			// even past the deadline: MaxConcurrent bounds the calls to
			// backends, and a hanging target holds one slot, not more.
			defer func() { <-o.sem }()
			defer t.running.Store(false)
			done <- o.call(pctx, Poll{Target: t.name, Scheduled: scheduled, Lease: lease})
		}()
		var err error
		select {
		case err = <-done:
		case <-pctx.Done():
			err = pctx.Err()
		}
		status := StatusOK
		var pe *panicError
		switch {
		case err == nil:
		case errors.As(err, &pe):
			status = StatusPanic
		case errors.Is(pctx.Err(), context.DeadlineExceeded):
			status = StatusTimeout
		case ctx.Err() != nil:
			return // stopping: not the target's fault
		default:
			status = StatusError
		}
		o.record(t, scheduled, time.Since(start), status, err)
	}()
}

type panicError struct{ v any }

func (p *panicError) Error() string { return fmt.Sprintf("poll panicked: %v", p.v) }

// call runs the poller, turning a panic into an error.
func (o *Observer) call(ctx context.Context, p Poll) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{v: v}
		}
	}()
	return o.poller.Poll(ctx, p)
}

func (o *Observer) record(t *target, scheduled time.Time, d time.Duration, status string, err error) {
	o.polls.WithLabelValues(status).Inc()
	t.mu.Lock()
	s := &t.status
	wasFailing := s.Error != ""
	s.Status, s.Scheduled, s.Duration, s.Error = status, scheduled, d, ""
	s.Polls++
	if err != nil {
		s.Error = err.Error()
		s.Failures++
	}
	t.mu.Unlock()
	// A target that keeps failing is logged when it starts to, and when it
	// recovers; every failure in between is in its status and the metrics.
	switch {
	case err != nil && !wasFailing:
		o.log.Warn().Err(err).Str("target", t.name).Str("status", status).Time("scheduled", scheduled).Msg("poll failed (logged again at debug level until it recovers)")
	case err != nil:
		o.log.Debug().Err(err).Str("target", t.name).Str("status", status).Time("scheduled", scheduled).Msg("poll failed")
	case wasFailing:
		o.log.Info().Str("target", t.name).Time("scheduled", scheduled).Msg("poll recovered")
	}
}

// Status returns every target's last outcome on this node, sorted by
// target.
func (o *Observer) Status() []TargetStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]TargetStatus, 0, len(o.targets))
	for _, t := range o.targets {
		t.mu.Lock()
		out = append(out, t.status)
		t.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b TargetStatus) int { return strings.Compare(a.Target, b.Target) })
	return out
}
