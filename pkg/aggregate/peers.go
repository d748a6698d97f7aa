package aggregate

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPeerForgetAfter is how long a peer store remembers a peer whose
// last snapshot expired, when NewPeers is given no other duration.
const DefaultPeerForgetAfter = 24 * time.Hour

// Peers keeps the newest snapshot of every node in the cluster, each with
// its time to live, in Redis, and a record of every peer it has seen: the
// snapshot data expires at its TTL, the record (version, generation time,
// expiry) stays until the peer is removed on purpose or forgetAfter has
// passed since its last snapshot expired. Several nodes sharing one Redis
// may store the same peers: every write is a compare on the version, so
// they agree.
type Peers struct {
	rdb         redis.UniversalClient
	prefix      string
	index       string
	forgetAfter time.Duration
}

// PeersOption configures a peer store.
type PeersOption func(*Peers)

// ForgetAfter makes the store remember a peer for d after its last
// snapshot expired (default DefaultPeerForgetAfter; d <= 0 keeps it).
func ForgetAfter(d time.Duration) PeersOption {
	return func(p *Peers) {
		if d > 0 {
			p.forgetAfter = d
		}
	}
}

// NewPeers returns the peer store under keyPrefix (default
// DefaultKeyPrefix).
func NewPeers(rdb redis.UniversalClient, keyPrefix string, opts ...PeersOption) *Peers {
	if keyPrefix == "" {
		keyPrefix = DefaultKeyPrefix
	}
	p := &Peers{rdb: rdb, prefix: keyPrefix, index: keyPrefix + ":peers", forgetAfter: DefaultPeerForgetAfter}
	for _, o := range opts {
		o(p)
	}
	return p
}

// The snapshot and the record of a peer share a hash tag, so one script
// writes both in Redis Cluster.
func (p *Peers) key(node string) string    { return p.prefix + ":{peer:" + node + "}:snapshot" }
func (p *Peers) record(node string) string { return p.prefix + ":{peer:" + node + "}:seen" }

// Snapshot is one node's stored snapshot: the encoded data as received and
// what describes it.
type Snapshot struct {
	Node      string
	Version   uint64
	Generated time.Time
	Expires   time.Time
	// Data is the full snapshot as received, and Deltas the incremental
	// ones stored on it since, oldest first (PutDelta).
	Data   []byte
	Deltas [][]byte
	// Chain names what is stored; Since, from ListSince only, is how many
	// deltas of it the reader's copy holds, Data and Deltas holding
	// only the rest (-1: read whole).
	Chain Chain
	Since int
}

// Peer is what the store remembers of a node.
type Peer struct {
	Node string
	// Version, Generated and Expires describe the newest snapshot seen;
	// Version is a removal's, once Removed.
	Version            uint64
	Generated, Expires time.Time
	// Live reports that the snapshot has not expired yet.
	Live bool
	// Removed reports that the node left on purpose (a graceful stop or an
	// operator's forget); its record is kept so the deltas it applied,
	// up to Version, are told apart from those nobody will apply.
	Removed bool
}

//go:embed peer_put.lua
var peerPutSource string

var peerPutScript = redis.NewScript(peerPutSource)

// Put stores s unless the stored snapshot of its node is newer. An equal
// version is taken (an idle node re-publishes the same version to stay
// alive). accepted reports whether it was stored. The snapshot expires at
// s.Expires; the record of the node stays forgetAfter longer.
func (p *Peers) Put(ctx context.Context, s Snapshot) (accepted bool, err error) {
	ttl := time.Until(s.Expires)
	if ttl <= 0 {
		return false, nil
	}
	n, err := peerPutScript.Run(ctx, p.rdb, []string{p.key(s.Node), p.record(s.Node)},
		strconv.FormatUint(s.Version, 10), strconv.FormatInt(s.Generated.UnixMilli(), 10),
		strconv.FormatInt(s.Expires.UnixMilli(), 10), ttl.Milliseconds()+1, s.Data,
		(ttl+p.forgetAfter).Milliseconds()+1).Int()
	if err != nil {
		return false, fmt.Errorf("store snapshot of %s: %w", s.Node, err)
	}
	if n != 1 {
		return false, nil
	}
	if err := p.rdb.ZAdd(ctx, p.index, redis.Z{Score: float64(s.Expires.UnixMilli()), Member: s.Node}).Err(); err != nil {
		return true, fmt.Errorf("index snapshot of %s: %w", s.Node, err)
	}
	return true, nil
}

