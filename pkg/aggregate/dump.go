package aggregate

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Dump is a node's whole aggregate as stored: its four hashes, read as one
// version (Store.Dump). It is what a snapshot carries, so the same bytes serve peers
// (as the node's view) and the node itself (as the checkpoint it restores
// from after losing its Redis).
type Dump struct {
	Node     string            `json:"node"`
	Marks    map[string]string `json:"marks"`
	Meta     map[string]string `json:"meta"`
	Series   map[string]string `json:"series"`
	Rejected map[string]string `json:"rejected,omitempty"`
}

// Mark is the dump's stream mark: its version.
func (d *Dump) Mark() uint64 {
	n, _ := strconv.ParseUint(d.Marks[streamField], 10, 64)
	return n
}

// Torn reports whether the dump holds a guard left by an apply or restore
// that Redis loaded only in part (see Marks.Torn).
func (d *Dump) Torn() bool { return torn(d.Marks) }

// Position parses the dump's marks.
func (d *Dump) Position() (Marks, error) {
	m, err := parseMarks(d.Marks)
	if err != nil {
		return Marks{}, fmt.Errorf("marks of %s: %w", d.Node, err)
	}
	return m, nil
}

// Metas parses every metric's metadata in the dump, described series or
// not.
func (d *Dump) Metas() (map[string]Meta, error) {
	return decodeMetas(d.Meta)
}

// State builds the families of the dump.
func (d *Dump) State() (*State, error) { return d.state(true) }

// PeerState builds the families of the dump as a node's view of a peer
// keeps them, for exposition under a node label: each series has its
// labels, with every label name and value stored once per state however
// many series share it, and no Key (the text formats render a series with
// a node label from its labels). A series of 16 labels of which 13 take a
// few values across the aggregate costs the 3 values of its own and a
// label slice, not a copy of its whole key.
func (d *Dump) PeerState() (*State, error) { return d.state(false) }

func (d *Dump) state(keys bool) (*State, error) {
	metas, err := decodeMetas(d.Meta)
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", d.Node, err)
	}
	// The state keeps none of the dump's strings (see build).
	st := &State{Node: strings.Clone(d.Node), Mark: d.Mark(), Rejected: make(map[string]uint64, len(d.Rejected))}
	for k, v := range d.Rejected {
		st.Rejected[strings.Clone(k)], _ = strconv.ParseUint(v, 10, 64)
	}
	if err := st.build(metas, d.Series, keys); err != nil {
		return nil, fmt.Errorf("state of %s: %w", d.Node, err)
	}
	return st, nil
}

// Held is an aggregate held in memory (by its aggregator): its state and
// what Redis holds beside it, at the state's mark.
type Held struct {
	State *State
	// Producers are the producers' batch marks, and Applied their times
	// (Marks.Applied).
	Producers, Applied map[string]uint64
	// Clock is Marks.Clock.
	Clock uint64
	// Metas are every metric's metadata, with series or not.
	Metas map[string]Meta
	// Incarnation and Base place the state's mark in the delta stream
	// (see Marks).
	Incarnation, Base uint64
}

// Fields calls fn with every series-hash field of h and its value, as
// Store writes them, in the state's order: families by name, series by
// key, a histogram's buckets (those that count something: Update writes a
// bucket once it does) then its sum.
func (h Held) Fields(buf []byte, fn func(field, value []byte)) {
	var name []byte
	h.EachField(buf, func(id FieldID, value []byte) {
		name = id.AppendName(name[:0])
		fn(name, value)
	})
}

// EachField calls fn with every series-hash field of h, as its FieldID,
// and its value, in the order of Fields. The FieldID's key is the state's
// own string; the value's bytes are valid only during the call.
func (h Held) EachField(buf []byte, fn func(id FieldID, value []byte)) {
	for i := range h.State.Families {
		f := &h.State.Families[i]
		for j := range f.Series {
			s := &f.Series[j]
			if f.Kind != Histogram {
				buf = strconv.AppendFloat(buf[:0], s.Value, 'g', -1, 64)
				fn(FieldID{Key: s.Key, Bucket: PlainBucket}, buf)
				continue
			}
			for b, c := range s.Counts {
				if c != 0 {
					buf = strconv.AppendUint(buf[:0], c, 10)
					fn(FieldID{Key: s.Key, Bucket: int32(b)}, buf)
				}
			}
			buf = strconv.AppendFloat(buf[:0], s.Sum, 'g', -1, 64)
			fn(FieldID{Key: s.Key, Bucket: SumBucket}, buf)
		}
	}
}

