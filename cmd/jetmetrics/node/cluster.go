package node

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
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
// and every peer's newest snapshot. Redis is the source of truth; the view
// keeps, in one LRU of at most budget bytes, copies of peers' compressed
// chains (the full snapshot and the deltas on it, as stored) and decoded
// families per peer and version (as estimated by familyBytes). Every scrape
// asks Redis what each peer's stored chain is (Peers.ListSince) and reads
// only what its copy lacks: the new deltas, or the whole chain when the
// full snapshot changed, so a copy never outlives what it copies. A scrape
// decodes of each peer only the families it needs
// (streams.DecodeSnapshotChainFamilies), peers in parallel.
type clusterView struct {
	n      *Node
	budget int64

	// mu serialises scrapes' use of the heads and the cache, Redis reads
	// included: a scrape merges what it read into the copies it asked
	// with.
	mu         sync.Mutex
	heads      map[string]*peerHead
	cache      familyCache
	gauge      prometheus.Gauge
	chainGauge prometheus.Gauge
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

// chainCopy is a copy of a peer's stored chain.
type chainCopy struct {
	chain  aggregate.Chain
	data   []byte
	deltas [][]byte
}

func (c *chainCopy) bytes() int64 {
	n := int64(len(c.data)) + 64
	for i, d := range c.deltas {
		n += int64(len(d)) + int64(len(c.chain.Deltas[i])) + 48
	}
	return n
}

func newClusterView(n *Node) *clusterView {
	v := &clusterView{n: n, budget: n.cfg.ClusterCacheBytes, heads: map[string]*peerHead{}}
	if v.budget <= 0 {
		v.budget = DefaultClusterCacheBytes
	}
	v.cache.init()
	v.gauge = registerGauge(n.reg, prometheus.GaugeOpts{Name: "jetmetrics_cluster_cache_bytes",
		Help: "Estimated bytes the cluster view keeps of peers' snapshots: compressed chains and decoded families (at most --cluster.cache-bytes)."})
	v.chainGauge = registerGauge(n.reg, prometheus.GaugeOpts{Name: "jetmetrics_cluster_cache_chain_bytes",
		Help: "Bytes of peers' compressed snapshot chains the cluster view keeps, part of jetmetrics_cluster_cache_bytes."})
	return v
}

func registerGauge(reg prometheus.Registerer, opts prometheus.GaugeOpts) prometheus.Gauge {
	g := prometheus.NewGauge(opts)
	if err := reg.Register(g); err != nil {
		are, ok := err.(prometheus.AlreadyRegisteredError)
		if !ok {
			panic(err) // a name clash within the process: a bug
		}
		return are.ExistingCollector.(prometheus.Gauge)
	}
	return g
}

// CacheBytes is the estimated size of what the view keeps.
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
	v.mu.Lock()
	defer v.mu.Unlock()
	defer func() {
		v.gauge.Set(float64(v.cache.bytes))
		v.chainGauge.Set(float64(v.cache.chainBytes))
	}()
	// The copies asked with, whatever the cache evicts while the answers
	// are merged.
	held := map[string]*chainCopy{}
	snaps, err := peers.ListSince(ctx, func(node string) (aggregate.Chain, bool) {
		c, ok := v.cache.chain(node)
		if ok {
			held[node] = c
			return c.chain, true
		}
		return aggregate.Chain{}, false
	})
	if err != nil {
		return nil, nil, err
	}
	live := map[string]bool{}
	var stale []int // peers whose head is not of their version
	for i := range snaps {
		s := &snaps[i]
		if s.Node == local.Node {
			continue
		}
		live[s.Node] = true
		v.merge(s, held[s.Node])
		if h, ok := v.heads[s.Node]; !ok || h.version != s.Version || !h.generated.Equal(s.Generated) {
			v.cache.dropFamilies(s.Node)
			stale = append(stale, i)
		}
	}
	for node := range v.heads {
		if !live[node] {
			delete(v.heads, node)
		}
	}
	for _, node := range v.cache.peers() {
		if !live[node] {
			v.cache.dropPeer(node)
		}
	}
	fresh := make([]*peerHead, len(stale))
	parallel(len(stale), func(j int) { fresh[j] = v.decodeHead(&snaps[stale[j]]) })
	for j, i := range stale {
		v.heads[snaps[i].Node] = fresh[j]
	}
	kinds := []map[string]aggregate.Kind{localKinds(local)}
	for i := range snaps {
		if h := v.heads[snaps[i].Node]; live[snaps[i].Node] && h.err == nil {
			kinds = append(kinds, h.kinds)
		}
	}
	// The families every node's view of f depends on; nil: all.
	related := f.Related(kinds...)
	type peerWork struct {
		s       *aggregate.Snapshot
		h       *peerHead
		st      *aggregate.State
		missing map[string]bool
		dec     *aggregate.State
		err     error
	}
	var work []*peerWork
	for i := range snaps {
		s := &snaps[i]
		h := v.heads[s.Node]
		if !live[s.Node] || h.err != nil {
			continue
		}
		w := &peerWork{s: s, h: h}
		w.st, w.missing = v.cachedState(s, h, related)
		work = append(work, w)
	}
	parallel(len(work), func(i int) {
		w := work[i]
		if len(w.missing) > 0 {
			w.dec, w.err = decodeFamilies(w.s, w.missing)
		}
	})
	for _, w := range work {
		if w.err != nil {
			w.h.err = w.err
			v.n.log.Warn().Err(w.err).Str("peer", w.s.Node).Uint64("seq", w.s.Version).Msg("peer snapshot unreadable: the peer is left out of the cluster view")
			continue
		}
		v.addDecoded(w.s.Node, w.st, w.dec, w.missing)
		infos = append(infos, exposition.NodeInfo{Node: w.s.Node, Version: w.s.Version, Generated: w.s.Generated, AgeSeconds: now.Sub(w.s.Generated).Seconds()})
		states = append(states, w.st)
	}
	return infos, states, nil
}

