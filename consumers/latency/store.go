package latency

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed read.lua
var readSource string

//go:embed put.lua
var putSource string

var (
	readScript = redis.NewScript(readSource)
	putScript  = redis.NewScript(putSource)
)

// Store reads and writes the services' latency states in Redis.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewStore returns the store of keys "<prefix>:latency:{<token>}"; the
// braces make each key its own hash slot in a Redis Cluster.
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix + ":latency:"}
}

// Key is the Redis key of a service, by its subject token.
func (s *Store) Key(token string) string { return s.prefix + "{" + token + "}" }

// Entry is one service's stored state.
type Entry struct {
	// Type is the key's Redis type: "hash", or "none" when there is no
	// state yet; anything else is a corrupt key.
	Type string
	// RawSeq is the stored sequence as read; the compare-and-set compares
	// it verbatim, so that even an unparsable one can be replaced.
	RawSeq string
	// Seq is the stream sequence of the last result folded in.
	Seq uint64
	// State is pkg/latency's encoded tracker.
	State []byte
	// Node is the node that probed the last result folded in.
	Node string
	// At is when the last result folded in was observed.
	At time.Time
}

// Exists reports whether there is a key at all.
func (e Entry) Exists() bool { return e.Type != "none" }

// errBadEntry says why an entry's bookkeeping cannot be used.
var errBadEntry = errors.New("latency state key")

// check reports what is wrong with an existing entry's key type and
// sequence; the state bytes are pkg/latency's to judge.
func (e Entry) check() error {
	switch {
	case e.Type != "hash":
		return fmt.Errorf("%w is a %s, not a hash", errBadEntry, e.Type)
	case e.RawSeq == "":
		return fmt.Errorf("%w has no seq", errBadEntry)
	}
	return nil
}

func parseEntry(v any) (Entry, error) {
	row, ok := v.([]any)
	if !ok || len(row) == 0 {
		return Entry{}, fmt.Errorf("read latency state: unexpected reply %T", v)
	}
	str := func(i int) string {
		if i < len(row) {
			if s, ok := row[i].(string); ok {
				return s
			}
		}
		return ""
	}
	e := Entry{Type: str(0), RawSeq: str(1), State: []byte(str(2)), Node: str(3)}
	if e.Type != "hash" {
		e.RawSeq, e.State = "!"+e.Type, nil
		if e.Type == "none" {
			e.RawSeq = ""
		}
		return e, nil
	}
	if e.RawSeq != "" {
		if n, err := strconv.ParseUint(e.RawSeq, 10, 64); err == nil {
			e.Seq = n
		} else {
			e.Seq = 0
		}
	}
	if ns, err := strconv.ParseInt(str(4), 10, 64); err == nil && ns > 0 {
		e.At = time.Unix(0, ns).UTC()
	}
	return e, nil
}

// seqValid reports whether the stored sequence is a number.
func (e Entry) seqValid() bool {
	_, err := strconv.ParseUint(e.RawSeq, 10, 64)
	return err == nil
}

// Get reads one service's entry.
func (s *Store) Get(ctx context.Context, token string) (Entry, error) {
	v, err := readScript.Run(ctx, s.rdb, []string{s.Key(token)}).Result()
	if err != nil {
		return Entry{}, fmt.Errorf("read latency state of %s: %w", token, err)
	}
	return parseEntry(v)
}

// GetMany reads several services' entries in one round trip, by token.
func (s *Store) GetMany(ctx context.Context, tokens []string) (map[string]Entry, error) {
	if len(tokens) == 0 {
		return map[string]Entry{}, nil
	}
	if err := readScript.Load(ctx, s.rdb).Err(); err != nil {
		return nil, fmt.Errorf("load latency read script: %w", err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(tokens))
	for i, tok := range tokens {
		cmds[i] = readScript.EvalSha(ctx, pipe, []string{s.Key(tok)})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read latency states: %w", err)
	}
	out := make(map[string]Entry, len(tokens))
	for i, tok := range tokens {
		e, err := parseEntry(cmds[i].Val())
		if err != nil {
			return nil, err
		}
		out[tok] = e
	}
	return out, nil
}

// Put writes e as token's entry if the key still holds what old was read
// as; it reports whether it wrote.
func (s *Store) Put(ctx context.Context, token string, old Entry, e Entry) (bool, error) {
	n, err := putScript.Run(ctx, s.rdb, []string{s.Key(token)},
		old.RawSeq, strconv.FormatUint(e.Seq, 10), e.State, e.Node, strconv.FormatInt(e.At.UnixNano(), 10)).Int()
	if err != nil {
		return false, fmt.Errorf("write latency state of %s: %w", token, err)
	}
	return n == 1, nil
}
