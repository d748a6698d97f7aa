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

// Peers keeps the newest snapshot of every node in the cluster, each with
// its time to live, in Redis. Several nodes sharing one Redis may store the
// same peers: every write is a compare on the version, so they agree.
type Peers struct {
	rdb    redis.UniversalClient
	prefix string
	index  string
}

// NewPeers returns the peer store under keyPrefix (default
// DefaultKeyPrefix).
func NewPeers(rdb redis.UniversalClient, keyPrefix string) *Peers {
	if keyPrefix == "" {
		keyPrefix = DefaultKeyPrefix
	}
	return &Peers{rdb: rdb, prefix: keyPrefix, index: keyPrefix + ":peers"}
}

func (p *Peers) key(node string) string { return p.prefix + ":{peer:" + node + "}:snapshot" }

// Snapshot is one node's stored snapshot: the encoded data as received and
// what describes it.
type Snapshot struct {
	Node      string
	Version   uint64
	Generated time.Time
	Expires   time.Time
	Data      []byte
}

//go:embed peer_put.lua
var peerPutSource string

var peerPutScript = redis.NewScript(peerPutSource)

// Put stores s unless the stored snapshot of its node is newer. An equal
// version is taken (an idle node re-publishes the same version to stay
// alive). accepted reports whether it was stored. The snapshot expires at
// s.Expires.
func (p *Peers) Put(ctx context.Context, s Snapshot) (accepted bool, err error) {
	ttl := time.Until(s.Expires)
	if ttl <= 0 {
		return false, nil
	}
	n, err := peerPutScript.Run(ctx, p.rdb, []string{p.key(s.Node)},
		strconv.FormatUint(s.Version, 10), strconv.FormatInt(s.Generated.UnixMilli(), 10),
		strconv.FormatInt(s.Expires.UnixMilli(), 10), ttl.Milliseconds()+1, s.Data).Int()
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

//go:embed peer_remove.lua
var peerRemoveSource string

var peerRemoveScript = redis.NewScript(peerRemoveSource)

// Remove forgets node's snapshot unless the stored one is newer than
// version.
func (p *Peers) Remove(ctx context.Context, node string, version uint64) error {
	n, err := peerRemoveScript.Run(ctx, p.rdb, []string{p.key(node)}, strconv.FormatUint(version, 10)).Int()
	if err != nil {
		return fmt.Errorf("remove snapshot of %s: %w", node, err)
	}
	if n == 1 {
		if err := p.rdb.ZRem(ctx, p.index, node).Err(); err != nil {
			return fmt.Errorf("remove snapshot of %s: %w", node, err)
		}
	}
	return nil
}

// List returns every live snapshot, ordered by node name; withData false
// leaves Data empty and reads much less.
func (p *Peers) List(ctx context.Context, withData bool) ([]Snapshot, error) {
	now := time.Now().UnixMilli()
	if err := p.rdb.ZRemRangeByScore(ctx, p.index, "-inf", "("+strconv.FormatInt(now, 10)).Err(); err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	names, err := p.rdb.ZRange(ctx, p.index, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	cmds := make([]*redis.SliceCmd, len(names))
	_, err = p.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, n := range names {
			data := "data"
			if !withData {
				data = "version" // keep the shape: four fields
			}
			cmds[i] = pl.HMGet(ctx, p.key(n), "version", "generated", "expires", data)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	out := make([]Snapshot, 0, len(names))
	for i, n := range names {
		v := cmds[i].Val()
		if len(v) != 4 || v[0] == nil || v[3] == nil {
			continue // expired between the index and the read
		}
		version, _ := strconv.ParseUint(fmt.Sprint(v[0]), 10, 64)
		gen, _ := strconv.ParseInt(fmt.Sprint(v[1]), 10, 64)
		exp, _ := strconv.ParseInt(fmt.Sprint(v[2]), 10, 64)
		var data string
		if withData {
			data, _ = v[3].(string)
		}
		out = append(out, Snapshot{Node: n, Version: version, Generated: time.UnixMilli(gen), Expires: time.UnixMilli(exp), Data: []byte(data)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}
