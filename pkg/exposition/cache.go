package exposition

import (
	"runtime"
	"slices"
	"sync"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
)

// segment is the rendered series of one family of one node, in chunks of
// a few hundred kilobytes: plain bytes for identity responses, deflate
// segments for gzip ones.
type segment struct {
	chunks []chunk
	// plainLen is the length of the plain rendering, whichever is kept.
	plainLen int64
	// retained is what the segment holds in memory.
	retained int64
}

type chunk struct {
	plain []byte
	z     zsegment
}

// chunkBytes is the plain size a family is cut into for rendering and
// compressing in parallel: large enough that a chunk costs far more than
// handing it to a worker, small enough to spread a family over the cores.
const chunkBytes = 256 << 10

// segKey identifies a segment: a node's family at a version, rendered one
// way.
type segKey struct {
	node      string
	mark      uint64
	family    string
	nodeLabel bool
	format    format
	gzip      bool
}

// seriesOf is who a node's segments belong to: a node seen with or without
// its label.
type seriesOf struct {
	node      string
	nodeLabel bool
}

type cacheEntry struct {
	ready chan struct{} // closed once seg is rendered
	seg   segment
}

// segmentCache keeps the segments of the newest version of each node seen
// and drops a node's older ones when a newer version comes.
type segmentCache struct {
	max int64

	mu      sync.Mutex
	entries map[segKey]*cacheEntry
	newest  map[seriesOf]uint64
	bytes   int64
}

func newSegmentCache(maxBytes int64) *segmentCache {
	return &segmentCache{max: maxBytes, entries: map[segKey]*cacheEntry{}, newest: map[seriesOf]uint64{}}
}

// acquire returns the entry of k. When render is true the caller renders
// it and then calls release; otherwise it waits for the entry's ready.
func (c *segmentCache) acquire(k segKey) (e *cacheEntry, render bool) {
	e = &cacheEntry{ready: make(chan struct{})}
	if c.max < 0 || k.mark == 0 {
		return e, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.entries[k]; ok {
		return cur, false
	}
	who := seriesOf{k.node, k.nodeLabel}
	switch newest, seen := c.newest[who]; {
	case seen && k.mark < newest:
		return e, true // an older version than one cached: render, keep nothing
	case !seen || k.mark > newest:
		c.newest[who] = k.mark
		for old, oe := range c.entries {
			if old.node == k.node && old.nodeLabel == k.nodeLabel && old.mark < k.mark {
				delete(c.entries, old)
				if isReady(oe) {
					c.bytes -= oe.seg.retained
				}
			}
		}
	}
	c.entries[k] = e
	return e, true
}

// release marks e rendered and accounts for it, dropping it from the
// cache when it does not fit.
func (c *segmentCache) release(k segKey, e *cacheEntry) {
	c.mu.Lock()
	if c.entries[k] == e {
		if c.bytes+e.seg.retained > c.max {
			delete(c.entries, k)
		} else {
			c.bytes += e.seg.retained
		}
	}
	close(e.ready)
	c.mu.Unlock()
}

func isReady(e *cacheEntry) bool {
	select {
	case <-e.ready:
		return true
	default:
		return false
	}
}

// renderTask renders series [from, to) of a family into chunk c.
type renderTask struct {
	fam      *aggregate.Family
	node     string
	from, to int
	c        *chunk
}

// bufPool holds render buffers, *[]byte.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2*chunkBytes); return &b }}

// renderSegments gives every aggregate member of fams its segment, from
// the cache or rendered now, all cores sharing the work.
func (h *Handler) renderSegments(f format, gz bool, fams []outFamily) {
	type pending struct {
		k segKey
		e *cacheEntry
	}
	var mine, theirs []pending
	var tasks []renderTask
	for i := range fams {
		for j := range fams[i].members {
			m := &fams[i].members[j]
			node := ""
			if h.cfg.NodeLabel {
				node = m.state.Node
			}
			k := segKey{node: m.state.Node, mark: m.state.Mark, family: m.fam.Name, nodeLabel: h.cfg.NodeLabel, format: f, gzip: gz}
			e, render := h.cache.acquire(k)
			m.seg = &e.seg
			if !render {
				theirs = append(theirs, pending{k, e})
				continue
			}
			mine = append(mine, pending{k, e})
			tasks = h.splitFamily(tasks, f, m.fam, node, &e.seg)
		}
	}
	h.runTasks(f, gz, tasks)
	for _, p := range mine {
		s := p.e.seg
		for i := range s.chunks {
			c := &s.chunks[i]
			if gz {
				p.e.seg.plainLen += c.z.n
				p.e.seg.retained += int64(cap(c.z.data))
			} else {
				p.e.seg.plainLen += int64(len(c.plain))
				p.e.seg.retained += int64(cap(c.plain))
			}
		}
		h.cache.release(p.k, p.e)
	}
	for _, p := range theirs {
		<-p.e.ready
	}
}

// splitFamily cuts a family into tasks of about chunkBytes each, sized
// from its first series, and gives seg one chunk per task.
func (h *Handler) splitFamily(tasks []renderTask, f format, fam *aggregate.Family, node string, seg *segment) []renderTask {
	n := len(fam.Series)
	if n == 0 {
		return tasks
	}
	probe := newFamilyRenderer(f, fam, node).appendSeries(nil, 0, 1)
	per := max(1, chunkBytes/max(1, len(probe)))
	seg.chunks = make([]chunk, (n+per-1)/per)
	for i := range seg.chunks {
		tasks = append(tasks, renderTask{fam: fam, node: node, from: i * per, to: min(n, (i+1)*per), c: &seg.chunks[i]})
	}
	return tasks
}

// runTasks renders the tasks on up to GOMAXPROCS goroutines.
func (h *Handler) runTasks(f format, gz bool, tasks []renderTask) {
	if len(tasks) == 0 {
		return
	}
	work := make(chan *renderTask)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(tasks)) {
		wg.Go(func() {
			bp := bufPool.Get().(*[]byte)
			var r *familyRenderer
			for t := range work {
				if r == nil || r.fam != t.fam || r.node != t.node {
					r = newFamilyRenderer(f, t.fam, t.node)
				}
				*bp = r.appendSeries((*bp)[:0], t.from, t.to)
				if gz {
					t.c.z = h.z.compress(make([]byte, 0, len(*bp)/8), *bp)
				} else {
					t.c.plain = slices.Clone(*bp)
				}
			}
			bufPool.Put(bp)
		})
	}
	for i := range tasks {
		work <- &tasks[i]
	}
	close(work)
	wg.Wait()
}
