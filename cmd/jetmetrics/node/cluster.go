package node

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// DefaultClusterCacheBytes is the default budget of the cluster view's
// decoded peers' families (--cluster.cache-bytes).
const DefaultClusterCacheBytes = 256 << 20

// clusterView assembles the cluster's states: this node's live aggregate
// and every peer's newest snapshot. The peers' snapshots stay compressed
// in Redis, the source of truth; a scrape decodes of each only the
// families it needs (streams.DecodeSnapshotChainFamilies), and the view
// keeps decoded families, per peer and version, in an LRU cache of at most
// budget bytes (as estimated by familyBytes).
type clusterView struct {
	n      *Node
	budget int64

	mu    sync.Mutex
	heads map[string]*peerHead
	cache familyCache
	gauge prometheus.Gauge
}

// peerHead is what every scrape needs of a peer at one version: its
// metrics' kinds and its rejections, or why its snapshot is unreadable
// (logged once per version).
type peerHead struct {
	version   uint64
	generated time.Time
	kinds     map[string]aggregate.Kind
	rejected  map[string]uint64
	err       error
}

func newClusterView(n *Node) *clusterView {
	v := &clusterView{n: n, budget: n.cfg.ClusterCacheBytes, heads: map[string]*peerHead{}}
	if v.budget <= 0 {
		v.budget = DefaultClusterCacheBytes
	}
	v.cache.init()
	v.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "jetmetrics_cluster_cache_bytes",
		Help: "Estimated bytes of peers' decoded families the cluster view keeps (at most --cluster.cache-bytes)."})
	if err := n.reg.Register(v.gauge); err != nil {
		are, ok := err.(prometheus.AlreadyRegisteredError)
		if !ok {
			panic(err) // a name clash within the process: a bug
		}
		v.gauge = are.ExistingCollector.(prometheus.Gauge)
	}
	return v
}

// CacheBytes is the estimated size of the decoded families the view keeps.
func (v *clusterView) CacheBytes() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cache.bytes
}

func (v *clusterView) states(ctx context.Context, f exposition.Filter) ([]exposition.NodeInfo, []*aggregate.State, error) {
	local, err := v.n.loadLocal(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Peers' snapshots stored before a restart or a Redis rollback can be
	// older than ones served before: wait for the stream's newest.
	if b := v.n.broadcast.Load(); b == nil || !b.CaughtUp() {
		return nil, nil, errors.New("peer snapshots unavailable: catching up with the snapshot stream")
	}
	now := time.Now()
	infos := []exposition.NodeInfo{{Node: local.Node, Version: local.Mark, Generated: now, Local: true}}
	states := []*aggregate.State{local}
	peers := v.n.peers.Load()
	if peers == nil {
		return infos, states, nil
	}
	snaps, err := peers.List(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	defer func() { v.gauge.Set(float64(v.cache.bytes)) }()
	live := map[string]bool{}
	heads := make([]*peerHead, len(snaps))
	kinds := []map[string]aggregate.Kind{localKinds(local)}
	for i, s := range snaps {
		if s.Node == local.Node {
			continue
		}
		live[s.Node] = true
		heads[i] = v.head(s)
		if heads[i].err == nil {
			kinds = append(kinds, heads[i].kinds)
		}
	}
	for node := range v.heads {
		if !live[node] {
			delete(v.heads, node)
			v.cache.dropPeer(node)
		}
	}
	// The families every node's view of f depends on; nil: all.
	related := f.Related(kinds...)
	for i, s := range snaps {
		h := heads[i]
		if h == nil || h.err != nil {
			continue
		}
		st, err := v.peerState(s, h, related)
		if err != nil {
			h.err = err
			v.n.log.Warn().Err(err).Str("peer", s.Node).Uint64("seq", s.Version).Msg("peer snapshot unreadable: the peer is left out of the cluster view")
			continue
		}
		infos = append(infos, exposition.NodeInfo{Node: s.Node, Version: s.Version, Generated: s.Generated, AgeSeconds: now.Sub(s.Generated).Seconds()})
		states = append(states, st)
	}
	return infos, states, nil
}

func localKinds(st *aggregate.State) map[string]aggregate.Kind {
	m := make(map[string]aggregate.Kind, len(st.Families))
	for i := range st.Families {
		m[st.Families[i].Name] = st.Families[i].Kind
	}
	return m
}

// head returns s's head, decoding it (no family's fields) when the view
// has none of its version.
func (v *clusterView) head(s aggregate.Snapshot) *peerHead {
	if h, ok := v.heads[s.Node]; ok && h.version == s.Version && h.generated.Equal(s.Generated) {
		return h
	}
	v.cache.dropPeer(s.Node)
	h := &peerHead{version: s.Version, generated: s.Generated}
	v.heads[s.Node] = h
	dump, err := streams.DecodeSnapshotChainFamilies(s.Data, s.Deltas, streams.SnapshotLimits{}, func(string) bool { return false })
	var metas map[string]aggregate.Meta
	if err == nil {
		metas, err = dump.Metas()
	}
	if err != nil {
		h.err = err
		v.n.log.Warn().Err(err).Str("peer", s.Node).Uint64("seq", s.Version).Msg("peer snapshot unreadable: the peer is left out of the cluster view")
		return h
	}
	h.kinds = make(map[string]aggregate.Kind, len(metas))
	for name, m := range metas {
		h.kinds[name] = m.Kind
	}
	h.rejected = make(map[string]uint64, len(dump.Rejected))
	for r, n := range dump.Rejected {
		h.rejected[strings.Clone(r)], _ = strconv.ParseUint(n, 10, 64)
	}
	return h
}

// peerState is s's state with the families related selects (all when
// nil): cached ones as they are, the others decoded together and cached.
func (v *clusterView) peerState(s aggregate.Snapshot, h *peerHead, related map[string]bool) (*aggregate.State, error) {
	st := &aggregate.State{Node: s.Node, Mark: s.Version, Rejected: h.rejected}
	var missing map[string]bool
	for name := range h.kinds {
		if related != nil && !related[name] {
			continue
		}
		if fam, ok := v.cache.get(s.Node, name); ok {
			if len(fam.Series) > 0 {
				st.Families = append(st.Families, *fam)
			}
			continue
		}
		if missing == nil {
			missing = map[string]bool{}
		}
		missing[name] = true
	}
	if len(missing) > 0 {
		dump, err := streams.DecodeSnapshotChainFamilies(s.Data, s.Deltas, streams.SnapshotLimits{}, func(name string) bool { return missing[name] })
		if err != nil {
			return nil, err
		}
		dec, err := dump.State()
		if err != nil {
			return nil, err
		}
		for i := range dec.Families {
			fam := &dec.Families[i]
			if !missing[fam.Name] {
				continue
			}
			delete(missing, fam.Name)
			v.cache.put(s.Node, fam, v.budget)
			if len(fam.Series) > 0 {
				st.Families = append(st.Families, *fam)
			}
		}
		// Described metrics without series: remembered as empty.
		for name := range missing {
			v.cache.put(s.Node, &aggregate.Family{Name: name}, v.budget)
		}
	}
	slices.SortFunc(st.Families, func(a, b aggregate.Family) int { return strings.Compare(a.Name, b.Name) })
	return st, nil
}

// familyCache is an LRU of decoded families by peer and name, each of the
// version the view's head of the peer names (a peer's entries are dropped
// when its version changes).
type familyCache struct {
	lru   *list.List // of *cacheEntry, most recent first
	byKey map[cacheKey]*list.Element
	bytes int64
}

type cacheKey struct{ peer, family string }

type cacheEntry struct {
	key   cacheKey
	fam   *aggregate.Family
	bytes int64
}

func (c *familyCache) init() {
	c.lru, c.byKey = list.New(), map[cacheKey]*list.Element{}
}

func (c *familyCache) get(peer, family string) (*aggregate.Family, bool) {
	e, ok := c.byKey[cacheKey{peer, family}]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cacheEntry).fam, true
}

// put keeps fam unless it alone is over budget, evicting the least
// recently used families until the cache is within budget.
func (c *familyCache) put(peer string, fam *aggregate.Family, budget int64) {
	k := cacheKey{peer, fam.Name}
	if e, ok := c.byKey[k]; ok {
		c.remove(e)
	}
	n := familyBytes(fam)
	if n > budget {
		return
	}
	c.byKey[k] = c.lru.PushFront(&cacheEntry{key: k, fam: fam, bytes: n})
	c.bytes += n
	for c.bytes > budget {
		c.remove(c.lru.Back())
	}
}

func (c *familyCache) remove(e *list.Element) {
	ce := c.lru.Remove(e).(*cacheEntry)
	delete(c.byKey, ce.key)
	c.bytes -= ce.bytes
}

func (c *familyCache) dropPeer(peer string) {
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		if e.Value.(*cacheEntry).key.peer == peer {
			c.remove(e)
		}
		e = next
	}
}

