package aggregator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// sessionState is the aggregator's in-memory copy of what it needs to
// decide on a message: the marks, every metric's metadata and the
// aggregate itself (live). It is loaded from Redis at the start of a
// session and changed only alongside updates that the session then
// applies; a failed apply ends the session, and the next one loads afresh,
// so the copy never drifts from Redis.
type sessionState struct {
	marks     aggregate.Marks
	metas     map[string]aggregate.Meta
	exposed   aggregate.NameIndex // every exposed name -> the metric taking it
	live      *live
	perMetric map[string]int
	rejected  []rejectedEntry // scratch: the current message's rejected entries
	// producers and described are the producer marks and new metrics of
	// the group being built.
	producers map[string]uint64
	described []string
	// applied are the times of the group's producer marks, and forgotten
	// the producers whose marks it prunes.
	applied   map[string]uint64
	forgotten []string
	// prev is the cell of the last entry folded from the current message.
	prev *cell
	// letters are the dead letters of the group being built, published
	// before the group is applied.
	letters []deadLetter
}

// deadLetter is a rejected message waiting to be copied to the DLQ: the
// whole message (entries is nil), or its entries rejected for one reason,
// with the first one's error. A message with entries rejected for several
// reasons makes one dead letter per reason, so a letter's subject, reason
// header and entry count say what jetmetrics_rejected_total counted.
type deadLetter struct {
	in      item
	rej     *streams.RejectError
	entries []int
}

// rejectedEntry is an entry of the current message and why it was rejected.
type rejectedEntry struct {
	index int
	rej   *streams.RejectError
}

// lettersPerReason appends to letters one dead letter of in per reason
// among rejected, in the order each reason first occurs.
func lettersPerReason(letters []deadLetter, in item, rejected []rejectedEntry) []deadLetter {
	start := len(letters)
	for _, r := range rejected {
		j := start
		for j < len(letters) && letters[j].rej.Reason != r.rej.Reason {
			j++
		}
		if j == len(letters) {
			letters = append(letters, deadLetter{in: in, rej: r.rej})
		}
		letters[j].entries = append(letters[j].entries, r.index)
	}
	return letters
}

// load reads the whole aggregate from Redis in one step, first making it
// whole: a torn one is reset, an empty one restored from the checkpoint.
func (a *Aggregator) load(ctx context.Context) (*sessionState, error) {
	d, err := a.store.Dump(ctx)
	if err != nil {
		return nil, err
	}
	if d.Torn() {
		// Redis loaded part of an apply (a torn AOF transaction run on a
		// later load): fields may be ahead of the mark. Start again from the
		// last checkpoint, which was taken from a whole aggregate.
		a.log.Error().Uint64("seq", d.Mark()).Msg("aggregate holds a partly loaded apply: resetting it and rebuilding from the checkpoint")
		a.m.tornResets.Inc()
		if err := a.store.Reset(ctx); err != nil {
			return nil, err
		}
		d = &aggregate.Dump{Node: a.cfg.Node}
	}
	if d.Mark() == 0 && a.cfg.Checkpoints != nil {
		if err := a.restore(ctx); err != nil {
			return nil, err
		}
		if d, err = a.store.Dump(ctx); err != nil {
			return nil, err
		}
	}
	return newSession(d)
}

// newSession holds the aggregate d in memory.
func newSession(d *aggregate.Dump) (*sessionState, error) {
	marks, err := d.Position()
	if err != nil {
		return nil, err
	}
	metas, err := d.Metas()
	if err != nil {
		return nil, err
	}
	agg, err := d.State()
	if err != nil {
		return nil, err
	}
	st := &sessionState{
		marks:     marks,
		metas:     metas,
		exposed:   aggregate.NewNameIndex(metas),
		live:      newLive(agg, marks, metas),
		perMetric: map[string]int{},
		producers: map[string]uint64{},
		applied:   map[string]uint64{},
	}
	for _, f := range agg.Families {
		st.perMetric[f.Name] = len(f.Series)
	}
	return st, nil
}

