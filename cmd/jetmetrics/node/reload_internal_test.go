package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/config"
)

// A change in place that fails while applied leaves its generation stale
// with the key it had: the next reload prepares it again, even of the old
// file (the generation runs part of the new one); once a change applies
// whole the generation has its key and a reload of the same file has
// nothing to do.
func TestReloadRetriesAChangeThatFailedPartWay(t *testing.T) {
	fileA := config.File{Volumes: []config.Volume{{Name: "vol-1", Backend: config.BackendLocal, Device: "sda"}}}
	fileB := fileA
	fileB.Volumes = append(fileB.Volumes, config.Volume{Name: "vol-2", Backend: config.BackendLocal, Device: "sdb"})
	n := &Node{}
	failing := errors.New("applied part way")
	var applies, discards int
	g := newGen(n.volumeKeyOf(fileA))
	g.update = func(context.Context, any) (*change, error) {
		return &change{
			apply: func(context.Context) error {
				if applies++; applies == 1 {
					return failing
				}
				return nil
			},
			discard: func() { discards++ },
		}, nil
	}
	n.reload.volume = newObserverSlot("volumes", g)
	n.reload.probe = newObserverSlot("probes", newGen(probeKey{nil, config.Observer{}}))

	prepare := func(file config.File) []reloadStep {
		t.Helper()
		steps, err := n.prepareReload(file)
		if err != nil {
			t.Fatal(err)
		}
		return steps
	}
	steps := prepare(fileB)
	if len(steps) != 1 || steps[0].what != "volumes" || steps[0].ch == nil {
		t.Fatalf("steps of a reload adding a volume: %+v, want one change of volumes in place", steps)
	}
	if err := steps[0].apply(t.Context()); !errors.Is(err, failing) {
		t.Fatalf("apply: %v, want %v", err, failing)
	}
	if !g.stale || len(g.key.(volumeKey).Vols) != 1 {
		t.Fatalf("after a failed change: stale %v, key %+v; want stale, with the old key", g.stale, g.key)
	}
	for name, file := range map[string]config.File{"the same file": fileB, "the old file": fileA} {
		steps := prepare(file)
		if len(steps) != 1 {
			t.Errorf("reload of %s after a failed change: %d steps, want the change prepared again", name, len(steps))
		}
		for _, st := range steps {
			st.discard()
		}
	}
	if discards != 2 {
		t.Errorf("%d prepared changes discarded, want 2", discards)
	}

	steps = prepare(fileB)
	if err := steps[0].apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	if g.stale || len(g.key.(volumeKey).Vols) != 2 {
		t.Fatalf("after the change applied: stale %v, key %+v; want the new key", g.stale, g.key)
	}
	if steps := prepare(fileB); len(steps) != 0 {
		t.Errorf("reload of the applied file: %d steps, want none", len(steps))
	}
}

// A generation swapped into an observer whose Run has returned (the node
// stopping) fails at once, not at the reload's timeout, and is dropped.
func TestSwapIntoStoppedObserver(t *testing.T) {
	first := newGen("first")
	s := newObserverSlot("volumes", first)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-first.started
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	next := newGen("next")
	dropped := 0
	next.discard = func() { dropped++ }
	sctx, scancel := context.WithTimeout(t.Context(), time.Minute)
	defer scancel()
	if err := s.Swap(sctx, next); !errors.Is(err, errSlotStopped) {
		t.Fatalf("Swap into a stopped observer: %v, want %v", err, errSlotStopped)
	}
	if dropped != 1 {
		t.Errorf("the generation was dropped %d times, want once", dropped)
	}
}
