package aggregate

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unsafe"

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
	// Incarnation identifies the delta stream the stream mark counts in:
	// its creation time (Unix ns), 0 before one was recorded. A stream
	// deleted and created again restarts its sequences, so a mark is only
	// meaningful with the incarnation it was taken in.
	Incarnation uint64
	// Base is the stream mark at which the current incarnation started:
	// its stream sequence s is mark Base+s. The mark is the aggregate's
	// version and never goes down, across incarnations too.
	Base uint64
	// Applied is, per producer, the stream time (Unix ms) of the message
	// that last moved its batch mark; a producer whose mark was written
	// before times were recorded has none. The aggregator prunes the marks
	// of producers idle beyond the replay horizon by it.
	Applied map[string]uint64
	// Clock is the stream time (Unix ms) of the last message applied, 0
	// before one was recorded.
	Clock uint64
}

// Seq is the delta stream sequence the stream mark stands for in the
// current incarnation.
func (m Marks) Seq() uint64 { return m.Stream - m.Base }

const (
	streamField      = "stream"
	incarnationField = "inc"
	baseField        = "base"
	clockField       = "clock"
)
const (
	producerFieldPrefix = "p:"
	appliedFieldPrefix  = "t:"
)

// guardFieldPrefix starts the guard field an apply (Store.Apply) and a
// restore (Store.Restore) hold while they run.
const guardFieldPrefix = "open:"

// torn reports whether the mark hash all holds the guard of an apply or
// restore that Redis loaded only in part. A restore's guard (value 0)
// always is one. An apply's guard holds the mark the apply was writing:
// while the stored mark is below it, the apply's writes may be ahead of
// the mark. At or above it, a complete apply after it in the log moved the
// mark there, writing the same absolute values as the torn one (Redis 7.0
// can load a torn transaction's fragment from the middle of an AOF it has
// already repaired once, and the replay that followed the first repair
// comes after it): the guard is a harmless leftover.
func torn(all map[string]string) bool {
	mark, _ := strconv.ParseUint(all[streamField], 10, 64)
	for f, v := range all {
		if !strings.HasPrefix(f, guardFieldPrefix) {
			continue
		}
		if g, err := strconv.ParseUint(v, 10, 64); err != nil || g == 0 || g > mark {
			return true
		}
	}
	return false
}

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
	m := Marks{Producers: make(map[string]uint64, len(all)/2), Applied: make(map[string]uint64, len(all)/2)}
	for f, v := range all {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return Marks{}, fmt.Errorf("field %s: %w", f, err)
		}
		switch {
		case strings.HasPrefix(f, guardFieldPrefix):
		case f == streamField:
			m.Stream = n
		case f == incarnationField:
			m.Incarnation = n
		case f == baseField:
			m.Base = n
		case f == clockField:
			m.Clock = n
		case strings.HasPrefix(f, producerFieldPrefix):
			m.Producers[f[len(producerFieldPrefix):]] = n
		case strings.HasPrefix(f, appliedFieldPrefix):
			m.Applied[f[len(appliedFieldPrefix):]] = n
		}
	}
	m.Torn = torn(all)
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
		cur, inc, err := readMark(ctx, tx, s.keys.mark)
		if err != nil {
			return err
		}
		if cur != u.Expect || inc != u.Incarnation {
			return fmt.Errorf("%w: expected %d of incarnation %d, store has %d of %d", ErrConflict, u.Expect, u.Incarnation, cur, inc)
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
			for fields := u.forget; len(fields) > 0; {
				n := min(len(fields), hsetPairs)
				p.HDel(ctx, s.keys.mark, fields[:n]...)
				fields = fields[n:]
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

// readMark reads the stream mark and its incarnation (0 when unset).
func readMark(ctx context.Context, tx *redis.Tx, key string) (mark, inc uint64, err error) {
	vs, err := tx.HMGet(ctx, key, streamField, incarnationField).Result()
	if err != nil {
		return 0, 0, err
	}
	var out [2]uint64
	for i, v := range vs {
		if s, ok := v.(string); ok {
			if out[i], err = strconv.ParseUint(s, 10, 64); err != nil {
				return 0, 0, fmt.Errorf("mark field %d: %w", i, err)
			}
		}
	}
	return out[0], out[1], nil
}

// Rebase records that the aggregate at stream mark expect.Stream, of
// incarnation expect.Incarnation, continues in the delta stream
// incarnation inc at base (Marks.Base), in one atomic step that leaves the
// aggregate and the producer marks as they are. It returns ErrConflict
// (wrapped) and changes nothing when the stored mark or incarnation is
// not expect's.
func (s *Store) Rebase(ctx context.Context, expect Marks, inc, base uint64) error {
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		cur, curInc, err := readMark(ctx, tx, s.keys.mark)
		if err != nil {
			return err
		}
		if cur != expect.Stream || curInc != expect.Incarnation {
			return fmt.Errorf("%w: expected %d of incarnation %d, store has %d of %d", ErrConflict, expect.Stream, expect.Incarnation, cur, curInc)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, s.keys.mark, streamField, expect.Stream, incarnationField, inc, baseField, base)
			return nil
		})
		if errors.Is(err, redis.TxFailedErr) {
			return fmt.Errorf("%w: the mark hash changed while rebasing", ErrConflict)
		}
		return err
	}, s.keys.mark)
	if err != nil {
		return fmt.Errorf("rebase %s at seq %d on incarnation %d: %w", s.node, expect.Stream, inc, err)
	}
	return nil
}