// MarkFields is h's mark hash as Store writes it.
func (h Held) MarkFields() map[string]string {
	m := make(map[string]string, 1+len(h.Producers))
	m[streamField] = strconv.FormatUint(h.State.Mark, 10)
	for p, seq := range h.Producers {
		m[producerFieldPrefix+p] = strconv.FormatUint(seq, 10)
	}
	for p, ms := range h.Applied {
		m[appliedFieldPrefix+p] = strconv.FormatUint(ms, 10)
	}
	if h.Clock != 0 {
		m[clockField] = strconv.FormatUint(h.Clock, 10)
	}
	if h.Incarnation != 0 {
		m[incarnationField] = strconv.FormatUint(h.Incarnation, 10)
		m[baseField] = strconv.FormatUint(h.Base, 10)
	}
	return m
}

// MetaFields is h's metadata hash as Store writes it.
func (h Held) MetaFields() map[string]string {
	m := make(map[string]string, len(h.Metas))
	for name, meta := range h.Metas {
		b, _ := json.Marshal(meta) // Meta always marshals
		m[name] = string(b)
	}
	return m
}

// RejectedFields is h's rejection hash as Store writes it.
func (h Held) RejectedFields() map[string]string {
	m := make(map[string]string, len(h.State.Rejected))
	for r, n := range h.State.Rejected {
		m[r] = strconv.FormatUint(n, 10)
	}
	return m
}

// Dump is h as Redis holds it.
func (h Held) Dump() *Dump {
	d := &Dump{Node: h.State.Node, Marks: h.MarkFields(), Meta: h.MetaFields(),
		Series: make(map[string]string, h.State.SeriesCount()), Rejected: h.RejectedFields()}
	h.Fields(nil, func(f, v []byte) { d.Series[string(f)] = string(v) })
	return d
}

// DumpScanCount is the COUNT hint of each HSCAN with which Dump reads the
// series hash: each call returns about that many fields (a small hash, kept
// as a listpack, comes whole), so no reply is large enough to trip a client
// read timeout, and Redis serves other clients between calls.
const DumpScanCount = 10000

// dumpAttempts is how many times Dump reads the aggregate before giving up
// on one that every read saw change.
const dumpAttempts = 5

// dumpMaxScans bounds the HSCAN calls of one read: far more than a hash of
// the largest aggregate the caps allow needs.
const dumpMaxScans = 1 << 20

// Dump reads the aggregate's hashes as one version. A series hash of at
// most DumpScanCount fields is read with the other hashes in one
// MULTI/EXEC, a call no larger than one HSCAN. A larger one is read in
// bounded HSCAN calls under WATCH of the mark hash, then the mark, metadata
// and rejection hashes in one MULTI/EXEC: every writer of the aggregate (an
// apply, a restore, a reset) writes the mark hash, so the EXEC fails if
// anything wrote the aggregate during the scan, and the read starts over.
// After dumpAttempts such reads (an aggregator applying faster than a
// scan, say) it reads everything in one MULTI/EXEC, which a writer cannot
// interleave: correct, though one large call.
func (s *Store) Dump(ctx context.Context) (*Dump, error) {
	n, err := s.rdb.HLen(ctx, s.keys.series).Result()
	if err != nil {
		return nil, fmt.Errorf("dump aggregate of %s: %w", s.node, err)
	}
	if n > DumpScanCount {
		for range dumpAttempts {
			d, err := s.dumpOnce(ctx)
			if errors.Is(err, redis.TxFailedErr) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("dump aggregate of %s: %w", s.node, err)
			}
			return d, nil
		}
	}
	d, err := s.dumpAtomic(ctx)
	if err != nil {
		return nil, fmt.Errorf("dump aggregate of %s: %w", s.node, err)
	}
	return d, nil
}

// dumpAtomic reads the four hashes in one MULTI/EXEC.
func (s *Store) dumpAtomic(ctx context.Context) (*Dump, error) {
	var cmds [4]*redis.MapStringStringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range []string{s.keys.mark, s.keys.meta, s.keys.series, s.keys.rejected} {
			cmds[i] = p.HGetAll(ctx, k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Dump{Node: s.node, Marks: cmds[0].Val(), Meta: cmds[1].Val(), Series: cmds[2].Val(), Rejected: cmds[3].Val()}, nil
}

func (s *Store) dumpOnce(ctx context.Context) (*Dump, error) {
	var d *Dump
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		series, err := hscanAll(ctx, tx, s.keys.series)
		if err != nil {
			return err
		}
		var cmds [3]*redis.MapStringStringCmd
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range []string{s.keys.mark, s.keys.meta, s.keys.rejected} {
				cmds[i] = p.HGetAll(ctx, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		d = &Dump{Node: s.node, Marks: cmds[0].Val(), Meta: cmds[1].Val(), Series: series, Rejected: cmds[2].Val()}
		return nil
	}, s.keys.mark)
	return d, err
}

// hscanAll reads the hash key in HSCAN calls of DumpScanCount.
func hscanAll(ctx context.Context, tx *redis.Tx, key string) (map[string]string, error) {
	n, err := tx.HLen(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, n)
	var cursor uint64
	for range dumpMaxScans {
		var kv []string
		kv, cursor, err = tx.HScan(ctx, key, cursor, "", DumpScanCount).Result()
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1] // HSCAN may repeat a field: same value
		}
		if cursor == 0 {
			return out, nil
		}
	}
	return nil, fmt.Errorf("HSCAN of %s did not finish in %d calls", key, dumpMaxScans)
}

