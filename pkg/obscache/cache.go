package obscache

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Entry is one stored result.
type Entry struct {
	// At is the observation time; Revision the lease revision.
	At       time.Time
	Revision uint64
	// Data is the encoded result, stored as given.
	Data []byte
	// Expires is when the entry leaves the cache.
	Expires time.Time
}

// Cache is the cache of one kind of target ("volume") under a prefix.
type Cache struct {
	rdb    redis.UniversalClient
	prefix string
}

//go:embed put.lua
var putSource string

var put = redis.NewScript(putSource)

// New returns the cache of kind's targets, in keys
// "<prefix>:obs:<kind>:{<token>}" (one key per target; the braces make the
// key its own hash slot in a Redis Cluster).
func New(rdb redis.UniversalClient, prefix, kind string) *Cache {
	return &Cache{rdb: rdb, prefix: prefix + ":obs:" + kind + ":"}
}

// Key is the Redis key of a target, by its subject token.
func (c *Cache) Key(token string) string { return c.prefix + "{" + token + "}" }

// padded renders n with 20 digits, so the script compares as strings
// what Lua's doubles cannot hold exactly.
func padded(n uint64) string {
	s := strconv.FormatUint(n, 10)
	const width = 20
	for len(s) < width {
		s = "0" + s
	}
	return s
}

// Put stores e for token if it is newer than the stored entry and not yet
// expired (now is the caller's clock); it reports whether it stored.
func (c *Cache) Put(ctx context.Context, token string, e Entry, now time.Time) (bool, error) {
	if e.At.UnixNano() < 0 {
		return false, fmt.Errorf("cache %s: observation time %s before 1970", token, e.At)
	}
	if !e.Expires.After(now) {
		return false, nil
	}
	n, err := put.Run(ctx, c.rdb, []string{c.Key(token)},
		padded(uint64(e.At.UnixNano())), padded(e.Revision), e.Data, e.Expires.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("cache %s: %w", token, err)
	}
	return n == 1, nil
}

// Get returns token's entry; ok is false when there is none (never
// stored, or expired).
func (c *Cache) Get(ctx context.Context, token string) (e Entry, ok bool, err error) {
	key := c.Key(token)
	pipe := c.rdb.Pipeline()
	fields := pipe.HMGet(ctx, key, "at", "rev", "data")
	ttl := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Entry{}, false, fmt.Errorf("cache %s: %w", token, err)
	}
	v := fields.Val()
	if len(v) != 3 || v[0] == nil || v[2] == nil {
		return Entry{}, false, nil
	}
	at, err1 := strconv.ParseInt(fmt.Sprint(v[0]), 10, 64)
	rev, err2 := strconv.ParseUint(fmt.Sprint(v[1]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Entry{}, false, fmt.Errorf("cache %s: malformed entry: %w", token, err)
	}
	e = Entry{At: time.Unix(0, at).UTC(), Revision: rev, Data: []byte(fmt.Sprint(v[2]))}
	if d := ttl.Val(); d > 0 {
		e.Expires = time.Now().Add(d)
	}
	return e, true, nil
}

// GetMany returns the entries of tokens that are in the cache, by token,
// in one round trip.
func (c *Cache) GetMany(ctx context.Context, tokens []string) (map[string]Entry, error) {
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(tokens))
	for i, tok := range tokens {
		cmds[i] = pipe.HMGet(ctx, c.Key(tok), "at", "rev", "data")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("cache: %w", err)
	}
	out := make(map[string]Entry, len(tokens))
	for i, tok := range tokens {
		v := cmds[i].Val()
		if len(v) != 3 || v[0] == nil || v[2] == nil {
			continue
		}
		at, err1 := strconv.ParseInt(fmt.Sprint(v[0]), 10, 64)
		rev, err2 := strconv.ParseUint(fmt.Sprint(v[1]), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("cache %s: malformed entry: %w", tok, err)
		}
		out[tok] = Entry{At: time.Unix(0, at).UTC(), Revision: rev, Data: []byte(fmt.Sprint(v[2]))}
	}
	return out, nil
}