// familyBytes estimates the memory a decoded family holds: its series'
// structs, keys (which their labels' strings share), label slices and
// histogram counts.
func familyBytes(f *aggregate.Family) int64 {
	n := int64(unsafe.Sizeof(*f)) + int64(len(f.Name)) + 8*int64(len(f.Buckets)) + 64
	for i := range f.Series {
		s := &f.Series[i]
		n += int64(unsafe.Sizeof(*s)) + int64(len(s.Key)) + int64(len(s.Labels))*int64(unsafe.Sizeof(series.Label{})) + 8*int64(len(s.Counts))
	}
	return n
}

// serveCluster serves /metrics/cluster: every live node, each series with
// node="…", filtered by ?node= and ?name= (both repeatable), in the
// negotiated exposition format or, with ?format=json, as JSON.
func (v *clusterView) serveCluster(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	q := r.URL.Query()
	// The filter applies after the view is decided from every node's
	// state, so a filtered view serves what the whole one does of them:
	// the states hold the families the names depend on (Filter.Related).
	f := exposition.Filter{Nodes: q["node"], Names: q["name"]}
	infos, states, err := v.states(ctx, f)
	if err != nil {
		http.Error(w, "cluster view: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if len(f.Nodes) > 0 {
		kept := infos[:0:0]
		for _, in := range infos {
			for _, n := range f.Nodes {
				if in.Node == n {
					kept = append(kept, in)
				}
			}
		}
		infos = kept
	}
	switch q.Get("format") {
	case "json":
		w.Header().Set("Content-Type", "application/json")
		if err := v.n.clusterExpo.WriteJSON(w, infos, states, f); err != nil {
			v.n.log.Debug().Err(err).Msg("write cluster json")
		}
		return
	case "":
	default:
		http.Error(w, fmt.Sprintf("format %q: want json, or none for the Prometheus formats by content negotiation", q.Get("format")), http.StatusBadRequest)
		return
	}
	v.n.clusterExpo.ServeView(w, r, states, f)
}
