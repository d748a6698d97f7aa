package producers

import (
	"fmt"
	"hash/maphash"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// Label-value lookup (Vec.With) must be allocation-free and cheap for an
// existing series, from any number of goroutines, with 100k series.
//
// The values are hashed with a per-process seeded maphash, each value
// separately and mixed in order, so hostile label values cannot force
// collisions. The hash picks one of shardCount shards by its top bits.
// Each shard has an immutable read map, published through an atomic
// pointer, and a dirty map of series created since, under a mutex (the
// scheme of the original sync.Map, per shard). A lookup of a series in the
// read map is a plain load and a map probe: no lock, no atomic write, so
// readers on many cores never contend. A miss takes the mutex; once the
// misses since the last promotion reach half the shard's size, the dirty
// map is merged into a new read map. Creating n series thus costs O(n)
// amortised copying, and a new series is lock-free to look up soon after.
const shardBits = 7
const shardCount = 1 << shardBits

// sep ends each value in a series key: 0xff never occurs in UTF-8, and
// label values are valid UTF-8, so the key is unambiguous.
const sep = 0xff

const cacheLine = 64

var hashSeed = maphash.MakeSeed()

// hashValues hashes the label values in order.
func hashValues(values []string) uint64 {
	var h uint64
	for _, v := range values {
		h = (h ^ maphash.String(hashSeed, v)) * 0x9e3779b97f4a7c15
	}
	return h
}

// matches reports whether key is values joined, each followed by sep.
// values has as many values as the key (With checks the count first), so
// a value containing sep can never match.
func matches(key string, values []string) bool {
	off := 0
	for _, v := range values {
		end := off + len(v)
		if end >= len(key) || key[off:end] != v || key[end] != sep {
			return false
		}
		off = end + 1
	}
	return off == len(key)
}

func joinValues(values []string) string {
	n := len(values)
	for _, v := range values {
		n += len(v)
	}
	var b strings.Builder
	b.Grow(n)
	for _, v := range values {
		b.WriteString(v)
		b.WriteByte(sep)
	}
	return b.String()
}

// entry is one series in a shard map; next chains the rare series whose
// values hash alike. Entries are immutable once in a map.
type entry[T any] struct {
	key  string
	s    *T
	next *entry[T]
}

func (e *entry[T]) find(values []string) *T {
	for ; e != nil; e = e.next {
		if matches(e.key, values) {
			return e.s
		}
	}
	return nil
}

type shard[T any] struct {
	read atomic.Pointer[map[uint64]entry[T]]

	mu     sync.Mutex
	dirty  map[uint64]entry[T]
	misses int

	// Pad to a cache line so one shard's mutex never shares a line with
	// another's read pointer.
	_ [(cacheLine - (unsafe.Sizeof(atomic.Pointer[int]{})+unsafe.Sizeof(sync.Mutex{})+unsafe.Sizeof(map[int]int(nil))+unsafe.Sizeof(0))%cacheLine) % cacheLine]byte
}

// load finds the series in the read map; lock-free.
func (sh *shard[T]) load(h uint64, values []string) *T {
	m := sh.read.Load()
	if m == nil {
		return nil
	}
	e, ok := (*m)[h]
	if !ok {
		return nil
	}
	return e.find(values)
}

// loadLocked finds the series in either map and counts a miss of the read
// map, promoting the dirty map when misses reach half the shard's size.
// sh.mu is held.
func (sh *shard[T]) loadLocked(h uint64, values []string) *T {
	if s := sh.load(h, values); s != nil {
		return s
	}
	if e, ok := sh.dirty[h]; ok {
		if s := e.find(values); s != nil {
			sh.miss()
			return s
		}
	}
	return nil
}

// storeLocked adds a series to the dirty map. sh.mu is held.
func (sh *shard[T]) storeLocked(h uint64, key string, s *T) {
	if sh.dirty == nil {
		sh.dirty = map[uint64]entry[T]{}
	}
	e := entry[T]{key: key, s: s}
	if old, ok := sh.dirty[h]; ok {
		e.next = &old
	}
	sh.dirty[h] = e
	sh.miss()
}

func (sh *shard[T]) miss() {
	sh.misses++
	var n int
	if m := sh.read.Load(); m != nil {
		n = len(*m)
	}
	if 2*sh.misses < n+len(sh.dirty) {
		return
	}
	var merged map[uint64]entry[T]
	if m := sh.read.Load(); m != nil {
		merged = maps.Clone(*m)
	} else {
		merged = make(map[uint64]entry[T], len(sh.dirty))
	}
	for h, e := range sh.dirty {
		if old, ok := merged[h]; ok {
			// Chain the published entries behind the new ones; only the
			// dirty chain, not yet visible to readers, is modified.
			tail := &e
			for tail.next != nil {
				tail = tail.next
			}
			tail.next = &old
		}
		merged[h] = e
	}
	sh.read.Store(&merged)
	sh.dirty, sh.misses = nil, 0
}

// seriesPtr is what a vector needs of its series type.
type seriesPtr[T any] interface {
	*T
	base() *seriesBase
	collect(fl *flusher)
}

// seriesBase is what every series carries besides its atomics.
type seriesBase struct {
	fam    *family
	labels []series.Label
	// announced and dropLogged are owned by the flush goroutine.
	announced  bool
	dropLogged bool
}

func (s *seriesBase) base() *seriesBase { return s }

// vec holds one family's series. Lookups go through the shards; the flush
// goroutine walks all, which only grows.
type vec[T any, P seriesPtr[T]] struct {
	fam *family
	// single is the only series of a family without labels.
	single P
	shards *[shardCount]shard[T]
	// newSeries prepares a freshly allocated series; nil when nothing
	// beyond seriesBase needs setting.
	newSeries func(P)

	mu  sync.Mutex
	all []P
}

func (v *vec[T, P]) init(f *family, newSeries func(P)) {
	v.fam = f
	v.newSeries = newSeries
	if len(f.labelNames) == 0 {
		v.single = v.add(nil)
		return
	}
	v.shards = new([shardCount]shard[T])
}

// add creates a series with the given validated label values.
func (v *vec[T, P]) add(values []string) P {
	s := P(new(T))
	b := s.base()
	b.fam = v.fam
	for i, val := range values {
		// An empty value is no label, as on the node and in Prometheus:
		// the series is the one without it, whoever publishes it.
		if val != "" {
			b.labels = append(b.labels, series.Label{Name: v.fam.labelNames[i], Value: val})
		}
	}
	if v.newSeries != nil {
		v.newSeries(s)
	}
	v.mu.Lock()
	v.all = append(v.all, s)
	v.mu.Unlock()
	v.fam.p.seriesCount.Add(1)
	return s
}

// with returns the series for the label values, creating it on first use.
// values is neither kept nor modified, so callers' variadic arguments stay
// on their stack.
func (v *vec[T, P]) with(values []string) (P, error) {
	if len(values) != len(v.fam.labelNames) {
		return nil, v.countError(len(values))
	}
	if v.shards == nil {
		return v.single, nil
	}
	h := hashValues(values)
	sh := &v.shards[h>>(64-shardBits)]
	if s := sh.load(h, values); s != nil {
		return s, nil
	}
	return v.create(sh, h, values)
}

func (v *vec[T, P]) countError(n int) error {
	return fmt.Errorf("%s %s: %w: got %d, want %d %v", v.fam.kind, v.fam.name, ErrLabelCount, n, len(v.fam.labelNames), v.fam.labelNames)
}

func (v *vec[T, P]) create(sh *shard[T], h uint64, values []string) (P, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s := sh.loadLocked(h, values); s != nil {
		return s, nil
	}
	for i, val := range values {
		if err := v.fam.p.cfg.Limits.CheckLabelValue(v.fam.labelNames[i], val); err != nil {
			return nil, fmt.Errorf("%s %s: %w", v.fam.kind, v.fam.name, err)
		}
	}
	// The key owns a copy of the values; the labels point into it.
	key := joinValues(values)
	owned := make([]string, len(values))
	off := 0
	for i, val := range values {
		owned[i] = key[off : off+len(val)]
		off += len(val) + 1
	}
	s := v.add(owned)
	sh.storeLocked(h, key, s)
	return s, nil
}

// collect hands every series to the flusher.
func (v *vec[T, P]) collect(fl *flusher) {
	v.mu.Lock()
	all := v.all
	v.mu.Unlock()
	for _, s := range all {
		s.collect(fl)
	}
}

func must[T any](s *T, err error) *T {
	if err != nil {
		panic(err)
	}
	return s
}
