package aggregate

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// DefaultKeyPrefix is the first part of every Redis key.
const DefaultKeyPrefix = "jetmetrics"

// Store is one node's aggregate in Redis.
type Store struct {
	rdb  redis.UniversalClient
	node string
	keys keys
}

// NewStore returns the store of node's aggregate under keyPrefix (default
// DefaultKeyPrefix).
func NewStore(rdb redis.UniversalClient, keyPrefix, node string) *Store {
	if keyPrefix == "" {
		keyPrefix = DefaultKeyPrefix
	}
	return &Store{rdb: rdb, node: node, keys: newKeys(keyPrefix, node)}
}

// Node is the node whose aggregate this is.
func (s *Store) Node() string { return s.node }

// Marks is the position of the aggregate: the last applied stream sequence
// of the node and, per producer id, the last applied batch sequence.
type Marks struct {
	Stream    uint64
	Producers map[string]uint64
	// Torn reports a guard left by an apply or restore that Redis loaded
	// only in part: the aggregate mixes states and cannot be trusted. The
	// caller resets it (Reset) and rebuilds it from a checkpoint.
	Torn bool
}

const streamField = "stream"
const producerFieldPrefix = "p:"

// guardFieldPrefix starts the guard field an apply (Store.Apply) and a
// restore (restore.lua) hold while they run.
const guardFieldPrefix = "open:"

// Marks reads the aggregate's position.
func (s *Store) Marks(ctx context.Context) (Marks, error) {
	all, err := s.rdb.HGetAll(ctx, s.keys.mark).Result()
	if err != nil {
		return Marks{}, fmt.Errorf("read marks of %s: %w", s.node, err)
	}
	m, err := parseMarks(all)
	if err != nil {
		return Marks{}, fmt.Errorf("read marks of %s: %w", s.node, err)
	}
	return m, nil
}

func parseMarks(all map[string]string) (Marks, error) {
	m := Marks{Producers: make(map[string]uint64, len(all))}
	for f, v := range all {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return Marks{}, fmt.Errorf("field %s: %w", f, err)
		}
		switch {
		case strings.HasPrefix(f, guardFieldPrefix):
			m.Torn = true
		case f == streamField:
			m.Stream = n
		case strings.HasPrefix(f, producerFieldPrefix):
			m.Producers[f[len(producerFieldPrefix):]] = n
		}
	}
	return m, nil
}

// StreamMark reads only the aggregate's stream mark: its version. Every
// change to the aggregate moves it, so an unchanged mark means an unchanged
// aggregate.
func (s *Store) StreamMark(ctx context.Context) (uint64, error) {
	v, err := s.rdb.HGet(ctx, s.keys.mark, streamField).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read mark of %s: %w", s.node, err)
	}
	return v, nil
}

// Metas reads every metric's metadata.
func (s *Store) Metas(ctx context.Context) (map[string]Meta, error) {
	all, err := s.rdb.HGetAll(ctx, s.keys.meta).Result()
	if err != nil {
		return nil, fmt.Errorf("read metadata of %s: %w", s.node, err)
	}
	return decodeMetas(all)
}

func decodeMetas(all map[string]string) (map[string]Meta, error) {
	metas := make(map[string]Meta, len(all))
	for name, raw := range all {
		var m Meta
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return nil, fmt.Errorf("metadata of %s: %w", name, err)
		}
		metas[name] = m
	}
	return metas, nil
}

// Rejected reads the count of rejected updates by reason.
func (s *Store) Rejected(ctx context.Context) (map[string]uint64, error) {
	all, err := s.rdb.HGetAll(ctx, s.keys.rejected).Result()
	if err != nil {
		return nil, fmt.Errorf("read rejections of %s: %w", s.node, err)
	}
	out := make(map[string]uint64, len(all))
	for k, v := range all {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("rejections of %s: field %s: %w", s.node, k, err)
		}
		out[k] = n
	}
	return out, nil
}

// Reset deletes the whole aggregate, marks included, in one step: for an
// aggregate found torn, before it is rebuilt from a checkpoint.
func (s *Store) Reset(ctx context.Context) error {
	if err := s.rdb.Del(ctx, s.keys.mark, s.keys.series, s.keys.meta, s.keys.rejected).Err(); err != nil {
		return fmt.Errorf("reset aggregate of %s: %w", s.node, err)
	}
	return nil
}

// ErrConflict reports that the stored stream mark was not the expected one:
// another applier moved it, or the store was rolled back or wiped. The
// caller re-reads the marks and resumes from there.
var ErrConflict = errors.New("stream mark moved")

