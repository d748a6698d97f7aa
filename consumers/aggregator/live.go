package aggregator

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// live is the aggregate as applied, held in memory beside Redis: loaded
// from Redis when a session starts and changed only by updates Redis has
// taken. The aggregator computes every new value here and writes it to
// Redis as an absolute value, and the node serves its aggregate from here
// without reading Redis.
//
// Each cell has two sets of values. The next values are the session's
// fold goroutine's alone: the values after every group built so far,
// including groups Redis has not applied yet. The committed values are
// those Redis holds; a group's commit sets them, under mu, once Redis has
// applied it, and State reads them, under mu, from any goroutine.
type live struct {
	node string
	// The fold goroutine's alone:
	// cells are every series by key, including those of groups not yet
	// committed (State reaches committed cells through families).
	cells map[string]*cell
	// dirty are the cells the group being built changes; fresh are those it
	// creates, joined to their families when it commits.
	dirty, fresh []*cell
	// rejected counts rejected updates by reason, every group built so far
	// included.
	rejected   map[string]uint64
	rejChanged bool

	mu sync.Mutex
	// Under mu:
	mark          uint64
	families      map[string]*family
	committedRejs map[string]uint64
	producers     map[string]uint64         // batch marks
	applied       map[string]uint64         // their times (aggregate.Marks.Applied)
	clock         uint64                    // aggregate.Marks.Clock
	metas         map[string]aggregate.Meta // every metric's, with series or not
	built         *aggregate.State          // the state at mark, once built
}

// family is one metric's series, in the order they arrived.
type family struct {
	name   string
	meta   aggregate.Meta
	cells  []*cell
	sorted bool
}

// cell is one series.
type cell struct {
	key    string
	labels []series.Label
	name   string // the metric's
	hist   bool   // a histogram's: counts and a sum
	// Committed, under live.mu: a counter's total, a gauge's value or a
	// histogram's sum; a histogram's per-bucket counts.
	value  float64
	counts []uint64
	// The fold goroutine's: the same after every group built so far, and
	// which of them the group being built changes (bit i for bucket i, the
	// last bit for every bucket from 63 up).
	next       float64
	nextCounts []uint64
	dirty      bool
	buckets    uint64
	// succ is the cell that came right after this one in the last message
	// that had both: producers send their series in the same order every
	// flush, so it is most often the next entry's, found without the map.
	succ *cell
}

// newLive holds the aggregate st with its marks and metadata, as loaded
// from Redis.
func newLive(st *aggregate.State, marks aggregate.Marks, metas map[string]aggregate.Meta) *live {
	l := &live{
		node:          st.Node,
		cells:         make(map[string]*cell, st.SeriesCount()),
		rejected:      maps.Clone(st.Rejected),
		mark:          st.Mark,
		families:      make(map[string]*family, len(st.Families)),
		committedRejs: st.Rejected,
		producers:     maps.Clone(marks.Producers),
		applied:       maps.Clone(marks.Applied),
		clock:         marks.Clock,
		metas:         maps.Clone(metas),
		built:         st,
	}
	if l.producers == nil {
		l.producers = map[string]uint64{}
	}
	if l.applied == nil {
		l.applied = map[string]uint64{}
	}
	if l.metas == nil {
		l.metas = map[string]aggregate.Meta{}
	}
	if l.rejected == nil {
		l.rejected = map[string]uint64{}
	}
	for i := range st.Families {
		f := &st.Families[i]
		fam := &family{name: f.Name, meta: f.Meta, cells: make([]*cell, len(f.Series)), sorted: true}
		l.families[f.Name] = fam
		for j := range f.Series {
			s := &f.Series[j]
			c := &cell{key: s.Key, labels: s.Labels, name: f.Name, hist: f.Kind == aggregate.Histogram, value: s.Value}
			if c.hist {
				c.value = s.Sum
				c.counts = slices.Clone(s.Counts)
				c.nextCounts = slices.Clone(s.Counts)
			}
			c.next = c.value
			fam.cells[j] = c
			l.cells[s.Key] = c
		}
	}
	return l
}

// series returns the cell of key, creating it (as part of the group being
// built) when new. name is its metric's, and meta the metric's metadata. A
// new cell keeps copies of key and name: the decoded message they come from
// is released once folded.
func (l *live) series(key, name string, meta aggregate.Meta) *cell {
	if c := l.cells[key]; c != nil {
		return c
	}
	key = strings.Clone(key)
	if strings.HasPrefix(key, name) { // as every key does: name{a="1"}
		name = key[:len(name)]
	} else {
		name = strings.Clone(name)
	}
	c := &cell{key: key, name: name, hist: meta.Kind == aggregate.Histogram}
	// The key was validated when decoded; parsing it back cannot fail.
	_, c.labels, _ = series.ParseKey(key, nil)
	if c.hist {
		c.counts = make([]uint64, len(meta.Buckets)+1)
		c.nextCounts = make([]uint64, len(meta.Buckets)+1)
	}
	l.cells[key] = c
	l.fresh = append(l.fresh, c)
	return c
}

// change marks c changed by the group being built; for a histogram, in
// bucket i (or none, for i < 0).
func (l *live) change(c *cell, bucket int) {
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
	if bucket >= 0 {
		c.buckets |= 1 << min(bucket, 63)
	}
}

