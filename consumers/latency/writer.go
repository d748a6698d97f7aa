package latency

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/backoff"
	"github.com/jetmetrics/jetmetrics/pkg/latency"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Config configures a Writer.
type Config struct {
	// Node is this node's name, for logs.
	Node string
	// Streams names the observation stream and its subjects.
	Streams streams.ObsConfig
	// Services are the configured services: the writer resumes the stream
	// after the lowest position stored among them. Results of other
	// services are folded too.
	Services []string
	// Tracker sets each state's window and EWMA half-life (zero value:
	// pkg/latency's defaults).
	Tracker latency.Config
	// MaxCASAttempts bounds the compare-and-set retries of one fold when
	// another writer changes the same key (default 10).
	MaxCASAttempts int
}

// Writer folds probe results into the services' states.
type Writer struct {
	cfg     Config
	js      jetstream.JetStream
	store   *Store
	resets  *latency.Resets
	log     zerolog.Logger
	ready   atomic.Bool
	results *prometheus.CounterVec
}

// New returns a writer from js's observation stream into store. resets
// counts and logs the states found unusable. It registers
// jetmetrics_latency_state_results_total{result} with reg (nil: none).
func New(cfg Config, js jetstream.JetStream, store *Store, resets *latency.Resets, log zerolog.Logger, reg prometheus.Registerer) (*Writer, error) {
	if err := cfg.Streams.Validate(); err != nil {
		return nil, fmt.Errorf("new latency state writer: %w", err)
	}
	if err := cfg.Tracker.Validate(); err != nil {
		return nil, fmt.Errorf("new latency state writer: %w", err)
	}
	if resets == nil {
		return nil, errors.New("new latency state writer: no Resets")
	}
	for _, s := range cfg.Services {
		if _, err := streams.TargetToken(s); err != nil {
			return nil, fmt.Errorf("new latency state writer: service %q: %w", s, err)
		}
	}
	cfg.Streams = cfg.Streams.WithDefaults()
	if cfg.MaxCASAttempts <= 0 {
		cfg.MaxCASAttempts = 10
	}
	w := &Writer{
		cfg: cfg, js: js, store: store, resets: resets,
		log: log.With().Str("stream", cfg.Streams.ObsStream()).Logger(), // the caller's logger names the node
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmetrics_latency_state_results_total",
			Help: "Probe results read from the observation stream, by what the latency state writer did (folded, duplicate, invalid).",
		}, []string{"result"}),
	}
	for _, r := range []string{"folded", "duplicate", "invalid"} {
		w.results.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(w.results); err != nil {
			return nil, fmt.Errorf("register latency state metrics: %w", err)
		}
	}
	return w, nil
}

// Ready reports whether the writer is reading the stream.
func (w *Writer) Ready() bool { return w.ready.Load() }

// Run folds until ctx ends, then returns nil. A Redis or NATS error
// restarts the session after a backoff, from the positions in Redis.
func (w *Writer) Run(ctx context.Context) error {
	backoff.Run(ctx, &backoff.Backoff{}, func(ctx context.Context, retry *backoff.Backoff) error {
		defer w.ready.Store(false)
		return w.session(ctx, retry)
	}, func(err error, wait time.Duration) {
		w.log.Warn().Err(err).Dur("backoff", wait).Msg("latency state writer restarting")
	})
	return nil
}

// start is the stream sequence to resume from: one past the lowest
// position stored among the configured services, or the stream's start
// when one of them has none. Every fold is idempotent by sequence, so
// starting early only skips duplicates.
func (w *Writer) start(ctx context.Context) (uint64, error) {
	tokens := make([]string, len(w.cfg.Services))
	for i, s := range w.cfg.Services {
		tokens[i], _ = streams.TargetToken(s)
	}
	entries, err := w.store.GetMany(ctx, tokens)
	if err != nil {
		return 0, err
	}
	var low uint64
	for i, tok := range tokens {
		e := entries[tok]
		if e.Type != "hash" || !e.seqValid() || e.Seq == 0 {
			return 1, nil
		}
		if i == 0 || e.Seq < low {
			low = e.Seq
		}
	}
	return low + 1, nil
}

