package aggregator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// sessionState is the aggregator's in-memory copy of what it needs to
// decide on a message: the marks, every metric's metadata and the known
// series. It is loaded from Redis at the start of a session and changed only
// alongside updates that the session then applies; a failed apply ends the
// session, and the next one loads afresh, so the copy never drifts from
// Redis.
type sessionState struct {
	marks     aggregate.Marks
	metas     map[string]aggregate.Meta
	exposed   map[string]string // sample name -> metric exposing it
	known     map[string]struct{}
	perMetric map[string]int
	rejected  []int // scratch: indices of rejected entries
	// letters are the dead letters of the group being built, published
	// before the group is applied.
	letters []deadLetter
}

// deadLetter is a rejected message waiting to be copied to the DLQ.
type deadLetter struct {
	in      item
	rej     *streams.RejectError
	entries []int
}

func (a *Aggregator) load(ctx context.Context) (*sessionState, error) {
	marks, err := a.store.Marks(ctx)
	if err != nil {
		return nil, err
	}
	if marks.Torn {
		// Redis loaded part of an apply (a torn AOF transaction run on a
		// later load): fields may be ahead of the mark. Start again from the
		// last checkpoint, which was taken from a whole aggregate.
		a.log.Error().Uint64("seq", marks.Stream).Msg("aggregate holds a partly loaded apply: resetting it and rebuilding from the checkpoint")
		a.m.tornResets.Inc()
		if err := a.store.Reset(ctx); err != nil {
			return nil, err
		}
		if marks, err = a.store.Marks(ctx); err != nil {
			return nil, err
		}
	}
	if marks.Stream == 0 && a.cfg.Checkpoints != nil {
		if marks, err = a.restore(ctx); err != nil {
			return nil, err
		}
	}
	metas, err := a.store.Metas(ctx)
	if err != nil {
		return nil, err
	}
	st := &sessionState{
		marks:     marks,
		metas:     metas,
		exposed:   make(map[string]string, 3*len(metas)),
		known:     map[string]struct{}{},
		perMetric: map[string]int{},
	}
	for name, m := range metas {
		for _, s := range exposedNames(name, m.Kind) {
			st.exposed[s] = name
		}
	}
	err = a.store.SeriesKeys(ctx, func(key string) {
		if _, ok := st.known[key]; ok {
			return
		}
		st.known[key] = struct{}{}
		st.perMetric[metricOf(key)]++
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// restore fills an empty aggregate from the node's latest checkpoint, so
// that only the deltas since the checkpoint are replayed (and deltas the
// stream no longer holds are not lost).
func (a *Aggregator) restore(ctx context.Context) (aggregate.Marks, error) {
	d, err := a.cfg.Checkpoints.LatestCheckpoint(ctx, a.cfg.Node)
	if err != nil {
		return aggregate.Marks{}, fmt.Errorf("restore: %w", err)
	}
	if d != nil && d.Mark() > 0 {
		err := a.store.Restore(ctx, d)
		switch {
		case err == nil:
			a.m.restores.Inc()
			a.log.Warn().Uint64("seq", d.Mark()).Int("fields", len(d.Series)).Msg("aggregate was empty: restored from checkpoint, replaying the rest")
		case errors.Is(err, aggregate.ErrNotEmpty):
			// Another instance restored, or traffic arrived first: use it.
		default:
			return aggregate.Marks{}, err
		}
	}
	return a.store.Marks(ctx)
}

func metricOf(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		return key[:i]
	}
	return key
}

// exposedNames are the sample names a metric shows in the exposition
// formats; two metrics sharing one would make duplicate series.
func exposedNames(name string, k aggregate.Kind) []string {
	switch k {
	case aggregate.Histogram:
		return []string{name, name + "_bucket", name + "_count", name + "_sum"}
	case aggregate.Counter:
		return []string{name, strings.TrimSuffix(name, "_total") + "_total"}
	default:
		return []string{name}
	}
}

// add folds one message into u, deciding every rejection; rejected
// messages are queued in st.letters.
func (st *sessionState) add(a *Aggregator, u *aggregate.Update, in item) {
	if in.reject != nil {
		u.Reject(string(in.reject.Reason), 1)
		a.m.rejected.Inc()
		st.letters = append(st.letters, deadLetter{in: in, rej: in.reject})
		return
	}
	d := in.dec
	if d.Seq <= st.marks.Producers[d.Producer] {
		a.m.duplicate.Inc()
		return
	}
	st.marks.Producers[d.Producer] = d.Seq
	u.ProducerMark(d.Producer, d.Seq)

	var first *streams.RejectError
	st.rejected = st.rejected[:0]
	for i := range d.Entries {
		e := &d.Entries[i]
		rej := e.Reject
		if rej == nil {
			rej = st.apply(a, u, e)
		}
		if rej != nil {
			u.Reject(string(rej.Reason), 1)
			a.m.rejectedEntries.WithLabelValues(string(rej.Reason)).Inc()
			st.rejected = append(st.rejected, i)
			if first == nil {
				first = rej
			}
		}
	}
	a.m.entries.Add(float64(len(d.Entries) - len(st.rejected)))
	if first == nil {
		a.m.applied.Inc()
		return
	}
	a.m.partlyRejected.Inc()
	st.letters = append(st.letters, deadLetter{in: in, rej: first, entries: slices.Clone(st.rejected)})
}

// apply folds one valid entry into u, or says why it cannot be applied.
func (st *sessionState) apply(a *Aggregator, u *aggregate.Update, e *streams.Entry) *streams.RejectError {
	meta := aggregate.Meta{Kind: aggregate.Kind(e.Type), Help: e.Help, Buckets: e.Buckets}
	if cur, ok := st.metas[e.Name]; ok {
		if err := cur.Compatible(meta); err != nil {
			reason := streams.ReasonTypeConflict
			if cur.Kind == meta.Kind {
				reason = streams.ReasonLayoutConflict
			}
			return &streams.RejectError{Reason: reason, Err: fmt.Errorf("metric %s: %w", e.Name, err)}
		}
	} else {
		names := exposedNames(e.Name, meta.Kind)
		for _, s := range names {
			if owner, taken := st.exposed[s]; taken {
				return &streams.RejectError{Reason: streams.ReasonTypeConflict,
					Err: fmt.Errorf("%s %s would expose %s, which metric %s already exposes", meta.Kind, e.Name, s, owner)}
			}
		}
		for _, s := range names {
			st.exposed[s] = e.Name
		}
		st.metas[e.Name] = meta
		u.Describe(e.Name, meta)
	}
	if _, ok := st.known[e.Key]; !ok {
		if len(st.known) >= a.cfg.MaxSeries {
			return &streams.RejectError{Reason: streams.ReasonCardinality,
				Err: fmt.Errorf("series %s: the node holds %d series, its limit", e.Key, a.cfg.MaxSeries)}
		}
		if st.perMetric[e.Name] >= a.cfg.MaxSeriesPerMetric {
			return &streams.RejectError{Reason: streams.ReasonCardinality,
				Err: fmt.Errorf("series %s: metric %s has %d series, its limit", e.Key, e.Name, a.cfg.MaxSeriesPerMetric)}
		}
		st.known[e.Key] = struct{}{}
		st.perMetric[e.Name]++
	}
	switch meta.Kind {
	case aggregate.Counter:
		u.Add(e.Key, e.Value)
	case aggregate.Gauge:
		u.Set(e.Key, e.Value)
	case aggregate.Histogram:
		for i, c := range e.Counts {
			if c > 0 {
				u.AddInt(aggregate.BucketField(e.Key, i), int64(c))
			}
		}
		u.Add(aggregate.SumField(e.Key), e.Sum)
	}
	return nil
}
