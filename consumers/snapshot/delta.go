package snapshot

import (
	"strings"
	"unsafe"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// source is the aggregate one snapshot is built from: held in memory by
// the aggregator, or dumped from Redis.
type source struct {
	held *aggregate.Held
	dump *aggregate.Dump
}

func (s source) mark() uint64 {
	if s.held != nil {
		return s.held.State.Mark
	}
	return s.dump.Mark()
}

// fields calls fn with every series-hash field and its value. The value
// is valid only during the call; the field is kept as keeper returns it
// (a held aggregate's keys are its state's own strings, a dump's are
// substrings of its fields, which keeper copies once per series).
func (s source) fields(fn func(id aggregate.FieldID, v []byte)) {
	if s.held != nil {
		s.held.EachField(nil, fn)
		return
	}
	for k, v := range s.dump.Series {
		fn(aggregate.ParseField(k), unsafe.Slice(unsafe.StringData(v), len(v)))
	}
}

// keeper returns the function that makes a field's ID from src safe to
// keep: itself for a held aggregate, with its key copied once per series
// for a dump.
func (s source) keeper() func(aggregate.FieldID) aggregate.FieldID {
	if s.held != nil {
		return func(id aggregate.FieldID) aggregate.FieldID { return id }
	}
	keys := map[string]string{}
	return func(id aggregate.FieldID) aggregate.FieldID {
		key, ok := keys[id.Key]
		if !ok {
			key = strings.Clone(id.Key)
			keys[key] = key
		}
		id.Key = key
		return id
	}
}

// delta is a delta's small hashes, whole.
func (s source) delta() *streams.SnapshotDelta {
	if s.held != nil {
		return &streams.SnapshotDelta{Marks: s.held.MarkFields(), Meta: s.held.MetaFields(), Rejected: s.held.RejectedFields()}
	}
	return &streams.SnapshotDelta{Marks: s.dump.Marks, Meta: s.dump.Meta, Rejected: s.dump.Rejected}
}

// tracker remembers the series-hash fields of the last snapshot
// published, so the next can be a delta of them: each field's value as
// published (exact: a delta never misses a change), and the round it was
// last seen in, which tells the fields gone since (tombstones). A field is
// held as its FieldID, whose key is the aggregate's own string: a wide
// series costs the tracker its values and a map entry per field, not a
// second copy of its labels.
type tracker struct {
	seen  map[aggregate.FieldID]*seenField
	round uint32
}

type seenField struct {
	value string
	round uint32
}

// reset remembers every field of src as published.
func (t *tracker) reset(src source) {
	t.seen = make(map[aggregate.FieldID]*seenField, len(t.seen))
	t.round++
	keep := src.keeper()
	src.fields(func(id aggregate.FieldID, v []byte) {
		t.seen[keep(id)] = &seenField{value: string(v), round: t.round}
	})
}

// diff fills d with the fields of src set or gone since the last snapshot
// published, and remembers src as published: the caller forgets the
// tracker (reset at the next full snapshot) if the delta is not published.
func (t *tracker) diff(src source, d *streams.SnapshotDelta) {
	t.round++
	d.Series = map[string]string{}
	keep := src.keeper()
	src.fields(func(id aggregate.FieldID, v []byte) {
		// Entries are pointers, so a field seen before is updated without
		// assigning its key again (which would store this source's string
		// in place of the kept one).
		e, ok := t.seen[id]
		if !ok {
			e = &seenField{}
			t.seen[keep(id)] = e
		}
		if !ok || e.value != string(v) {
			e.value = string(v)
			d.Series[id.Name()] = e.value
		}
		e.round = t.round
	})
	for id, e := range t.seen {
		if e.round != t.round {
			d.Deleted = append(d.Deleted, id.Name())
			delete(t.seen, id)
		}
	}
}