// ErrTorn reports an aggregate that holds a guard left by an apply or
// restore that Redis loaded only in part: some fields may be ahead of its
// mark, so it must not be read as a version of the aggregate. The
// aggregator resets and rebuilds it.
var ErrTorn = errors.New("aggregate holds a partly loaded apply")

// Load reads the whole aggregate atomically and builds its families. It
// returns ErrTorn, and no state, for a torn aggregate.
func (s *Store) Load(ctx context.Context) (*State, error) {
	d, err := s.Dump(ctx)
	if err != nil {
		return nil, err
	}
	if d.Torn() {
		return nil, fmt.Errorf("load aggregate of %s at seq %d: %w", s.node, d.Mark(), ErrTorn)
	}
	return d.State()
}

var (
	//go:embed restore_open.lua
	restoreOpenSource string
	//go:embed restore_close.lua
	restoreCloseSource string

	restoreOpen  = redis.NewScript(restoreOpenSource)
	restoreClose = redis.NewScript(restoreCloseSource)
)

// RestoreBatch is the most field/value pairs one HSET of Restore carries,
// and restorePipeline how many such HSETs go in one round trip.
const (
	RestoreBatch    = 1000
	restorePipeline = 64
)

// ErrNotEmpty reports a restore into a store that holds a position.
var ErrNotEmpty = errors.New("aggregate is not empty")

// Restore writes d into an empty store. It returns ErrNotEmpty, and
// changes nothing, when the store already has a mark hash: a restore never
// overwrites state.
//
// An aggregate of millions of fields does not go in one command: that
// would block Redis and trip the client's timeouts. Restore opens with a
// guard field (value 0) in the mark hash, only if there is none, writes the
// metadata, series and rejection hashes in pipelined HSETs of RestoreBatch
// pairs, then, in one script and only if its guard is still there and no
// stream mark, writes the marks and deletes the guard. Until then the
// aggregate reads as torn (Marks.Torn), so one whose restore stopped half
// way (an error, a crash, a Redis restart) is reset and restored again by
// the next session, and none is read as a version meanwhile. A restore
// whose guard went (the store was reset or written during it) returns
// ErrConflict (wrapped).
func (s *Store) Restore(ctx context.Context, d *Dump) error {
	guard := guardFieldPrefix + nonce()
	ok, err := restoreOpen.Run(ctx, s.rdb, []string{s.keys.mark}, guard).Int()
	if err != nil {
		return fmt.Errorf("restore aggregate of %s at seq %d: %w", s.node, d.Mark(), err)
	}
	if ok != 1 {
		return fmt.Errorf("restore aggregate of %s at seq %d: %w", s.node, d.Mark(), ErrNotEmpty)
	}
	for _, h := range []struct {
		key    string
		fields map[string]string
	}{{s.keys.meta, d.Meta}, {s.keys.series, d.Series}, {s.keys.rejected, d.Rejected}} {
		if err := s.hsetBatches(ctx, h.key, h.fields); err != nil {
			return fmt.Errorf("restore aggregate of %s at seq %d (left torn: the next session resets it): %w", s.node, d.Mark(), err)
		}
	}
	args := make([]any, 0, 1+2*len(d.Marks))
	args = append(args, guard)
	for k, v := range d.Marks {
		args = append(args, k, v)
	}
	ok, err = restoreClose.Run(ctx, s.rdb, []string{s.keys.mark}, args...).Int()
	if err != nil {
		return fmt.Errorf("restore aggregate of %s at seq %d (left torn: the next session resets it): %w", s.node, d.Mark(), err)
	}
	if ok != 1 {
		return fmt.Errorf("restore aggregate of %s at seq %d: %w: the store was reset or written during the restore", s.node, d.Mark(), ErrConflict)
	}
	return nil
}

// hsetBatches writes fields to the hash key in HSETs of RestoreBatch pairs,
// restorePipeline of them per round trip.
func (s *Store) hsetBatches(ctx context.Context, key string, fields map[string]string) error {
	p := s.rdb.Pipeline()
	pairs := make([]any, 0, 2*min(len(fields), RestoreBatch))
	flush := func() error {
		if len(pairs) > 0 {
			p.HSet(ctx, key, pairs...)
			pairs = pairs[:0] // HSet copies its arguments
		}
		if p.Len() == 0 {
			return nil
		}
		_, err := p.Exec(ctx)
		return err
	}
	for k, v := range fields {
		pairs = append(pairs, k, v)
		if len(pairs) == 2*RestoreBatch {
			p.HSet(ctx, key, pairs...)
			pairs = pairs[:0]
			if p.Len() == restorePipeline {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}
