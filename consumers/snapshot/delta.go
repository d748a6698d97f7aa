package snapshot

import (
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

// fields calls fn with every series-hash field and its value; neither is
// kept by fn beyond the call.
func (s source) fields(fn func(f, v []byte)) {
	if s.held != nil {
		s.held.Fields(nil, fn)
		return
	}
	for k, v := range s.dump.Series {
		fn(unsafe.Slice(unsafe.StringData(k), len(k)), unsafe.Slice(unsafe.StringData(v), len(v)))
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
// last seen in, which tells the fields gone since (tombstones).
type tracker struct {
	seen  map[string]*seenField
	round uint32
}

type seenField struct {
	value string
	round uint32
}

// reset remembers every field of src as published.
func (t *tracker) reset(src source) {
	t.seen = make(map[string]*seenField, len(t.seen))
	t.round++
	src.fields(func(f, v []byte) {
		t.seen[string(f)] = &seenField{value: string(v), round: t.round}
	})
}

// diff fills d with the fields of src set or gone since the last snapshot
// published, and remembers src as published: the caller forgets the
// tracker (reset at the next full snapshot) if the delta is not published.
func (t *tracker) diff(src source, d *streams.SnapshotDelta) {
	t.round++
	d.Series = map[string]string{}
	src.fields(func(f, v []byte) {
		e, ok := t.seen[string(f)]
		switch {
		case !ok:
			e = &seenField{value: string(v)}
			t.seen[string(f)] = e
			d.Series[string(f)] = e.value
		case e.value != string(v):
			e.value = string(v)
			d.Series[string(f)] = e.value
		}
		e.round = t.round
	})
	for k, e := range t.seen {
		if e.round != t.round {
			d.Deleted = append(d.Deleted, k)
			delete(t.seen, k)
		}
	}
}
