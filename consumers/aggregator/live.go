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
// One goroutine, the session's apply loop, changes a live; State may be
// called from any goroutine. The apply loop works on each cell's next
// values while it builds a group and commits them under mu once Redis has
// applied the group; State reads only committed values, under mu.
type live struct {
	node string
	// cells are every series by key. The apply loop's alone: State reaches
	// cells through families.
	cells map[string]*cell
	// touched are the cells the group being built changes; fresh are those
	// it creates, joined to their families at commit.
	touched, fresh []*cell
	// rejected counts rejected updates by reason, the group's included.
	rejected   map[string]uint64
	rejTouched bool

	mu sync.Mutex
	// Under mu:
	mark          uint64
	families      map[string]*family
	committedRejs map[string]uint64
	built         *aggregate.State // the state at mark, once built
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
	// The apply loop's: the values after the group being built.
	next       float64
	nextCounts []uint64
	touched    bool
}

// newLive holds the aggregate st, as loaded from Redis.
func newLive(st *aggregate.State) *live {
	l := &live{
		node:          st.Node,
		cells:         make(map[string]*cell, st.SeriesCount()),
		rejected:      maps.Clone(st.Rejected),
		mark:          st.Mark,
		families:      make(map[string]*family, len(st.Families)),
		committedRejs: st.Rejected,
		built:         st,
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
				c.nextCounts = make([]uint64, len(s.Counts))
			}
			fam.cells[j] = c
			l.cells[s.Key] = c
		}
	}
	return l
}

// series returns the cell of key, creating it (as part of the group being
// built) when new. meta is its metric's.
func (l *live) series(key, name string, meta aggregate.Meta) *cell {
	if c := l.cells[key]; c != nil {
		return c
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

// touch readies c's next values for a change in the group being built.
func (l *live) touch(c *cell) {
	if c.touched {
		return
	}
	c.touched = true
	c.next = c.value
	copy(c.nextCounts, c.counts)
	l.touched = append(l.touched, c)
}

// reject counts one rejected update under reason.
func (l *live) reject(reason string) {
	l.rejected[reason]++
	l.rejTouched = true
}

// writes adds the group's changes to u: every touched value, absolute.
func (l *live) writes(u *aggregate.Update) {
	for _, c := range l.touched {
		if !c.hist {
			u.SetValue(c.key, c.next)
			continue
		}
		u.SetSum(c.key, c.next)
		for i, n := range c.nextCounts {
			if n != c.counts[i] {
				u.SetBucket(c.key, i, n)
			}
		}
	}
	if l.rejTouched {
		for r, n := range l.rejected {
			u.SetRejected(r, n)
		}
	}
}

// commit makes the group's values the committed state at mark, once Redis
// holds them.
func (l *live) commit(mark uint64, metas map[string]aggregate.Meta) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.touched {
		c.value = c.next
		copy(c.counts, c.nextCounts)
		c.touched = false
	}
	for _, c := range l.fresh {
		f := l.families[c.name]
		if f == nil {
			f = &family{name: c.name, meta: metas[c.name], sorted: true}
			l.families[c.name] = f
		}
		f.cells = append(f.cells, c)
		f.sorted = false
	}
	if l.rejTouched {
		l.committedRejs = maps.Clone(l.rejected)
	}
	l.touched, l.fresh, l.rejTouched = l.touched[:0], l.fresh[:0], false
	l.mark = mark
	l.built = nil
}

// State is the committed aggregate. It is built once per mark and must not
// be changed.
func (l *live) State() *aggregate.State {
	l.mu.Lock()
	defer l.mu.Unlock()
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