// restore fills an empty aggregate from the node's latest checkpoint, so
// that only the deltas since the checkpoint are replayed (and deltas the
// stream no longer holds are not lost).
func (a *Aggregator) restore(ctx context.Context) error {
	d, err := a.cfg.Checkpoints.LatestCheckpoint(ctx, a.cfg.Node)
	if errors.Is(err, streams.ErrBadCheckpoint) {
		// Not what the node's publisher writes: retrying would stall the
		// node for good, and restoring it could make every later delta
		// look applied.
		a.m.checkpointsRefused.Inc()
		a.log.Error().Err(err).Msg("checkpoint refused: rebuilding the aggregate from the delta stream")
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if d == nil || d.Mark() == 0 {
		return nil
	}
	if err := a.consistent(ctx, d); err != nil {
		if !errors.Is(err, errInconsistent) {
			return fmt.Errorf("restore: %w", err) // the session retries
		}
		// A checkpoint is a message: one the stream cannot have produced
		// would make every later delta look applied. Rebuild from the
		// stream instead.
		a.m.checkpointsRefused.Inc()
		a.log.Error().Err(err).Uint64("seq", d.Mark()).Msg("checkpoint refused: rebuilding the aggregate from the delta stream")
		return nil
	}
	switch err := a.store.Restore(ctx, d); {
	case err == nil:
		a.m.restores.Inc()
		a.log.Warn().Uint64("seq", d.Mark()).Int("fields", len(d.Series)).Msg("aggregate was empty: restored from checkpoint, replaying the rest")
	case errors.Is(err, aggregate.ErrNotEmpty):
		// Another instance restored, or traffic arrived first: use it.
	default:
		return err
	}
	return nil
}

// errInconsistent marks a checkpoint the delta stream refutes.
var errInconsistent = errors.New("checkpoint inconsistent with the delta stream")

// consistent checks a checkpoint against the delta stream. Its version is
// base + the sequence of a message of this node the aggregator applied,
// in the stream incarnation the checkpoint records, so in the stream as it
// is now that sequence cannot be beyond the last sequence the stream holds
// for the node (or, when the stream holds none of the node's any more,
// beyond the stream's last). A checkpoint of an earlier incarnation counts
// in a stream that is gone: there is nothing to compare it with, and once
// restored the reset rule (incarnate) applies the stream from its start
// above it. One of a later incarnation than the stream's cannot have been
// taken. And no producer mark can be beyond what the batch sequence bound
// lets that many messages reach (seqJumpOK). A transient error reading the
// stream is returned as it is, so the session retries.
func (a *Aggregator) consistent(ctx context.Context, d *aggregate.Dump) error {
	s, err := a.js.Stream(ctx, a.cfg.Streams.DeltaStream())
	if err != nil {
		return fmt.Errorf("check checkpoint: %w", err)
	}
	inc := Incarnation(s.CachedInfo())
	var last uint64
	m, err := s.GetLastMsgForSubject(ctx, a.cfg.Streams.Subjects().DeltaNode(a.cfg.Node))
	switch {
	case err == nil:
		last = m.Sequence
	case errors.Is(err, jetstream.ErrMsgNotFound):
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("check checkpoint: %w", err)
		}
		last = info.State.LastSeq
	default:
		return fmt.Errorf("check checkpoint: %w", err)
	}
	pos, err := d.Position()
	if err != nil {
		return fmt.Errorf("%w: %w", errInconsistent, err)
	}
	mark := d.Mark()
	switch {
	case pos.Base > mark:
		return fmt.Errorf("%w: its base %d is above its version %d", errInconsistent, pos.Base, mark)
	case pos.Incarnation == inc || pos.Incarnation == 0:
		// 0: taken before incarnations were recorded, its base 0.
		if seq := pos.Seq(); seq > last {
			return fmt.Errorf("%w: its stream sequence %d (version %d, base %d) is beyond the stream's last sequence %d for %s",
				errInconsistent, seq, mark, pos.Base, last, a.cfg.Node)
		}
	case pos.Incarnation > inc:
		return fmt.Errorf("%w: it was taken in stream incarnation %d, later than the stream's %d", errInconsistent, pos.Incarnation, inc)
	}
	for p, seq := range pos.Producers {
		// Each of at most mark messages moved the producer's mark by at
		// most MaxSeqJump beyond its stream sequence (at most mark): the
		// version counts every message applied, across incarnations too.
		if seq/(a.cfg.MaxSeqJump+1) > mark {
			return fmt.Errorf("%w: producer %s at batch %d, beyond what %d messages can reach", errInconsistent, p, seq, mark)
		}
	}
	return nil
}