//go:embed peer_delta.lua
var peerDeltaSource string

var peerDeltaScript = redis.NewScript(peerDeltaSource)

// MaxPeerDeltas bounds the deltas stored on one full snapshot: past it a
// delta is refused as having no base, so a peer publishing deltas only
// is asked for a full one rather than grow its chain without bound.
const MaxPeerDeltas = 64

// DeltaResult is what PutDelta did.
type DeltaResult int

// Results of PutDelta.
const (
	// DeltaStored: stored on its base.
	DeltaStored DeltaResult = iota
	// DeltaStale: the stored snapshot is newer, or is this one.
	DeltaStale
	// DeltaNoBase: the stored snapshot is not the delta's base (missing,
	// another version, another incarnation of the node) or its chain is
	// full: nothing was stored, and a full snapshot is needed.
	DeltaNoBase
)

// PutDelta stores the incremental snapshot s (its Data) onto the stored
// snapshot of its node only when that is exactly its base: version
// baseVersion generated at baseGenerated. It never stores a delta
// anywhere else.
func (p *Peers) PutDelta(ctx context.Context, s Snapshot, baseVersion uint64, baseGenerated time.Time) (DeltaResult, error) {
	ttl := time.Until(s.Expires)
	if ttl <= 0 {
		return DeltaStale, nil
	}
	n, err := peerDeltaScript.Run(ctx, p.rdb, []string{p.key(s.Node), p.record(s.Node)},
		strconv.FormatUint(s.Version, 10), strconv.FormatInt(s.Generated.UnixMilli(), 10),
		strconv.FormatInt(s.Expires.UnixMilli(), 10), ttl.Milliseconds()+1, s.Data,
		(ttl+p.forgetAfter).Milliseconds()+1,
		strconv.FormatUint(baseVersion, 10), strconv.FormatInt(baseGenerated.UnixMilli(), 10), MaxPeerDeltas).Int()
	if err != nil {
		return DeltaNoBase, fmt.Errorf("store snapshot delta of %s: %w", s.Node, err)
	}
	switch n {
	case 1:
	case 0:
		return DeltaStale, nil
	default:
		return DeltaNoBase, nil
	}
	if err := p.rdb.ZAdd(ctx, p.index, redis.Z{Score: float64(s.Expires.UnixMilli()), Member: s.Node}).Err(); err != nil {
		return DeltaStored, fmt.Errorf("index snapshot of %s: %w", s.Node, err)
	}
	return DeltaStored, nil
}

//go:embed peer_remove.lua
var peerRemoveSource string

var peerRemoveScript = redis.NewScript(peerRemoveSource)

// Remove forgets node's snapshot, and marks its record removed, unless the
// stored snapshot is newer than version: the node left on purpose. removed
// reports whether it did. The removal's version only decides; it is never
// stored: the record keeps the version of the newest snapshot seen, so a
// removal with an absurd version neither shows nor blocks anything, and
// the next snapshot of the node, of any version, is stored as the first.
func (p *Peers) Remove(ctx context.Context, node string, version uint64) (removed bool, err error) {
	n, err := peerRemoveScript.Run(ctx, p.rdb, []string{p.key(node), p.record(node)},
		strconv.FormatUint(version, 10), p.forgetAfter.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("remove snapshot of %s: %w", node, err)
	}
	return n == 1, nil
}

// Expire drops node's snapshot, whose time to live has passed, and keeps
// its record: the node is down, not gone.
func (p *Peers) Expire(ctx context.Context, node string) error {
	if err := p.rdb.Del(ctx, p.key(node)).Err(); err != nil {
		return fmt.Errorf("expire snapshot of %s: %w", node, err)
	}
	return nil
}

