package node

import (
	"context"
	"sync"
)

// group runs functions until the first error, which cancels the others.
// Every function must return once the group's context ends.
type group struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
	done   chan struct{}
	dOnce  sync.Once
}

func (g *group) doneCh() chan struct{} {
	g.dOnce.Do(func() { g.done = make(chan struct{}) })
	return g.done
}

// Go runs fn in a goroutine the group owns.
func (g *group) Go(fn func() error) {
	g.wg.Add(1)
	done := g.doneCh()
	go func() {
		defer g.wg.Done()
		if err := fn(); err != nil {
			g.once.Do(func() {
				g.err = err
				close(done)
				g.cancel()
			})
		}
	}()
}

// Done is closed when a function failed.
func (g *group) Done() <-chan struct{} { return g.doneCh() }

// Wait waits for every function and returns the first error.
func (g *group) Wait() error {
	g.wg.Wait()
	return g.err
}