// Apply writes u in one atomic step if the stored stream mark is u.Expect,
// moving it to u.Mark. It returns ErrConflict (wrapped, with the stored
// mark) when the mark differs, and changes nothing then.
//
// The step is a MULTI/EXEC under WATCH of the mark hash: every writer of
// the aggregate (an apply, a restore, a reset) changes that hash, so EXEC
// fails if anything wrote between the check and the writes. Plain HSETs in
// a transaction cost Redis about half the CPU of the same writes made from
// a script. A Redis out of memory refuses the whole EXEC (every write is a
// deny-OOM command), so no write fails half way.
//
// A guard field is written first and deleted last: if Redis ever loads a
// prefix of the transaction (Redis 7.0 can apply a torn transaction's
// fragment on a later AOF load), the guard is left behind and Marks
// reports the aggregate torn.
func (s *Store) Apply(ctx context.Context, u *Update) error {
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		cur, err := tx.HGet(ctx, s.keys.mark, streamField).Uint64()
		switch {
		case errors.Is(err, redis.Nil):
			cur = 0
		case err != nil:
			return err
		}
		if cur != u.Expect {
			return fmt.Errorf("%w: expected %d, store has %d", ErrConflict, u.Expect, cur)
		}
		guard := guardFieldPrefix + nonce()
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, s.keys.mark, guard, u.Mark)
			for i, key := range [...]string{secMark: s.keys.mark, secSeries: s.keys.series, secMeta: s.keys.meta, secRejected: s.keys.rejected} {
				for pairs := u.sections[i]; len(pairs) > 0; {
					n := min(len(pairs), 2*hsetPairs)
					p.HSet(ctx, key, pairs[:n]...)
					pairs = pairs[n:]
				}
			}
			p.HSet(ctx, s.keys.mark, streamField, u.Mark)
			p.HDel(ctx, s.keys.mark, guard)
			return nil
		})
		if errors.Is(err, redis.TxFailedErr) {
			return fmt.Errorf("%w: the mark hash changed while applying", ErrConflict)
		}
		return err
	}, s.keys.mark)
	if err != nil {
		return fmt.Errorf("apply up to seq %d: %w", u.Mark, err)
	}
	return nil
}

// hsetPairs is the most field/value pairs one HSET of Apply carries.
const hsetPairs = 1000

// build groups series-hash fields into families.
func (st *State) build(metas map[string]Meta, fields map[string]string) error {
	fams := make(map[string]*Family, len(metas))
	idx := make(map[string]int, len(fields))
	var labels []series.Label
	for field, raw := range fields {
		key, bucket, hist := splitField(field)
		name, lbs, err := series.ParseKey(key, labels[:0])
		if err != nil {
			return err
		}
		meta, ok := metas[name]
		if !ok || hist != (meta.Kind == Histogram) || (hist && bucket > len(meta.Buckets)) {
			continue // not described (yet) or not of its kind: never expose it half-known
		}
		f := fams[name]
		if f == nil {
			f = &Family{Name: name, Meta: meta}
			fams[name] = f
		}
		i, ok := idx[key]
		if !ok {
			sr := Series{Key: key, Labels: append([]series.Label(nil), lbs...)}
			if hist {
				sr.Counts = make([]uint64, len(meta.Buckets)+1)
			}
			f.Series = append(f.Series, sr)
			i = len(f.Series) - 1
			idx[key] = i
		}
		sr := &f.Series[i]
		switch {
		case !hist:
			sr.Value, err = parseFloat(raw)
		case bucket < 0:
			sr.Sum, err = parseFloat(raw)
		default:
			sr.Counts[bucket], err = strconv.ParseUint(raw, 10, 64)
		}
		if err != nil {
			return fmt.Errorf("series field %s: %w", field, err)
		}
		labels = lbs
	}
	st.Families = make([]Family, 0, len(fams))
	for _, f := range fams {
		sort.Slice(f.Series, func(i, j int) bool { return f.Series[i].Key < f.Series[j].Key })
		st.Families = append(st.Families, *f)
	}
	sort.Slice(st.Families, func(i, j int) bool { return st.Families[i].Name < st.Families[j].Name })
	return nil
}

// parseFloat parses a stored number. One past float64's range (earlier
// versions added in Redis, in long double) reads as ±Inf rather than
// breaking the scrape.
func parseFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && errors.Is(err, strconv.ErrRange) {
		return f, nil
	}
	return f, err
}
