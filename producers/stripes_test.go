package producers

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// addTogether has two goroutines call add at the same time, each until
// done reports true (asked every 1,024 calls) or it has made limit calls,
// and returns how many calls they made in all.
func addTogether(add func(), done func() bool, limit int) int {
	var calls atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			n := 0
			for n < limit && (n%1024 != 0 || !done()) {
				add()
				n++
			}
			calls.Add(int64(n))
		})
	}
	wg.Wait()
	return int(calls.Load())
}

// twoAtOnce lets two goroutines run at once for the rest of the test, as
// the contention the test looks for needs (go test -cpu 1 would not).
func twoAtOnce(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		prev := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
}

// An integer counter that two goroutines add to at once finds out and
// moves to stripes; nothing is lost or counted twice on the way, and a
// flush keeps it striped.
func TestCounterStripesWhenContended(t *testing.T) {
	twoAtOnce(t)
	var c Counter
	isStriped := func() bool { return atomic.LoadUint64(&c.v) >= striped }
	n := addTogether(c.Inc, isStriped, 1<<24)
	if !isStriped() {
		t.Fatalf("not striped after %d increments from two goroutines at once", n)
	}
	n += addTogether(func() { c.Add(3) }, func() bool { return false }, 1<<16) * 3
	if got := flushed(&c); !slices.Equal(got, []float64{float64(n)}) {
		t.Fatalf("flushed %v, want [%d]", got, n)
	}
	if !isStriped() || c.stripes.Load() == nil {
		t.Fatal("a flush unstriped the counter")
	}
	if got := flushed(&c); len(got) != 0 {
		t.Errorf("flushed %v with nothing added", got)
	}
	c.Inc()
	if got := atomic.LoadUint64(&c.v); got != striped {
		t.Errorf("count word %#x after an increment of a striped counter, want only the striped bit", got)
	}
	if got := flushed(&c); !slices.Equal(got, []float64{1}) {
		t.Errorf("flushed %v, want [1]", got)
	}
}

// An integer counter added to by one goroutine at a time stays unstriped.
func TestCounterUncontendedStaysUnstriped(t *testing.T) {
	var c Counter
	for range 1 << 20 { // 16 looks for contention
		c.Inc()
	}
	if c.stripes.Load() != nil || atomic.LoadUint64(&c.v) != 1<<20 {
		t.Fatalf("count word %#x, stripes %v: want 1<<20 and none", atomic.LoadUint64(&c.v), c.stripes.Load())
	}
}

// Goroutines that share a cell at the same time get new cells picked, by
// either kind of counter; the count stays exact.
func TestStripesRepickSharedCells(t *testing.T) {
	twoAtOnce(t)
	// A multiplier of 0 puts every goroutine in cell 0.
	oneCell := func() *stripes { s := newStripes(); s.mult = 0; return s }
	var c Counter
	c.stripes.Store(oneCell())
	c.v = striped
	var f FloatCounter
	f.stripes.Store(oneCell())
	for _, tt := range []struct {
		name   string
		add    func()
		s      *atomic.Pointer[stripes]
		series interface{ collect(*flusher) }
	}{
		{"Counter", c.Inc, &c.stripes, &c},
		{"FloatCounter", func() { f.Add(1) }, &f.stripes, &f},
	} {
		t.Run(tt.name, func(t *testing.T) {
			repicked := func() bool { return tt.s.Load().mult != 0 }
			n := addTogether(tt.add, repicked, 1<<24)
			if !repicked() {
				t.Fatalf("still one cell for all after %d adds from two goroutines at once", n)
			}
			if got := flushed(tt.series); !slices.Equal(got, []float64{float64(n)}) {
				t.Fatalf("flushed %v, want [%d]", got, n)
			}
		})
	}
}

// A contended float counter adds into stripes; a flush must take them all,
// and leave them empty for the next.
func TestFloatCounterStripes(t *testing.T) {
	var c FloatCounter
	c.Add(1)
	c.contended(2) // as when a swap fails: the counter is striped from here
	if c.stripes.Load() == nil {
		t.Fatal("not striped after contention")
	}
	const workers, n = 8, 10_000
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range n {
				c.Add(0.5)
			}
		})
	}
	wg.Wait()
	fl := &flusher{}
	c.collect(fl)
	c.collect(fl) // nothing new: no update
	c.Add(3)
	c.collect(fl)
	var got []float64
	for _, u := range fl.updates {
		got = append(got, u.value)
	}
	if want := []float64{1 + 2 + workers*n*0.5, 3}; !slices.Equal(got, want) {
		t.Errorf("flushed %v, want %v", got, want)
	}
}
