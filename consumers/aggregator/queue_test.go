package aggregator

import (
	"context"
	"testing"
	"time"
)

func TestByteGate(t *testing.T) {
	g := newByteGate(100)
	ctx := context.Background()
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if !g.acquire(ctx, 60) || !g.acquire(ctx, 40) {
		t.Fatal("100 bytes did not fit a gate of 100")
	}
	if g.acquire(ended, 1) || g.inFlight() != 100 {
		t.Fatalf("took a byte past the bound; in flight %d", g.inFlight())
	}

	// A waiting acquire goes ahead once enough is released, not before.
	got := make(chan bool)
	go func() { got <- g.acquire(ctx, 50) }()
	g.release(40) // 60 in flight: 50 more do not fit yet
	g.release(20) // 40: they do
	select {
	case ok := <-got:
		if !ok || g.inFlight() != 90 {
			t.Fatalf("acquire after release: %v, in flight %d", ok, g.inFlight())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acquire still waiting with room for it")
	}

	// More than the bound passes alone, and only alone.
	g.release(90)
	if !g.acquire(ctx, 500) || g.acquire(ended, 1) {
		t.Fatal("an oversize acquire on an empty gate must pass, and fill it")
	}
	g.release(500)
	if g.inFlight() != 0 {
		t.Fatalf("in flight %d after releasing everything", g.inFlight())
	}
}
