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

// Dump is a node's whole aggregate as stored: its four hashes, read in one
// atomic step. It is what a snapshot carries, so the same bytes serve peers
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
func (d *Dump) State() (*State, error) {
	metas, err := decodeMetas(d.Meta)
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", d.Node, err)
	}
	// The state keeps none of the dump's strings (see build).
	st := &State{Node: strings.Clone(d.Node), Mark: d.Mark(), Rejected: make(map[string]uint64, len(d.Rejected))}
	for k, v := range d.Rejected {
		st.Rejected[strings.Clone(k)], _ = strconv.ParseUint(v, 10, 64)
	}
	if err := st.build(metas, d.Series); err != nil {
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
	for i := range h.State.Families {
		f := &h.State.Families[i]
		for j := range f.Series {
			s := &f.Series[j]
			if f.Kind != Histogram {
				buf = append(buf[:0], s.Key...)
				n := len(buf)
				buf = strconv.AppendFloat(buf, s.Value, 'g', -1, 64)
				fn(buf[:n], buf[n:])
				continue
			}
			for b, c := range s.Counts {
				if c != 0 {
					buf = AppendBucketField(buf[:0], s.Key, b)
					n := len(buf)
					buf = strconv.AppendUint(buf, c, 10)
					fn(buf[:n], buf[n:])
				}
			}
			buf = append(append(buf[:0], s.Key...), sumSuffix...)
			n := len(buf)
			buf = strconv.AppendFloat(buf, s.Sum, 'g', -1, 64)
			fn(buf[:n], buf[n:])
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

// Dump reads the aggregate's hashes atomically.
func (s *Store) Dump(ctx context.Context) (*Dump, error) {
	var cmds [4]*redis.MapStringStringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range []string{s.keys.mark, s.keys.meta, s.keys.series, s.keys.rejected} {
			cmds[i] = p.HGetAll(ctx, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dump aggregate of %s: %w", s.node, err)
	}
	return &Dump{Node: s.node, Marks: cmds[0].Val(), Meta: cmds[1].Val(), Series: cmds[2].Val(), Rejected: cmds[3].Val()}, nil
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

//go:embed restore.lua
var restoreSource string

var restoreScript = redis.NewScript(restoreSource)

// ErrNotEmpty reports a restore into a store that holds a position.
var ErrNotEmpty = errors.New("aggregate is not empty")

// Restore writes d into an empty store in one atomic step. It returns
// ErrNotEmpty, and changes nothing, when the store already has a stream
// mark: a restore never overwrites state.
func (s *Store) Restore(ctx context.Context, d *Dump) error {
	args := make([]any, 0, 5+2*(len(d.Marks)+len(d.Meta)+len(d.Series)+len(d.Rejected)))
	args = append(args, nonce())
	for _, h := range []map[string]string{d.Marks, d.Meta, d.Series, d.Rejected} {
		args = append(args, len(h))
		for k, v := range h {
			args = append(args, k, v)
		}
	}
	ok, err := restoreScript.Run(ctx, s.rdb, []string{s.keys.mark, s.keys.meta, s.keys.series, s.keys.rejected}, args...).Int()
	if err != nil {
		return fmt.Errorf("restore aggregate of %s at seq %d: %w", s.node, d.Mark(), err)
	}
	if ok != 1 {
		return fmt.Errorf("restore aggregate of %s at seq %d: %w", s.node, d.Mark(), ErrNotEmpty)
	}
	return nil
}
