package volumecache

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
	"github.com/jetmetrics/jetmetrics/pkg/obscache"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Config configures a Writer.
type Config struct {
	// Node is this node's name, for logs.
	Node string
	// Streams names the observation stream and its subjects.
	Streams streams.ObsConfig
	// TTL is how long after its observation a result stays in the cache
	// (default 30 s).
	TTL time.Duration
	// Now is the clock that decides what has expired (default time.Now).
	Now func() time.Time
}

// DefaultTTL is the cache TTL of the Backend.AI proposal.
const DefaultTTL = 30 * time.Second

// Writer copies the newest volume results into the cache.
type Writer struct {
	cfg     Config
	js      jetstream.JetStream
	cache   *obscache.Cache
	log     zerolog.Logger
	ready   atomic.Bool
	results *prometheus.CounterVec
}

// New returns a writer from js's observation stream into cache. It
// registers jetmetrics_volume_cache_results_total{result} with reg (nil:
// none).
func New(cfg Config, js jetstream.JetStream, cache *obscache.Cache, log zerolog.Logger, reg prometheus.Registerer) (*Writer, error) {
	if err := cfg.Streams.Validate(); err != nil {
		return nil, fmt.Errorf("new volume cache writer: %w", err)
	}
	cfg.Streams = cfg.Streams.WithDefaults()
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Writer{
		cfg: cfg, js: js, cache: cache,
		log: log.With().Str("stream", cfg.Streams.ObsStream()).Logger(), // the caller's logger names the node
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmetrics_volume_cache_results_total",
			Help: "Volume results read from the observation stream, by what the cache did (stored, stale, expired, invalid).",
		}, []string{"result"}),
	}
	for _, r := range []string{"stored", "stale", "expired", "invalid"} {
		w.results.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(w.results); err != nil {
			return nil, fmt.Errorf("register volume cache metrics: %w", err)
		}
	}
	return w, nil
}

// Ready reports whether the writer is reading the stream.
func (w *Writer) Ready() bool { return w.ready.Load() }

// Run writes until ctx ends, then returns nil.
func (w *Writer) Run(ctx context.Context) error {
	backoff.Run(ctx, &backoff.Backoff{}, func(ctx context.Context, retry *backoff.Backoff) error {
		defer w.ready.Store(false)
		return w.session(ctx, retry)
	}, func(err error, wait time.Duration) {
		w.log.Warn().Err(err).Dur("backoff", wait).Msg("volume cache writer restarting")
	})
	return nil
}

func (w *Writer) session(ctx context.Context, retry *backoff.Backoff) error {
	subj := w.cfg.Streams.Subjects()
	cons, err := w.js.OrderedConsumer(ctx, w.cfg.Streams.ObsStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj.ObservationKind(streams.ObsKindVolume)},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("consume volume results: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume volume results: %w", err)
	}
	defer it.Stop()
	w.ready.Store(true)
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read volume results: %w", err)
		}
		if err := w.handle(ctx, msg); err != nil {
			return err
		}
		retry.Reset()
	}
}

// handle caches one result; only a Redis error ends the session.
func (w *Writer) handle(ctx context.Context, msg jetstream.Msg) error {
	_, volume, err := w.cfg.Streams.Subjects().ParseObservation(msg.Subject())
	var o streams.Observation
	if err == nil {
		o, err = streams.DecodeObservation(msg.Data())
	}
	if err == nil && o.Volume != volume {
		err = fmt.Errorf("result for volume %q on the subject of %q", o.Volume, volume)
	}
	if err != nil {
		w.results.WithLabelValues("invalid").Inc()
		w.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("volume result skipped")
		return nil
	}
	tok, _ := streams.TargetToken(volume)
	stored, err := w.cache.Put(ctx, tok, obscache.Entry{
		At: o.ObservedAt, Revision: o.LeaseRevision, Data: msg.Data(), Expires: o.ObservedAt.Add(w.cfg.TTL),
	}, w.cfg.Now())
	switch {
	case err != nil:
		return err
	case stored:
		w.results.WithLabelValues("stored").Inc()
	case !o.ObservedAt.Add(w.cfg.TTL).After(w.cfg.Now()):
		w.results.WithLabelValues("expired").Inc()
	default:
		w.results.WithLabelValues("stale").Inc()
	}
	return nil
}

// Get returns the cached result of volume; ok is false on a miss.
func Get(ctx context.Context, cache *obscache.Cache, volume string) (o streams.Observation, ok bool, err error) {
	tok, err := streams.TargetToken(volume)
	if err != nil {
		return o, false, err
	}
	e, ok, err := cache.Get(ctx, tok)
	if err != nil || !ok {
		return o, false, err
	}
	o, err = streams.DecodeObservation(e.Data)
	if err != nil {
		return o, false, errors.Join(fmt.Errorf("cached result of %s", volume), err)
	}
	return o, true, nil
}
