package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Component is one long-running part of a node: the aggregator, the
// snapshot publisher, the volume observer. Run works until ctx ends and
// then returns nil; an error stops the whole node. Ready reports whether
// the component does its job now, nil when it does; it is called from
// any goroutine while Run runs, and before.
type Component interface {
	Name() string
	Run(ctx context.Context) error
	Ready(ctx context.Context) error
}

// component adapts functions to Component, for parts whose Run and
// readiness are spelled otherwise.
type component struct {
	name  string
	run   func(context.Context) error
	ready func(context.Context) error
}

var _ Component = component{}

func (c component) Name() string                  { return c.name }
func (c component) Run(ctx context.Context) error { return c.run(ctx) }
func (c component) Ready(ctx context.Context) error {
	if c.ready == nil {
		return nil
	}
	return c.ready(ctx)
}

// readyFlag turns a component's Ready() bool into a Ready error.
func readyFlag(ready func() bool, why string) func(context.Context) error {
	return func(context.Context) error {
		if !ready() {
			return errors.New(why)
		}
		return nil
	}
}

// runner starts components in the node's group and answers for their
// readiness. Components are added as Run gets to them (some need the
// streams first), so the list is guarded.
type runner struct {
	g   *group
	ctx context.Context

	mu   sync.Mutex
	list []Component
}

// start runs c in the group until the group's context ends. A component's
// error names it.
func (r *runner) start(c Component) {
	r.mu.Lock()
	r.list = append(r.list, c)
	r.mu.Unlock()
	r.g.Go(func() error {
		if err := c.Run(r.ctx); err != nil {
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
		return nil
	})
}

// componentState is one line of /-/ready.
type componentState struct {
	Name string
	Err  error
}

// states asks every component started so far for its readiness, in the
// order they were started.
func (r *runner) states(ctx context.Context) []componentState {
	r.mu.Lock()
	list := append([]Component(nil), r.list...)
	r.mu.Unlock()
	out := make([]componentState, len(list))
	for i, c := range list {
		out[i] = componentState{Name: c.Name(), Err: c.Ready(ctx)}
	}
	return out
}

// readyReport is what /-/ready says: a line per check and component
// ("name: ok" or "name: why not"), and the first problem, named, or nil.
func readyReport(checks []componentState) (string, error) {
	var first error
	var b strings.Builder
	for _, c := range checks {
		if c.Err != nil {
			if first == nil {
				first = fmt.Errorf("%s: %w", c.Name, c.Err)
			}
			fmt.Fprintf(&b, "%s: %v\n", c.Name, c.Err)
			continue
		}
		fmt.Fprintf(&b, "%s: ok\n", c.Name)
	}
	return b.String(), first
}
