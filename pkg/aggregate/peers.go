package aggregate

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
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
	now := time.Now().UnixMilli()
	if err := p.trim(ctx, now); err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	names, err := p.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: p.index, Start: strconv.FormatInt(now, 10), Stop: "+inf", ByScore: true}).Result()
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	if withData {
		return p.listData(ctx, names)
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

// listData reads the snapshots of names whole: the full one and its
// deltas.
func (p *Peers) listData(ctx context.Context, names []string) ([]Snapshot, error) {
	cmds := make([]*redis.MapStringStringCmd, len(names))
	_, err := p.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = pl.HGetAll(ctx, p.key(n))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	out := make([]Snapshot, 0, len(names))
	for i, n := range names {
		h := cmds[i].Val()
		data, ok := h["data"]
		if !ok {
			continue // expired between the index and the read
		}
		s := Snapshot{Node: n, Version: parseUint(h["version"]), Generated: parseMilli(h["generated"]), Expires: parseMilli(h["expires"]), Data: []byte(data)}
		chain, _ := strconv.Atoi(h["deltas"])
		for k := 1; k <= chain; k++ {
			d, ok := h["d"+strconv.Itoa(k)]
			if !ok {
				return nil, fmt.Errorf("list peers: snapshot of %s lacks delta %d of %d", n, k, chain)
			}
			s.Deltas = append(s.Deltas, []byte(d))
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
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
