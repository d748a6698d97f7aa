package aggregator

import (
	"context"
	"sync"
)

// byteGate bounds the bytes in flight between one goroutine that acquires
// and one that releases. A single acquire larger than the bound passes
// when nothing else is in flight, so no message can stall the reader.
type byteGate struct {
	max   int64
	mu    sync.Mutex
	used  int64
	freed chan struct{} // a release since the acquirer last looked
}

func newByteGate(max int64) *byteGate {
	return &byteGate{max: max, freed: make(chan struct{}, 1)}
}

// acquire waits until n bytes fit, or nothing is in flight, and takes
// them. It reports false, having taken nothing, when ctx ends first.
func (g *byteGate) acquire(ctx context.Context, n int64) bool {
	for {
		g.mu.Lock()
		if g.used == 0 || g.used+n <= g.max {
			g.used += n
			g.mu.Unlock()
			return true
		}
		g.mu.Unlock()
		select {
		case <-g.freed:
		case <-ctx.Done():
			return false
		}
	}
}

// release gives back n bytes taken by acquire.
func (g *byteGate) release(n int64) {
	g.mu.Lock()
	g.used -= n
	g.mu.Unlock()
	select {
	case g.freed <- struct{}{}:
	default:
	}
}

// inFlight returns the bytes taken and not yet released.
func (g *byteGate) inFlight() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.used
}
