package producers

import (
	"fmt"
	"slices"
	"testing"
	"unsafe"
)

// Distinct label values with the same 64-bit hash cannot be produced
// through the seeded hash, so the collision chains are tested here, on a
// shard directly.
func TestShardCollisionsAndPromotion(t *testing.T) {
	var sh shard[int]
	const hashes, perHash = 50, 4
	want := map[string]*int{}
	values := func(h, i int) []string { return []string{fmt.Sprint(h), fmt.Sprint(i)} }
	for i := range perHash {
		for h := range hashes {
			v := values(h, i)
			s := new(int)
			*s = h*perHash + i
			sh.mu.Lock()
			if got := sh.loadLocked(uint64(h), v); got != nil {
				t.Fatalf("%v found before it was stored", v)
			}
			sh.storeLocked(uint64(h), joinValues(v), s)
			sh.mu.Unlock()
			want[joinValues(v)] = s
		}
	}
	// Before and after the remaining dirty entries are promoted, every
	// series is found under its own values, whichever map holds it.
	for range 3 {
		for h := range hashes {
			for i := range perHash {
				v := values(h, i)
				got := sh.load(uint64(h), v)
				if got == nil {
					sh.mu.Lock()
					got = sh.loadLocked(uint64(h), v)
					sh.mu.Unlock()
				}
				if got != want[joinValues(v)] {
					t.Fatalf("%v: got %p, want %p", v, got, want[joinValues(v)])
				}
			}
		}
	}
	if sh.dirty != nil {
		t.Errorf("%d series never promoted to the read map", len(sh.dirty))
	}
	if m := sh.read.Load(); m == nil || len(*m) != hashes {
		t.Fatalf("read map has %v hashes, want %d", m, hashes)
	}
}

func TestMatches(t *testing.T) {
	key := joinValues([]string{"a", "bc", ""})
	for _, tt := range []struct {
		values []string
		want   bool
	}{
		{[]string{"a", "bc", ""}, true},
		{[]string{"ab", "c", ""}, false},
		{[]string{"a", "bc"}, false},
		{[]string{"a", "bc", "", ""}, false},
		{[]string{"a\xffbc", "", ""}, false},
		{[]string{"a", "bc\xff", ""}, false},
		{[]string{"a", "bc", "x"}, false},
	} {
		if got := matches(key, tt.values); got != tt.want {
			t.Errorf("matches(%q, %q) = %v, want %v", key, tt.values, got, tt.want)
		}
	}
}

// The hot words' cache-line layout is what the parallel benchmarks
// measure; keep it from changing unnoticed.
func TestSeriesLayout(t *testing.T) {
	for _, tt := range []struct {
		name         string
		size, offset uintptr
		wantSize     uintptr
		wantOffset   uintptr
	}{
		{"Counter", unsafe.Sizeof(Counter{}), 0, cacheLine, 0},
		{"FloatCounter", unsafe.Sizeof(FloatCounter{}), 0, cacheLine, 0},
		{"Gauge", unsafe.Sizeof(Gauge{}), unsafe.Offsetof(Gauge{}.sent), 2 * cacheLine, cacheLine},
		{"FloatGauge", unsafe.Sizeof(FloatGauge{}), unsafe.Offsetof(FloatGauge{}.sent), 2 * cacheLine, cacheLine},
		{"shard", unsafe.Sizeof(shard[int]{}), 0, cacheLine, 0},
	} {
		if tt.size != tt.wantSize || tt.offset != tt.wantOffset {
			t.Errorf("%s: size %d, flag offset %d; want %d and %d", tt.name, tt.size, tt.offset, tt.wantSize, tt.wantOffset)
		}
	}
}

// flushed collects a series once and returns the values it flushed.
func flushed(s interface{ collect(*flusher) }) []float64 {
	fl := &flusher{}
	s.collect(fl)
	var got []float64
	for _, u := range fl.updates {
		got = append(got, u.value)
	}
	return got
}

// A gauge is sent when its value differs from the one sent last, and a
// set racing with flushes is never lost: the last flush sends the last set.
func TestGaugeSentWhenItDiffers(t *testing.T) {
	var g Gauge
	var fg FloatGauge
	for _, step := range []struct {
		set         func()
		want, wantF []float64
	}{
		{func() {}, []float64{0}, []float64{0}}, // announced
		{func() {}, nil, nil},
		{func() { g.Set(5); fg.Set(5.5) }, []float64{5}, []float64{5.5}},
		{func() {}, nil, nil},
		{func() { g.Set(6); g.Set(5); fg.Add(1); fg.Add(-1) }, nil, nil}, // set back
		{func() { g.Add(-9); fg.Set(-4) }, []float64{-4}, []float64{-4}},
	} {
		step.set()
		if got, gotF := flushed(&g), flushed(&fg); !slices.Equal(got, step.want) || !slices.Equal(gotF, step.wantF) {
			t.Fatalf("flushed %v and %v, want %v and %v", got, gotF, step.want, step.wantF)
		}
	}

	const n = 100_000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			g.Set(int64(i + 1))
		}
	}()
	last := -4.0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		if got := flushed(&g); len(got) > 0 {
			last = got[0]
		}
	}
	if last != n {
		t.Fatalf("last flush sent %v, want the last set, %d", last, n)
	}
}
