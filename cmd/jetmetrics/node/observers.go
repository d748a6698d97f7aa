package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/producers/observer"
	"github.com/jetmetrics/jetmetrics/streams"
)

// observerSlot runs the parts of one observer (volumes or probes) built
// from one configuration, a generation, and replaces them whole when a
// reload changes that observer's settings: the old parts stop (releasing
// their leases) and the new ones start. Only that observer restarts; the
// aggregator and every other component run on. A reload that changes only
// the targets updates the running generation in place (obsGen.update).
type observerSlot struct {
	name  string
	first *obsGen
	gens  chan *obsGen
	cur   atomic.Pointer[obsGen]
	// done is closed when Run returns: no generation starts any more.
	done chan struct{}
}

// obsGen is one generation of an observer's parts.
type obsGen struct {
	// key is the configuration the generation runs: the one it was built
	// from, then that of each change applied to it in place. A reload
	// whose key is equal keeps the running generation as it is, unless
	// stale. Read and written under the reload lock.
	key any
	// stale is set when a change in place failed part way: the
	// generation runs some of it, so whatever the next reload's key, it
	// is applied again.
	stale bool
	// parts run together until the generation is replaced.
	parts []Component
	// reg holds the parts' metrics, served on /metrics while they run.
	reg *prometheus.Registry
	// publish makes the generation's state the API's, before its parts
	// start; it also clears the previous one's when the generation is
	// empty.
	publish func()
	// discard frees what a generation that never started holds.
	discard func()
	// update, when set, prepares changing the running generation in
	// place to key's targets and definitions (same observer settings):
	// it does everything that can fail (reading secrets and TLS files,
	// making backends and probers, checking the target names) and
	// returns the change, or nil when key needs a new generation. Leases,
	// schedules and metrics of the targets that stay carry on. Called
	// under the reload lock.
	update  func(ctx context.Context, key any) (*change, error)
	started chan struct{}
}

// change is a change of a running generation in place, prepared: nothing
// the node runs has changed yet.
type change struct {
	// apply makes the change. It fails only on what preparing it checked
	// already; when it does, the generation may run part of it.
	apply func(context.Context) error
	// discard frees what preparing made, for a change never applied.
	discard func()
}

func newObserverSlot(name string, first *obsGen) *observerSlot {
	s := &observerSlot{name: name, first: first, gens: make(chan *obsGen), done: make(chan struct{})}
	s.cur.Store(first)
	return s
}

func (s *observerSlot) Name() string { return s.name }

// Run runs the first generation, then each one Swap hands over, until ctx
// ends or a part fails.
func (s *observerSlot) Run(ctx context.Context) error {
	defer close(s.done)
	g := s.first
	for g != nil {
		var err error
		if g, err = s.runGen(ctx, g); err != nil {
			return err
		}
	}
	return nil
}

// runGen runs g until ctx ends (it returns nil, nil), one of its parts
// fails (nil and the error), or the next generation arrives (which it
// returns once g's parts have stopped).
func (s *observerSlot) runGen(ctx context.Context, g *obsGen) (*obsGen, error) {
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(g.parts))
	var wg sync.WaitGroup
	if g.publish != nil {
		g.publish()
	}
	s.cur.Store(g)
	for _, p := range g.parts {
		wg.Go(func() {
			if err := p.Run(gctx); err != nil {
				errc <- fmt.Errorf("%s: %w", p.Name(), err)
			}
		})
	}
	close(g.started)
	var next *obsGen
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	case next = <-s.gens:
	}
	cancel()
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
			if next != nil {
				next.drop() // received, never started: release what it holds
			}
			next = nil
		default:
		}
	}
	return next, err
}

// errSlotStopped is a Swap into a slot whose Run has returned.
var errSlotStopped = errors.New("the observer has stopped (the node is stopping, or a part of it failed)")

// Swap hands g over to Run and waits until g's parts have started (the
// previous generation's have stopped by then). When it fails before Run
// took g, g is dropped and the running generation stays; after, Run owns
// g and starts it unless it stops first.
func (s *observerSlot) Swap(ctx context.Context, g *obsGen) error {
	select {
	case s.gens <- g:
	case <-s.done:
		g.drop()
		return fmt.Errorf("%s: %w", s.name, errSlotStopped)
	case <-ctx.Done():
		g.drop()
		return fmt.Errorf("%s: %w", s.name, ctx.Err())
	}
	select {
	case <-g.started:
		return nil
	case <-s.done:
		select {
		case <-g.started: // started, then stopped with the rest
			return nil
		default:
			return fmt.Errorf("%s: %w", s.name, errSlotStopped)
		}
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", s.name, ctx.Err())
	}
}

// Ready is the running generation's: the first part that is not ready.
func (s *observerSlot) Ready(ctx context.Context) error {
	g := s.cur.Load()
	select {
	case <-g.started:
	default:
		return errors.New("starting")
	}
	for _, p := range g.parts {
		if err := p.Ready(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.Name(), err)
		}
	}
	return nil
}

// gather gathers the running generation's metrics.
func (s *observerSlot) gather() ([]*dto.MetricFamily, error) {
	if g := s.cur.Load(); g != nil && g.reg != nil {
		return g.reg.Gather()
	}
	return nil, nil
}

// drop frees an unstarted generation.
func (g *obsGen) drop() {
	if g != nil && g.discard != nil {
		g.discard()
	}
}

// checkTargets checks the target list of a change in place as the parts
// of the running generation check it when the change is applied (the
// observer's loops, the leases' keys, the result subjects, the gauge
// collectors): a prepared change does not fail on its names.
func checkTargets(cfg observer.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	for _, t := range cfg.Targets {
		if _, err := streams.TargetToken(t); err != nil {
			return err
		}
	}
	return nil
}

// newGen is an empty generation of key: no parts, no metrics.
func newGen(key any) *obsGen {
	return &obsGen{key: key, reg: prometheus.NewRegistry(), started: make(chan struct{})}
}

var _ Component = (*observerSlot)(nil)