// List returns every live snapshot, ordered by node name; withData false
// leaves Data empty and reads much less.
func (p *Peers) List(ctx context.Context, withData bool) ([]Snapshot, error) {
	if withData {
		return p.ListSince(ctx, nil)
	}
	names, err := p.liveNames(ctx)
	if err != nil {
		return nil, err
	}
	cmds := make([]*redis.SliceCmd, len(names))
	_, err = p.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = pl.HMGet(ctx, p.key(n), "version", "generated", "expires")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	out := make([]Snapshot, 0, len(names))
	for i, n := range names {
		v := cmds[i].Val()
		if len(v) != 3 || v[0] == nil {
			continue // expired between the index and the read
		}
		out = append(out, Snapshot{Node: n, Version: parseUint(v[0]), Generated: parseMilli(v[1]), Expires: parseMilli(v[2])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// liveNames trims the index and returns the peers whose snapshot has not
// expired by its score.
func (p *Peers) liveNames(ctx context.Context) ([]string, error) {
	now := time.Now().UnixMilli()
	if err := p.trim(ctx, now); err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	names, err := p.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: p.index, Start: strconv.FormatInt(now, 10), Stop: "+inf", ByScore: true}).Result()
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	return names, nil
}

// Chain names what is stored of a peer, or what a copy of it holds: the
// full snapshot and the deltas stored on it since, oldest first, each
// named by its version, generation time and length. A full snapshot
// stored by a version of the store that kept no names has Full "", and
// is never read in part.
type Chain struct {
	Full   string
	Deltas []string
}

// ListSince is List with data for a reader that keeps copies of peers'
// stored snapshots: have names the copy it holds of a node's (nil: none).
// A snapshot whose stored chain still starts with the copy (the same full
// snapshot and the same deltas, by name) comes with Data nil and only the
// deltas stored after the copy's, Since being how many the copy holds;
// any other comes whole, Since -1. Every snapshot's Chain names all that
// is stored. Each snapshot is read in one Redis command, so the parts
// read agree with each other whatever is written meanwhile.
func (p *Peers) ListSince(ctx context.Context, have func(node string) (Chain, bool)) ([]Snapshot, error) {
	names, err := p.liveNames(ctx)
	if err != nil {
		return nil, err
	}
	// What is stored: cheap, and decides what to read.
	heads := make([]*redis.SliceCmd, len(names))
	_, err = p.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, n := range names {
			heads[i] = pl.HMGet(ctx, p.key(n), "full", "deltas")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	type read struct {
		name  string
		have  Chain
		n     int // deltas stored, when partial
		part  *redis.SliceCmd
		whole *redis.MapStringStringCmd
	}
	reads := make([]read, 0, len(names))
	for i, name := range names {
		v := heads[i].Val()
		if len(v) != 2 {
			continue
		}
		r := read{name: name}
		full, _ := v[0].(string)
		r.n, _ = strconv.Atoi(fmt.Sprint(v[1]))
		if have != nil && full != "" {
			if c, ok := have(name); ok && c.Full == full && len(c.Deltas) <= r.n {
				r.have = c
			}
		}
		reads = append(reads, r)
	}
	partial := func(r *read) bool { return r.have.Full != "" }
	_, err = p.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i := range reads {
			r := &reads[i]
			if !partial(r) {
				r.whole = pl.HGetAll(ctx, p.key(r.name))
				continue
			}
			fields := []string{"version", "generated", "expires", "full", "deltas"}
			if k := len(r.have.Deltas); k > 0 {
				fields = append(fields, "v"+strconv.Itoa(k))
			}
			for d := len(r.have.Deltas) + 1; d <= r.n; d++ {
				fields = append(fields, "v"+strconv.Itoa(d), "d"+strconv.Itoa(d))
			}
			r.part = pl.HMGet(ctx, p.key(r.name), fields...)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	out := make([]Snapshot, 0, len(reads))
	var again []string // changed between the two reads: read whole
	for i := range reads {
		r := &reads[i]
		if !partial(r) {
			s, ok, err := p.parseWhole(r.name, r.whole.Val())
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, s)
			}
			continue
		}
		s, ok := parsePart(r.name, r.have, r.n, r.part.Val())
		if !ok {
			again = append(again, r.name)
			continue
		}
		out = append(out, s)
	}
	if len(again) > 0 {
		cmds := make([]*redis.MapStringStringCmd, len(again))
		_, err = p.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for i, n := range again {
				cmds[i] = pl.HGetAll(ctx, p.key(n))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("list peers: %w", err)
		}
		for i, n := range again {
			s, ok, err := p.parseWhole(n, cmds[i].Val())
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, s)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// parseWhole is the snapshot of node in h, its stored hash; ok is false
// when there is none (expired between the index and the read).
func (p *Peers) parseWhole(node string, h map[string]string) (s Snapshot, ok bool, err error) {
	data, ok := h["data"]
	if !ok {
		return s, false, nil
	}
	s = Snapshot{Node: node, Version: parseUint(h["version"]), Generated: parseMilli(h["generated"]), Expires: parseMilli(h["expires"]),
		Data: []byte(data), Since: -1, Chain: Chain{Full: h["full"]}}
	chain, _ := strconv.Atoi(h["deltas"])
	for k := 1; k <= chain; k++ {
		d, ok := h["d"+strconv.Itoa(k)]
		if !ok {
			return s, false, fmt.Errorf("list peers: snapshot of %s lacks delta %d of %d", node, k, chain)
		}
		s.Deltas = append(s.Deltas, []byte(d))
		name := h["v"+strconv.Itoa(k)]
		if name == "" {
			// A delta stored by a store that kept no names: the
			// chain cannot be read in part.
			s.Chain.Full = ""
		}
		s.Chain.Deltas = append(s.Chain.Deltas, name)
	}
	return s, true, nil
}

// parsePart is the snapshot of node read in part onto the copy have, n
// deltas being stored; ok is false when what was read is no longer that
// (written over between the reads).
func parsePart(node string, have Chain, n int, v []any) (s Snapshot, ok bool) {
	str := func(i int) (string, bool) {
		if i >= len(v) {
			return "", false
		}
		x, ok := v[i].(string)
		return x, ok
	}
	version, ok1 := str(0)
	full, ok2 := str(3)
	deltas, _ := str(4)
	if !ok1 || !ok2 || full != have.Full || deltas != strconv.Itoa(n) && !(n == 0 && deltas == "") {
		return s, false
	}
	i := 5
	k := len(have.Deltas)
	if k > 0 {
		if name, ok := str(i); !ok || name != have.Deltas[k-1] {
			return s, false
		}
		i++
	}
	s = Snapshot{Node: node, Version: parseUint(version), Generated: parseMilli(v[1]), Expires: parseMilli(v[2]), Since: k,
		Chain: Chain{Full: full, Deltas: append(slices.Clip(have.Deltas), make([]string, 0, n-k)...)}}
	for ; k < n; i += 2 {
		name, ok1 := str(i)
		d, ok2 := str(i + 1)
		if !ok1 || !ok2 || name == "" {
			return s, false
		}
		s.Chain.Deltas = append(s.Chain.Deltas, name)
		s.Deltas = append(s.Deltas, []byte(d))
		k++
	}
	return s, true
}

// Known returns every peer the store remembers, live, down or removed,
// ordered by node name.
func (p *Peers) Known(ctx context.Context) ([]Peer, error) {
	now := time.Now()
	if err := p.trim(ctx, now.UnixMilli()); err != nil {
		return nil, fmt.Errorf("list known peers: %w", err)
	}
	names, err := p.rdb.ZRange(ctx, p.index, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list known peers: %w", err)
	}
	recs := make([]*redis.SliceCmd, len(names))
	live := make([]*redis.IntCmd, len(names))
	_, err = p.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, n := range names {
			recs[i] = pl.HMGet(ctx, p.record(n), "version", "generated", "expires", "removed")
			live[i] = pl.Exists(ctx, p.key(n))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list known peers: %w", err)
	}
	out := make([]Peer, 0, len(names))
	for i, n := range names {
		v := recs[i].Val()
		if len(v) != 4 || v[0] == nil {
			continue // forgotten between the index and the read
		}
		pr := Peer{Node: n, Version: parseUint(v[0]), Generated: parseMilli(v[1]), Expires: parseMilli(v[2]), Removed: v[3] == "1"}
		pr.Live = !pr.Removed && live[i].Val() == 1 && pr.Expires.After(now)
		out = append(out, pr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// trim drops from the index the peers whose last snapshot expired more
// than forgetAfter ago; their records expire in Redis at the same time.
func (p *Peers) trim(ctx context.Context, nowMilli int64) error {
	return p.rdb.ZRemRangeByScore(ctx, p.index, "-inf", "("+strconv.FormatInt(nowMilli-p.forgetAfter.Milliseconds(), 10)).Err()
}

func parseUint(v any) uint64 {
	n, _ := strconv.ParseUint(fmt.Sprint(v), 10, 64)
	return n
}

func parseMilli(v any) time.Time {
	if v == nil {
		return time.Time{}
	}
	n, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64)
	return time.UnixMilli(n)
}
