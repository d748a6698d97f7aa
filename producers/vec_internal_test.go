package producers

import (
	"fmt"
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
		{"Gauge", unsafe.Sizeof(Gauge{}), unsafe.Offsetof(Gauge{}.changed), 2 * cacheLine, cacheLine},
		{"FloatGauge", unsafe.Sizeof(FloatGauge{}), unsafe.Offsetof(FloatGauge{}.changed), 2 * cacheLine, cacheLine},
		{"shard", unsafe.Sizeof(shard[int]{}), 0, cacheLine, 0},
	} {
		if tt.size != tt.wantSize || tt.offset != tt.wantOffset {
			t.Errorf("%s: size %d, flag offset %d; want %d and %d", tt.name, tt.size, tt.offset, tt.wantSize, tt.wantOffset)
		}
	}
}