// seqJumpOK reports whether a batch seq of a producer whose mark is prev
// (0 when it has none), at stream sequence streamSeq, is within the bound
// (docs/wire-format.md): at most MaxSeqJump above the producer's mark, or,
// for a producer with no mark, above the message's own stream sequence,
// which no producer's sequence can legitimately pass (each of its earlier
// batches was acknowledged, so stored, before it was sent). Both are
// decided from the stream alone, so a replay decides the same.
func (a *Aggregator) seqJumpOK(seq, prev, streamSeq uint64) bool {
	base := prev
	if prev == 0 {
		base = streamSeq
	}
	return seq-base <= a.cfg.MaxSeqJump || seq <= base
}

// add folds one message into the group being built, deciding every
// rejection; rejected messages are queued in st.letters.
func (st *sessionState) add(a *Aggregator, in item) {
	st.tick(a, in.at)
	if in.reject != nil {
		st.live.reject(string(in.reject.Reason))
		a.m.rejected.Inc()
		st.letters = append(st.letters, deadLetter{in: in, rej: in.reject})
		return
	}
	d := in.dec
	prev := st.marks.Producers[d.Producer]
	if d.Seq <= prev {
		a.m.duplicate.Inc()
		return
	}
	if !a.seqJumpOK(d.Seq, prev, in.seq) {
		// Applied, it would make the producer's next batches duplicates:
		// whoever sent it under this id could silence the producer.
		rej := &streams.RejectError{Reason: streams.ReasonSeqJump,
			Err: fmt.Errorf("producer %s: batch %d is more than %d above its last applied batch %d", d.Producer, d.Seq, a.cfg.MaxSeqJump, prev)}
		st.live.reject(string(rej.Reason))
		a.m.rejected.Inc()
		st.letters = append(st.letters, deadLetter{in: in, rej: rej})
		return
	}
	if maxProducers := a.limits().MaxProducers; prev == 0 && len(st.marks.Producers) >= maxProducers {
		// Its mark would be one more than the node holds: marks travel in
		// every snapshot, which must stay within the server's payload limit.
		rej := &streams.RejectError{Reason: streams.ReasonProducerLimit,
			Err: fmt.Errorf("producer %s: the node holds the marks of %d producers, its limit (--limits.max-producers)", d.Producer, maxProducers)}
		st.live.reject(string(rej.Reason))
		a.m.rejected.Inc()
		st.letters = append(st.letters, deadLetter{in: in, rej: rej})
		return
	}
	st.marks.Producers[d.Producer] = d.Seq
	st.producers[d.Producer] = d.Seq
	if prev == 0 {
		a.m.producers.Set(float64(len(st.marks.Producers)))
	}
	if in.at != 0 {
		st.marks.Applied[d.Producer] = in.at
		st.applied[d.Producer] = in.at
	}

	st.rejected = st.rejected[:0]
	st.prev = nil
	for i := range d.Entries {
		e := &d.Entries[i]
		rej := e.Reject
		if rej == nil {
			rej = st.apply(a, e)
		}
		if rej != nil {
			st.live.reject(string(rej.Reason))
			a.m.rejectedEntries.WithLabelValues(string(rej.Reason)).Inc()
			st.rejected = append(st.rejected, rejectedEntry{index: i, rej: rej})
		}
	}
	a.m.entries.Add(float64(len(d.Entries) - len(st.rejected)))
	if len(st.rejected) == 0 {
		a.m.applied.Inc()
		return
	}
	a.m.partlyRejected.Inc()
	st.letters = lettersPerReason(st.letters, in, st.rejected)
}

