package aggregator

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// errStreamReplaced ends a session whose delta stream was deleted and
// created again under it: its sequences restarted, so the session's
// position means nothing in the new one.
var errStreamReplaced = errors.New("delta stream replaced")

// streamMetrics count what happened to the streams under the aggregator.
type streamMetrics struct {
	resets    prometheus.Counter
	recreated *prometheus.CounterVec
}

func newStreamMetrics(reg prometheus.Registerer) (*streamMetrics, error) {
	m := &streamMetrics{
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_stream_resets_total",
			Help: "Times the delta stream was found replaced (deleted and created again) under the aggregate, which then applied the new stream from its first message.",
		}),
		recreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_streams_recreated_total",
			Help: "Streams the aggregator found deleted and created again with their configured definition, by stream.",
		}, []string{"stream"}),
	}
	for _, c := range []prometheus.Collector{m.resets, m.recreated} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ensure recreates the stream sc defines if it is missing, saying so once
// per recreation.
func (a *Aggregator) ensure(ctx context.Context, sc jetstream.StreamConfig) error {
	created, err := streams.Ensure(ctx, a.admin(), sc)
	if err != nil {
		return err
	}
	if created {
		a.sm.recreated.WithLabelValues(sc.Name).Inc()
		a.log.Error().Str("stream", sc.Name).Msg("stream was deleted under the node: recreated it with its configured definition")
	}
	return nil
}

// deltaIncarnation identifies the delta stream as it is now: its creation
// time, in Unix ns. A missing stream is recreated first.
func (a *Aggregator) deltaIncarnation(ctx context.Context) (inc, lastSeq uint64, err error) {
	sc := a.cfg.Streams.DeltaStreamConfig()
	s, err := a.js.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if err = a.ensure(ctx, sc); err == nil {
			s, err = a.js.Stream(ctx, sc.Name)
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("delta stream %s: %w", sc.Name, err)
	}
	info := s.CachedInfo()
	return Incarnation(info), info.State.LastSeq, nil
}

// Incarnation identifies the delta stream described by info as it is
// now: its creation time, in Unix ns, which the server keeps and every
// replica shares (aggregate.Marks.Incarnation).
func Incarnation(info *jetstream.StreamInfo) uint64 {
	return uint64(info.Created.UnixNano())
}

// Base is the base (aggregate.Marks.Base) an aggregate at marks m takes
// in the delta stream incarnation inc, whose last sequence is streamLast:
// the rule incarnate follows. The aggregate's version after applying the
// stream's message at sequence s is Base + s.
func Base(m aggregate.Marks, inc, streamLast uint64) uint64 {
	switch {
	case m.Incarnation == inc:
		return m.Base
	case m.Incarnation == 0 && m.Seq() <= streamLast:
		// Recorded before incarnations were: the stream is taken as the
		// mark's own.
		return m.Base
	default:
		// Replaced under the aggregate: the new stream starts above it.
		return m.Stream
	}
}

// sameStream ends the session (errStreamReplaced) when the delta stream
// is no longer the incarnation inc the session reads.
func (a *Aggregator) sameStream(ctx context.Context, inc uint64) error {
	now, _, err := a.deltaIncarnation(ctx)
	if err != nil {
		return err
	}
	if now != inc {
		return fmt.Errorf("%w: the session read incarnation %d, the stream is now %d", errStreamReplaced, inc, now)
	}
	return nil
}

// incarnate places the session's aggregate in the delta stream as it is
// now, before anything is read from it.
//
// The stored incarnation is the stream's: nothing to do. None stored yet
// (a new aggregate, or one written before incarnations were recorded) and
// the stream reaches the mark: this stream is taken as the mark's. Any
// other case is a stream deleted and created again under the aggregate,
// its sequences restarted below the mark: resuming at the mark would skip
// every delta the new stream took up to there, silently. Instead the
// aggregate and its producer marks are kept, the new incarnation is
// recorded with the current mark as its base, and the new stream is
// applied from its first message. Every batch applied before is at or
// below its producer's mark and is dropped as a duplicate, so every batch
// the new stream acknowledged counts once; versions (the mark) keep
// growing. What the old stream held and the aggregate had not applied went
// with it.
func (a *Aggregator) incarnate(ctx context.Context, st *sessionState) error {
	inc, last, err := a.deltaIncarnation(ctx)
	if err != nil {
		return err
	}
	m := st.marks
	if m.Incarnation == inc {
		return nil
	}
	base := Base(m, inc, last)
	if err := a.store.Rebase(ctx, m, inc, base); err != nil {
		return err
	}
	st.marks.Incarnation, st.marks.Base = inc, base
	if base == m.Base {
		a.log.Debug().Uint64("seq", m.Stream).Uint64("incarnation", inc).Msg("delta stream incarnation recorded")
		return nil
	}
	a.sm.resets.Inc()
	a.log.Error().Uint64("seq", m.Seq()).Uint64("stream_last_seq", last).Uint64("incarnation", inc).Uint64("was", m.Incarnation).
		Msg("delta stream was deleted and created again under the aggregate: keeping the aggregate and its producer marks, applying the new stream from its first message; deltas the old stream held beyond the mark are lost")
	return nil
}

// admin is the connection that recreates deleted streams.
func (a *Aggregator) admin() jetstream.JetStream {
	if a.cfg.Admin != nil {
		return a.cfg.Admin
	}
	return a.js
}