// merge makes s whole from the copy held (what ListSince was asked with)
// and keeps a copy of the result.
func (v *clusterView) merge(s *aggregate.Snapshot, held *chainCopy) {
	if s.Since >= 0 && held != nil && len(held.deltas) == s.Since {
		s.Data = held.data
		s.Deltas = append(slices.Clip(held.deltas), s.Deltas...)
	}
	if s.Chain.Full == "" {
		v.cache.dropChain(s.Node) // unnamed: read whole every time
		return
	}
	v.cache.putChain(s.Node, &chainCopy{chain: s.Chain, data: s.Data, deltas: s.Deltas}, v.budget)
}

// parallel runs f(0..n-1), at most GOMAXPROCS at a time.
func parallel(n int, f func(i int)) {
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

func localKinds(st *aggregate.State) map[string]aggregate.Kind {
	m := make(map[string]aggregate.Kind, len(st.Families))
	for i := range st.Families {
		m[st.Families[i].Name] = st.Families[i].Kind
	}
	return m
}

// decodeHead decodes s's head (no family's fields). It touches nothing of
// the view's but its logger: peers' heads decode in parallel.
func (v *clusterView) decodeHead(s *aggregate.Snapshot) *peerHead {
	h := &peerHead{version: s.Version, generated: s.Generated}
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

// cachedState is s's state with the cached families of those related
// selects (all when nil), and the families it still needs decoded.
func (v *clusterView) cachedState(s *aggregate.Snapshot, h *peerHead, related map[string]bool) (*aggregate.State, map[string]bool) {
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
	return st, missing
}

// decodeFamilies decodes the families missing of s; it touches nothing of
// the view's.
func decodeFamilies(s *aggregate.Snapshot, missing map[string]bool) (*aggregate.State, error) {
	dump, err := streams.DecodeSnapshotChainFamilies(s.Data, s.Deltas, streams.SnapshotLimits{}, func(name string) bool { return missing[name] })
	if err != nil {
		return nil, err
	}
	return dump.PeerState()
}

// addDecoded adds to st, and caches, the families decoded for missing
// (dec; nil when none were).
func (v *clusterView) addDecoded(peer string, st, dec *aggregate.State, missing map[string]bool) {
	if dec != nil {
		for i := range dec.Families {
			fam := &dec.Families[i]
			if !missing[fam.Name] {
				continue
			}
			delete(missing, fam.Name)
			v.cache.put(peer, fam, v.budget)
			if len(fam.Series) > 0 {
				st.Families = append(st.Families, *fam)
			}
		}
	}
	// Described metrics without series: remembered as empty.
	for name := range missing {
		v.cache.put(peer, &aggregate.Family{Name: name}, v.budget)
	}
	slices.SortFunc(st.Families, func(a, b aggregate.Family) int { return strings.Compare(a.Name, b.Name) })
}

// familyCache is an LRU of decoded families by peer and name, each of the
// version the view's head of the peer names (a peer's families are dropped
// when its version changes), and of copies of peers' compressed chains
// (family "").
type familyCache struct {
	lru        *list.List // of *cacheEntry, most recent first
	byKey      map[cacheKey]*list.Element
	bytes      int64
	chainBytes int64
}

type cacheKey struct{ peer, family string }

type cacheEntry struct {
	key   cacheKey
	fam   *aggregate.Family
	chain *chainCopy
	bytes int64
}

func (c *familyCache) init() {
	c.lru, c.byKey = list.New(), map[cacheKey]*list.Element{}
}

func (c *familyCache) get(peer, family string) (*aggregate.Family, bool) {
	e, ok := c.byKey[cacheKey{peer, family}]
	if !ok || family == "" {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cacheEntry).fam, true
}

func (c *familyCache) chain(peer string) (*chainCopy, bool) {
	e, ok := c.byKey[cacheKey{peer, ""}]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cacheEntry).chain, true
}

// put keeps fam unless it alone is over budget, evicting the least
// recently used entries until the cache is within budget.
func (c *familyCache) put(peer string, fam *aggregate.Family, budget int64) {
	c.add(&cacheEntry{key: cacheKey{peer, fam.Name}, fam: fam, bytes: familyBytes(fam)}, budget)
}

// putChain keeps ch as peer's copy, as put does.
func (c *familyCache) putChain(peer string, ch *chainCopy, budget int64) {
	c.add(&cacheEntry{key: cacheKey{peer, ""}, chain: ch, bytes: ch.bytes()}, budget)
}

func (c *familyCache) add(ce *cacheEntry, budget int64) {
	if e, ok := c.byKey[ce.key]; ok {
		c.remove(e)
	}
	if ce.bytes > budget {
		return
	}
	c.byKey[ce.key] = c.lru.PushFront(ce)
	c.bytes += ce.bytes
	if ce.chain != nil {
		c.chainBytes += ce.bytes
	}
	for c.bytes > budget {
		c.remove(c.lru.Back())
	}
}

func (c *familyCache) remove(e *list.Element) {
	ce := c.lru.Remove(e).(*cacheEntry)
	delete(c.byKey, ce.key)
	c.bytes -= ce.bytes
	if ce.chain != nil {
		c.chainBytes -= ce.bytes
	}
}

func (c *familyCache) dropChain(peer string) {
	if e, ok := c.byKey[cacheKey{peer, ""}]; ok {
		c.remove(e)
	}
}

// dropFamilies drops peer's decoded families, keeping its chain's copy.
func (c *familyCache) dropFamilies(peer string) {
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		if k := e.Value.(*cacheEntry).key; k.peer == peer && k.family != "" {
			c.remove(e)
		}
		e = next
	}
}