func (w *Writer) session(ctx context.Context, retry *backoff.Backoff) error {
	from, err := w.start(ctx)
	if err != nil {
		return err
	}
	cc := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{w.cfg.Streams.Subjects().ObservationKind(streams.ObsKindProbe)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if from > 1 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := w.js.OrderedConsumer(ctx, w.cfg.Streams.ObsStream(), cc)
	if err != nil {
		return fmt.Errorf("consume probe results: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume probe results: %w", err)
	}
	defer it.Stop()
	w.ready.Store(true)
	w.log.Debug().Uint64("seq", from).Msg("latency state writer reading")
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read probe results: %w", err)
		}
		if err := w.handle(ctx, msg); err != nil {
			return err
		}
		retry.Reset()
	}
}

// handle folds one result; only a Redis error ends the session.
func (w *Writer) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("probe result metadata: %w", err)
	}
	_, service, err := w.cfg.Streams.Subjects().ParseObservation(msg.Subject())
	var r streams.ProbeResult
	if err == nil {
		r, err = streams.DecodeProbeResult(msg.Data())
	}
	if err == nil {
		if r.Service != service {
			err = fmt.Errorf("result for service %q on the subject of %q", r.Service, service)
		}
	}
	if err != nil {
		w.results.WithLabelValues("invalid").Inc()
		w.log.Warn().Err(err).Str("subject", msg.Subject()).Uint64("seq", meta.Sequence.Stream).Msg("probe result skipped")
		return nil
	}
	folded, err := w.Fold(ctx, meta.Sequence.Stream, r)
	if err != nil {
		return err
	}
	if folded {
		w.results.WithLabelValues("folded").Inc()
	} else {
		w.results.WithLabelValues("duplicate").Inc()
	}
	return nil
}

// Fold applies r, the stream's message seq, to its service's state unless
// the state already holds seq or a later one. It reports whether it did.
func (w *Writer) Fold(ctx context.Context, seq uint64, r streams.ProbeResult) (bool, error) {
	tok, err := streams.TargetToken(r.Service)
	if err != nil {
		return false, fmt.Errorf("fold result %d: %w", seq, err)
	}
	for range w.cfg.MaxCASAttempts {
		old, err := w.store.Get(ctx, tok)
		if err != nil {
			return false, err
		}
		if old.Type == "hash" && old.seqValid() && old.Seq >= seq {
			return false, nil
		}
		t, err := w.restore(r.Service, old)
		if err != nil {
			return false, err
		}
		if r.Success {
			err = t.Observe(r.ObservedAt, r.Latency)
		} else {
			err = t.Fail(r.ObservedAt, r.Reason+": "+r.Error)
		}
		if err != nil {
			// Validated results cannot fail here; skip rather than stall.
			w.log.Warn().Err(err).Uint64("seq", seq).Str("service", r.Service).Msg("probe result not folded")
		}
		state, err := t.MarshalBinary()
		if err != nil {
			return false, fmt.Errorf("encode latency state of %s: %w", r.Service, err)
		}
		ok, err := w.store.Put(ctx, tok, old, Entry{Seq: seq, State: state, Node: r.Node, At: r.ObservedAt})
		if err != nil || ok {
			return ok, err
		}
	}
	return false, fmt.Errorf("fold result %d of %s: the key kept changing under %d attempts", seq, r.Service, w.cfg.MaxCASAttempts)
}

// restore is the tracker old holds, or a fresh one: silently when there
// is no state yet, counted and logged when it is unusable.
func (w *Writer) restore(service string, old Entry) (*latency.Tracker, error) {
	if !old.Exists() {
		return latency.New(w.cfg.Tracker)
	}
	if err := old.check(); err != nil {
		w.resets.Record(service, err)
		return latency.New(w.cfg.Tracker)
	}
	if !old.seqValid() {
		w.resets.Record(service, fmt.Errorf("%w: seq %q is not a number", errBadEntry, old.RawSeq))
		return latency.New(w.cfg.Tracker)
	}
	return w.resets.Restore(service, old.State, w.cfg.Tracker)
}

// Lookup returns the stored state of service: its tracker (nil when there
// is none or it is unusable) and its entry.
func Lookup(ctx context.Context, store *Store, service string) (*latency.Tracker, Entry, error) {
	tok, err := streams.TargetToken(service)
	if err != nil {
		return nil, Entry{}, err
	}
	e, err := store.Get(ctx, tok)
	if err != nil || e.Type != "hash" {
		return nil, e, err
	}
	t, derr := latency.Decode(e.State)
	if derr != nil {
		return nil, e, nil
	}
	return t, e, nil
}