// hsetPairs is the most field/value pairs one HSET of Apply carries.
const hsetPairs = 1000

// build groups series-hash fields into families.
//
// It runs for every changed peer snapshot a /metrics/cluster scrape reads,
// some 230k fields for 100k series, so it keeps the work per field small.
// Reading the fields in map order, which is random, would cost a cache
// miss per field, and sorting the series a string comparison per step:
// build reads them in memory order instead (inMemoryOrder). A decoded
// snapshot's strings lie in the order json.Marshal wrote them, sorted, so
// memory is read front to back, and the series come out nearly sorted,
// which the sort then only checks.
//
// A counter's or gauge's field is its series. Only a histogram's series
// spreads over several fields, one per bucket plus the sum, which follow
// one another in memory order; a map finds its series again when they do
// not. Keys are parsed once per series, and the state's keys, labels and
// counts are carved from a few large allocations rather than one per
// series.
//
// The state copies the keys it keeps rather than holding the dump's
// strings: a decoded snapshot's strings share one buffer
// (streams.DecodeSnapshot), which a cached state would otherwise keep
// alive whole, values and bucket fields included. Without keys (keepKeys
// false, Dump.PeerState) it keeps no key at all, and copies each distinct
// label name and value once, which the series that share it share.
func (st *State) build(metas map[string]Meta, fields map[string]string, keepKeys bool) error {
	type seriesFields struct {
		key string // the state's copy; without keys, the dump's
		// val is a counter's or gauge's value, or a histogram's sum.
		val float64
		// counts is where the histogram series' counts start in its
		// family's counts.
		counts int
	}
	type family struct {
		meta      Meta
		described bool
		series    []seriesFields
		counts    []uint64       // histograms: len(meta.Buckets)+1 per series
		hist      map[string]int // histograms: series key → index in series
	}
	fams := make(map[string]*family, len(metas))
	var (
		keys     keyArena
		last     string  // name of the last field's family
		f        *family // and that family
		lastHist int     // index in f.series of the last histogram field's series
		nSeries  int
	)
	ordered := inMemoryOrder(fields)
	for n, fd := range ordered {
		key, bucket, hist := splitField(fd.name)
		fam := key
		if i := strings.IndexByte(key, '{'); i >= 0 {
			fam = key[:i] // the metric name, if the key parses
		}
		if f == nil || fam != last {
			if f = fams[fam]; f == nil {
				meta, ok := metas[fam]
				f = &family{meta: meta, described: ok}
				fams[fam] = f
			}
			last, lastHist = fam, -1
		}
		if !f.described || hist != (f.meta.Kind == Histogram) || (hist && bucket > len(f.meta.Buckets)) {
			// Not described (yet) or not of its kind: never expose it
			// half-known. A malformed key still fails the state.
			if _, _, err := series.ParseKey(key, nil); err != nil {
				return err
			}
			continue
		}
		var err error
		if !hist {
			// The field is the key, and so this series' only field.
			var v float64
			v, err = parseFloat(fd.value)
			if keepKeys {
				key = keys.add(key, len(ordered)-n)
			}
			f.series = append(grow(f.series), seriesFields{key: key, val: v})
			nSeries++
		} else {
			i := lastHist
			if i < 0 || f.series[i].key != key {
				var ok bool
				if i, ok = f.hist[key]; !ok {
					if f.hist == nil {
						f.hist = map[string]int{}
					}
					i = len(f.series)
					k := key
					if keepKeys {
						k = keys.add(key, len(ordered)-n)
					}
					f.series = append(grow(f.series), seriesFields{key: k, counts: len(f.counts)})
					f.counts = append(grow(f.counts), make([]uint64, len(f.meta.Buckets)+1)...)
					f.hist[k] = i
					nSeries++
				}
				lastHist = i
			}
			if bucket < 0 {
				f.series[i].val, err = parseFloat(fd.value)
			} else {
				f.counts[f.series[i].counts+bucket], err = strconv.ParseUint(fd.value, 10, 64)
			}
		}
		if err != nil {
			return fmt.Errorf("series field %s: %w", fd.name, err)
		}
	}

	names := make([]string, 0, len(fams))
	for name, f := range fams {
		if len(f.series) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	st.Families = make([]Family, 0, len(names))
	var scratch, labels, prev []series.Label
	done := 0
	// Without keys, the distinct label names and values, copied once.
	var interned map[string]string
	intern := func(s string) string {
		c, ok := interned[s]
		if !ok {
			// Chunks of at most internChunk: a peer's distinct strings
			// are often few, and a chunk lives as long as any family
			// decoded with it.
			c = keys.add(s, min(nSeries-done, internChunk/max(len(s), 1)))
			interned[c] = c
		}
		return c
	}
	if !keepKeys {
		interned = map[string]string{}
	}
	for _, name := range names {
		f := fams[name]
		slices.SortFunc(f.series, func(a, b seriesFields) int { return strings.Compare(a.key, b.key) })
		width := len(f.meta.Buckets) + 1
		out := Family{Meta: f.meta, Series: make([]Series, len(f.series))}
		for j, sf := range f.series {
			var err error
			out.Name, scratch, err = series.ParseKey(sf.key, scratch[:0])
			if err != nil {
				return err
			}
			sr := &out.Series[j]
			if keepKeys {
				sr.Key = sf.key
			} else {
				out.Name = intern(out.Name)
				for i, l := range scratch {
					// Series come sorted, so a label often has the value it
					// had in the series before: reuse it without a lookup.
					if i < len(prev) && l == prev[i] {
						scratch[i] = prev[i]
						continue
					}
					scratch[i] = series.Label{Name: intern(l.Name), Value: intern(l.Value)}
				}
				prev = append(prev[:0], scratch...)
			}
			if n := len(scratch); n > 0 {
				if cap(labels)-len(labels) < n {
					// The labels of the series left, in chunks: a few
					// large allocations, none much larger than needed.
					labels = make([]series.Label, 0, max(n, min(n*(nSeries-done), labelChunk)))
				}
				labels = append(labels, scratch...)
				sr.Labels = labels[len(labels)-n : len(labels) : len(labels)]
			}
			if f.meta.Kind == Histogram {
				sr.Counts = f.counts[sf.counts : sf.counts+width : sf.counts+width]
				sr.Sum = sf.val
			} else {
				sr.Value = sf.val
			}
			done++
		}
		st.Families = append(st.Families, out)
	}
	return nil
}

// grow doubles the capacity of a full s. append grows a large slice by a
// quarter, which for the 100k series of a snapshot copies each five times
// over.
func grow[T any](s []T) []T {
	if len(s) < cap(s) {
		return s
	}
	return slices.Grow(s, max(len(s), 64))
}

// labelChunk is the most labels build allocates at once.
const labelChunk = 4096

// keyArena copies the keys a state keeps into a few large strings.
type keyArena struct {
	b strings.Builder
}

// keyChunk is the most bytes keyArena allocates at once, and internChunk
// the most it allocates at once for interned label strings.
const (
	keyChunk    = 1 << 20
	internChunk = 64 << 10
)

// add returns a copy of key. left bounds the keys still to come, each
// taken as long as this one, for sizing a new chunk.
func (a *keyArena) add(key string, left int) string {
	if a.b.Cap()-a.b.Len() < len(key) {
		// A Builder never changes what it wrote, so the strings given out
		// stay valid; a new one leaves them in the old buffer.
		a.b = strings.Builder{}
		a.b.Grow(max(len(key), min(len(key)*left, keyChunk)))
	}
	a.b.WriteString(key)
	s := a.b.String()
	return s[len(s)-len(key):]
}

// fieldRef is one field of a hash.
type fieldRef struct{ name, value string }

// minOrdered is the fewest fields inMemoryOrder sorts.
const minOrdered = 1024

// inMemoryOrder returns the fields of h in the order of their names'
// addresses. Any order gives build the same state; this one reads memory
// sequentially where the names lie in one buffer, as a decoded snapshot's
// do, and gives them in the buffer's order. It is a radix sort on the
// address, over the bits in which the addresses differ, in as few passes
// of at most 13 bits as cover them: two for a snapshot of up to 64 MiB.
//
// A hash of fewer than minOrdered fields keeps map order: its strings stay
// in cache anyway, so ordering them would not pay.
func inMemoryOrder(h map[string]string) []fieldRef {
	addr := func(s string) uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(s))) }
	fs := make([]fieldRef, 0, len(h))
	lo, hi := ^uintptr(0), uintptr(0)
	for name, value := range h {
		fs = append(fs, fieldRef{name, value})
		a := addr(name)
		lo, hi = min(lo, a), max(hi, a)
	}
	if len(fs) < minOrdered {
		return fs
	}
	width := bits.Len64(uint64(hi - lo))
	passes := (width + 12) / 13
	if passes == 0 {
		return fs
	}
	digit := (width + passes - 1) / passes
	mask := uintptr(1)<<digit - 1
	// The count of every digit of every pass, taken in one read.
	counts := make([]int, passes<<digit)
	for _, f := range fs {
		a := addr(f.name) - lo
		for p := range passes {
			counts[p<<digit+int(a>>(p*digit)&mask)]++
		}
	}
	tmp := make([]fieldRef, len(fs))
	for p := range passes {
		count := counts[p<<digit : (p+1)<<digit]
		sum := 0
		for d, c := range count {
			count[d], sum = sum, sum+c
		}
		shift := p * digit
		for _, f := range fs {
			d := (addr(f.name) - lo) >> shift & mask
			tmp[count[d]] = f
			count[d]++
		}
		fs, tmp = tmp, fs
	}
	return fs
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