func (c *familyCache) dropPeer(peer string) {
	c.dropFamilies(peer)
	c.dropChain(peer)
}

// peers lists the peers the cache holds anything of.
func (c *familyCache) peers() []string {
	seen := map[string]bool{}
	var out []string
	for k := range c.byKey {
		if !seen[k.peer] {
			seen[k.peer] = true
			out = append(out, k.peer)
		}
	}
	return out
}

// familyBytes estimates the memory a decoded family holds: its series'
// structs, keys, label slices and histogram counts, and the bytes of its
// distinct label strings (a peer's state shares them across series; an own
// state's are its keys').
func familyBytes(f *aggregate.Family) int64 {
	n := int64(unsafe.Sizeof(*f)) + int64(len(f.Name)) + 8*int64(len(f.Buckets)) + 64
	strs := map[*byte]bool{}
	for i := range f.Series {
		s := &f.Series[i]
		n += int64(unsafe.Sizeof(*s)) + int64(len(s.Key)) + int64(len(s.Labels))*int64(unsafe.Sizeof(series.Label{})) + 8*int64(len(s.Counts))
		if s.Key != "" {
			continue
		}
		for _, l := range s.Labels {
			for _, str := range [2]string{l.Name, l.Value} {
				if p := unsafe.StringData(str); len(str) > 0 && !strs[p] {
					strs[p] = true
					n += int64(len(str))
				}
			}
		}
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