// reject counts one rejected update under reason.
func (l *live) reject(reason string) {
	l.rejected[reason]++
	l.rejChanged = true
}

// group is a group of messages sealed: its update for Redis and what its
// commit makes visible.
type group struct {
	u       *aggregate.Update
	mark    uint64
	msgs    int
	pending uint64 // messages left in the stream after it
	changes []change
	counts  []uint64 // backs the changes' counts
	fresh   []*cell
	metas   []aggregate.Meta // of the fresh cells' metrics
	// producers and described are the batch marks and new metrics the
	// group writes; applied the marks' times, forgotten the producers
	// whose marks it deletes, and clock the stream time it reaches.
	producers map[string]uint64
	described map[string]aggregate.Meta
	applied   map[string]uint64
	forgotten []string
	clock     uint64
	// rejected is every rejection count after the group, nil when it
	// changes none.
	rejected map[string]uint64
}

func newGroup() *group {
	return &group{u: aggregate.NewUpdate(), producers: map[string]uint64{}, described: map[string]aggregate.Meta{}, applied: map[string]uint64{}}
}

// change is a cell's values after a group.
type change struct {
	c      *cell
	value  float64
	counts []uint64
}

// seal writes the group being built into g.u (every changed value,
// absolute) and g, and starts the next group. metas are every metric's.
func (l *live) seal(g *group, metas map[string]aggregate.Meta) {
	g.changes, g.counts, g.rejected = g.changes[:0], g.counts[:0], nil
	for _, c := range l.dirty {
		ch := change{c: c, value: c.next}
		c.dirty = false
		if !c.hist {
			g.u.SetValue(c.key, c.next)
			g.changes = append(g.changes, ch)
			continue
		}
		g.u.SetSum(c.key, c.next)
		for i, n := range c.nextCounts {
			if c.buckets&(1<<min(i, 63)) != 0 {
				g.u.SetBucket(c.key, i, n)
			}
		}
		c.buckets = 0
		start := len(g.counts)
		g.counts = append(g.counts, c.nextCounts...)
		ch.counts = g.counts[start:len(g.counts):len(g.counts)]
		g.changes = append(g.changes, ch)
	}
	if l.rejChanged {
		for r, n := range l.rejected {
			g.u.SetRejected(r, n)
		}
		g.rejected = maps.Clone(l.rejected)
	}
	g.fresh, g.metas = append(g.fresh[:0], l.fresh...), g.metas[:0]
	for _, c := range l.fresh {
		g.metas = append(g.metas, metas[c.name])
	}
	l.dirty, l.fresh, l.rejChanged = l.dirty[:0], l.fresh[:0], false
}

// commit makes g's values the committed state, once Redis holds them.
func (l *live) commit(g *group) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ch := range g.changes {
		ch.c.value = ch.value
		copy(ch.c.counts, ch.counts)
	}
	for i, c := range g.fresh {
		f := l.families[c.name]
		if f == nil {
			f = &family{name: c.name, meta: g.metas[i], sorted: true}
			l.families[c.name] = f
		}
		f.cells = append(f.cells, c)
		f.sorted = false
	}
	if g.rejected != nil {
		l.committedRejs = g.rejected
	}
	for _, p := range g.forgotten {
		delete(l.producers, p)
		delete(l.applied, p)
	}
	maps.Copy(l.producers, g.producers)
	maps.Copy(l.applied, g.applied)
	l.clock = g.clock
	maps.Copy(l.metas, g.described)
	l.mark = g.mark
	l.built = nil
}

// State is the committed aggregate. It is built once per mark and must not
// be changed.
func (l *live) State() *aggregate.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stateLocked()
}

// Held is the committed aggregate with what Redis holds beside it: what a
// snapshot carries, without reading Redis.
func (l *live) Held() aggregate.Held {
	l.mu.Lock()
	defer l.mu.Unlock()
	return aggregate.Held{State: l.stateLocked(), Producers: maps.Clone(l.producers), Applied: maps.Clone(l.applied), Clock: l.clock, Metas: maps.Clone(l.metas)}
}

func (l *live) stateLocked() *aggregate.State {
	if l.built != nil {
		return l.built
	}
	names := make([]string, 0, len(l.families))
	buckets := 0
	for name, f := range l.families {
		names = append(names, name)
		if f.meta.Kind == aggregate.Histogram {
			buckets += len(f.cells) * (len(f.meta.Buckets) + 1)
		}
	}
	slices.Sort(names)
	// One backing array for every histogram's counts.
	counts := make([]uint64, 0, buckets)
	st := &aggregate.State{Node: l.node, Mark: l.mark, Families: make([]aggregate.Family, len(names)), Rejected: l.committedRejs}
	for i, name := range names {
		f := l.families[name]
		if !f.sorted {
			slices.SortFunc(f.cells, func(a, b *cell) int { return strings.Compare(a.key, b.key) })
			f.sorted = true
		}
		out := make([]aggregate.Series, len(f.cells))
		for j, c := range f.cells {
			out[j] = aggregate.Series{Key: c.key, Labels: c.labels, Value: c.value}
			if c.hist {
				out[j].Value, out[j].Sum = 0, c.value
				n := len(counts)
				counts = append(counts, c.counts...)
				out[j].Counts = counts[n:len(counts):len(counts)]
			}
		}
		st.Families[i] = aggregate.Family{Name: name, Meta: f.meta, Series: out}
	}
	l.built = st
	return st
}