// pruneTick is the stream time between two prunings of producer marks,
// in ms.
const pruneTick = 60_000

// tick advances the session's stream clock to at, the time of the message
// about to be folded, and each time it enters a new minute forgets the
// batch marks of the producers whose last applied message is older than
// the mark horizon. What is pruned, and when, depends only on the
// aggregate (its clock and marks) and the message, so a replay decides the
// same; why a pruned mark is never needed again: docs/design.md.
func (st *sessionState) tick(a *Aggregator, at uint64) {
	prev := st.marks.Clock
	if at <= prev {
		return
	}
	st.marks.Clock = at
	if a.cfg.MarkHorizon < 0 || at/pruneTick == prev/pruneTick {
		return
	}
	horizon := uint64(a.cfg.MarkHorizon.Milliseconds())
	for p, t := range st.marks.Applied {
		if at-min(t, at) > horizon {
			delete(st.marks.Producers, p)
			delete(st.marks.Applied, p)
			delete(st.producers, p)
			delete(st.applied, p)
			st.forgotten = append(st.forgotten, p)
			a.m.producersPruned.Inc()
		}
	}
	a.m.producers.Set(float64(len(st.marks.Producers)))
}

// apply folds one valid entry into the group being built, or says why it
// cannot be applied.
func (st *sessionState) apply(a *Aggregator, e *streams.Entry) *streams.RejectError {
	meta, ok := st.metas[e.Name]
	switch {
	case !ok:
		if rej := st.describe(e); rej != nil {
			return rej
		}
		meta = st.metas[e.Name]
	case meta.Kind != aggregate.Kind(e.Type) || (meta.Kind == aggregate.Histogram && !slices.Equal(meta.Buckets, e.Buckets)):
		reason := streams.ReasonTypeConflict
		if meta.Kind == aggregate.Kind(e.Type) {
			reason = streams.ReasonLayoutConflict
		}
		err := meta.Compatible(aggregate.Meta{Kind: aggregate.Kind(e.Type), Buckets: e.Buckets})
		return &streams.RejectError{Reason: reason, Err: fmt.Errorf("metric %s: %w", e.Name, err)}
	}
	c := st.cellOf(e.Key)
	if c == nil {
		lim := a.limits()
		if len(st.live.cells) >= lim.MaxSeries {
			return &streams.RejectError{Reason: streams.ReasonCardinality,
				Err: fmt.Errorf("series %s: the node holds %d series, its limit", e.Key, lim.MaxSeries)}
		}
		if st.perMetric[e.Name] >= lim.MaxSeriesPerMetric {
			return &streams.RejectError{Reason: streams.ReasonCardinality,
				Err: fmt.Errorf("series %s: metric %s has %d series, its limit", e.Key, e.Name, lim.MaxSeriesPerMetric)}
		}
		c = st.live.series(e.Key, e.Name, meta)
		st.perMetric[c.name]++ // the cell's copy: e's strings go with its message
	}
	if st.prev != nil {
		st.prev.succ = c
	}
	st.prev = c
	switch meta.Kind {
	case aggregate.Counter:
		v := c.next + e.Value
		if math.IsInf(v, 0) {
			return overflow(e.Key, "its total", e.Value)
		}
		c.next = v
		st.live.change(c, -1)
	case aggregate.Gauge:
		c.next = e.Value
		st.live.change(c, -1)
	case aggregate.Histogram:
		sum := c.next + e.Sum
		if math.IsInf(sum, 0) {
			return overflow(e.Key, "its sum", e.Sum)
		}
		// The count is the sum of the buckets: it must fit as well as
		// each bucket, or _count would wrap.
		var total, carry uint64
		for i, n := range e.Counts {
			if total, carry = bits.Add64(total, c.nextCounts[i], 0); carry == 0 {
				total, carry = bits.Add64(total, n, 0)
			}
			if carry != 0 {
				return overflow(e.Key, "its count (bucket "+strconv.Itoa(i)+")", float64(n))
			}
		}
		c.next = sum
		st.live.change(c, -1)
		for i, n := range e.Counts {
			if n > 0 {
				c.nextCounts[i] += n
				st.live.change(c, i)
			}
		}
	}
	return nil
}

// cellOf returns the cell of key, or nil when there is none yet. The
// successor of the last entry's cell is tried before the map: a hit saves a
// hash and the cache misses of probing a map of every series.
func (st *sessionState) cellOf(key string) *cell {
	if p := st.prev; p != nil && p.succ != nil && p.succ.key == key {
		return p.succ
	}
	return st.live.cells[key]
}

// describe takes a new metric's type (and layout) from e, unless a name it
// would expose (aggregate.ExposedNames) is another metric's: the index
// makes that one map lookup per name, and the metric first in stream order
// keeps the name.
func (st *sessionState) describe(e *streams.Entry) *streams.RejectError {
	meta := aggregate.Meta{Kind: aggregate.Kind(e.Type), Help: truncateHelp(e.Help), Buckets: e.Buckets}
	if s, owner, ok := st.exposed.Collision(e.Name, meta.Kind); ok {
		return &streams.RejectError{Reason: streams.ReasonTypeConflict,
			Err: fmt.Errorf("%s %s would expose %s, which %s %s already exposes", meta.Kind, e.Name, s, st.metas[owner].Kind, owner)}
	}
	name := strings.Clone(e.Name) // kept: e's strings go with its message
	st.exposed.Add(name, meta.Kind)
	st.metas[name] = meta
	st.described = append(st.described, name)
	return nil
}

// MaxHelpBytes bounds the help text kept of a metric: a longer one is cut
// at the last whole UTF-8 character within it, the same on every replay.
// Help is stored once per metric and travels in every snapshot.
const MaxHelpBytes = 1024

func truncateHelp(h string) string {
	if len(h) <= MaxHelpBytes {
		return h
	}
	i := MaxHelpBytes
	for i > 0 && !utf8.RuneStart(h[i]) {
		i--
	}
	return h[:i]
}

func overflow(key, what string, delta float64) *streams.RejectError {
	return &streams.RejectError{Reason: streams.ReasonOverflow,
		Err: fmt.Errorf("series %s: adding %g would take %s past what it can hold", key, delta, what)}
}

// seal ends the group being built, which moves the stream mark to mark:
// its producer marks, new metrics' metadata and every changed value go
// into g.u, absolute, and what its commit makes visible into g.
func (st *sessionState) seal(g *group, mark uint64) {
	g.u.Reset()
	g.u.Expect, g.u.Mark, g.mark = st.marks.Stream, mark, mark
	st.marks.Stream = mark
	clear(g.producers)
	for p, seq := range st.producers {
		g.u.ProducerMark(p, seq)
		g.producers[p] = seq
	}
	clear(g.applied)
	for p, ms := range st.applied {
		g.u.ProducerApplied(p, ms)
		g.applied[p] = ms
	}
	g.forgotten = g.forgotten[:0]
	for _, p := range st.forgotten {
		// A producer pruned and back within the group keeps its new mark.
		if _, back := st.producers[p]; !back {
			g.u.ForgetProducer(p)
			g.forgotten = append(g.forgotten, p)
		}
	}
	st.forgotten = st.forgotten[:0]
	clear(st.applied)
	g.clock = st.marks.Clock
	if g.clock != 0 {
		g.u.Clock(g.clock)
	}
	clear(g.described)
	for _, name := range st.described {
		g.u.Describe(name, st.metas[name])
		g.described[name] = st.metas[name]
	}
	clear(st.producers)
	st.described = st.described[:0]
	st.live.seal(g, st.metas)
}
