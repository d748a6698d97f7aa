package broadcast

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/backoff"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Config configures a Consumer.
type Config struct {
	// Admin recreates a stream deleted under the node: a connection
	// allowed to create streams, when the one given to New is not
	// (docs/security.md). Default: the one given to New.
	Admin jetstream.JetStream
	// Node is this node's name, for logs.
	Node string
	// Streams names the streams and subjects.
	Streams streams.Config
	// MaxTTL is the longest time to live honoured: a snapshot asking for
	// more is kept only MaxTTL from its publication, so no message can keep
	// a dead node listed beyond what this node's operator chose (default
	// DefaultMaxTTL; a node passes twice its own snapshot TTL).
	MaxTTL time.Duration
	// Limits bound a snapshot's decompressed size and fields; a snapshot
	// beyond them is refused before it is decoded whole (zero fields mean
	// streams' defaults).
	Limits streams.SnapshotLimits
	// Logger receives the consumer's logs.
	Logger zerolog.Logger
	// StreamCheck is how often a consumer that receives nothing checks
	// that the snapshot stream is still the one it reads (default 2 s): a
	// deleted one is created again, a replaced one read from its start.
	StreamCheck time.Duration
}

// DefaultMaxTTL is the longest snapshot TTL honoured by default: twice the
// default snapshot TTL (three 5 s intervals).
const DefaultMaxTTL = 30 * time.Second

// Results of a received snapshot, the label values of
// jetmetrics_broadcast_snapshots_total.
const (
	ResultStored   = "stored"
	ResultStale    = "stale"
	ResultRemoved  = "removed"
	ResultExpired  = "expired"
	ResultInvalid  = "invalid"
	ResultForged   = "forged"
	ResultOversize = "oversize"
	// ResultIncomplete is a chunked snapshot with a chunk missing
	// (expired, purged, never published) or of another version.
	ResultIncomplete = "incomplete"
	// ResultNoBase is an incremental snapshot whose base is not the
	// stored one (lost, skipped, reordered, or this node is new): it is
	// not applied, and the peer is asked for a full one.
	ResultNoBase = "nobase"
)

var results = []string{ResultStored, ResultStale, ResultRemoved, ResultExpired, ResultInvalid, ResultForged, ResultOversize, ResultIncomplete, ResultNoBase}

// Consumer stores every node's snapshots as they are published.
type Consumer struct {
	cfg   Config
	js    jetstream.JetStream
	peers *aggregate.Peers
	log   zerolog.Logger
	ready atomic.Bool
	// caughtUp is set once the session has stored every snapshot the
	// stream held when it started, and cleared when a session starts.
	caughtUp atomic.Bool

	received  *prometheus.CounterVec
	recreated prometheus.Counter
}

// New returns a broadcast consumer storing into peers; metrics go to reg.
func New(cfg Config, js jetstream.JetStream, peers *aggregate.Peers, reg prometheus.Registerer) (*Consumer, error) {
	cfg.Streams = cfg.Streams.WithDefaults()
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.StreamCheck <= 0 {
		cfg.StreamCheck = 2 * time.Second
	}
	c := &Consumer{
		cfg: cfg, js: js, peers: peers,
		log: cfg.Logger.With().Str("node", cfg.Node).Str("stream", cfg.Streams.SnapshotStream()).Logger(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmetrics_broadcast_snapshots_total",
			Help: "Snapshots received from the cluster, by result (stored, stale, removed, expired, invalid, forged: naming another node than its subject's, or a chunk not what its head declares, oversize: beyond this node's limits, incomplete: a chunk missing or of another version, nobase: an incremental snapshot whose base this node does not hold; a full one is asked for).",
		}, []string{"result"}),
		recreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_broadcast_stream_recreated_total",
			Help: "Times the broadcast consumer found the snapshot stream deleted and created it again with its configured definition.",
		}),
	}
	for _, r := range results {
		c.received.WithLabelValues(r)
	}
	for _, col := range []prometheus.Collector{c.received, c.recreated} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("broadcast metrics: %w", err)
		}
	}
	return c, nil
}

// Ready reports whether the consumer is reading the stream.
func (c *Consumer) Ready() bool { return c.ready.Load() }

// CaughtUp reports whether the current session has stored the newest
// snapshot the stream held of every node when the session started. Until
// then the peer store may hold older snapshots than this node served
// before (its Redis rolled back, or it restarted), so the cluster view
// waits for it.
func (c *Consumer) CaughtUp() bool { return c.caughtUp.Load() }

// Run consumes until ctx ends. Errors restart the consumer after a backoff;
// it starts again from each node's last snapshot, which is harmless since
// an older or equal version never replaces a newer one.
func (c *Consumer) Run(ctx context.Context) error {
	backoff.Run(ctx, &backoff.Backoff{}, func(ctx context.Context, _ *backoff.Backoff) error {
		defer c.ready.Store(false)
		return c.session(ctx)
	}, func(err error, wait time.Duration) {
		c.log.Warn().Err(err).Dur("backoff", wait).Msg("broadcast consumer restarting")
	})
	return nil
}

func (c *Consumer) session(ctx context.Context) error {
	c.caughtUp.Store(false)
	created, err := c.incarnation(ctx)
	if err != nil {
		return err
	}
	cons, err := c.js.OrderedConsumer(ctx, c.cfg.Streams.SnapshotStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.cfg.Streams.Subjects().SnapshotAll()},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
		// Bounded, or Next would not return (nor honour ctx) while the
		// stream stays deleted; the session's retry takes over.
		MaxResetAttempts: 3,
	})
	if err != nil {
		return fmt.Errorf("consume snapshots: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume snapshots: %w", err)
	}
	defer it.Stop()
	c.ready.Store(true)
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		c.caughtUp.Store(true)
	}
	// A session's stream can be deleted or replaced while no snapshot
	// comes: the ordered consumer, recreated on a stream created again,
	// would wait for sequences it already had. A watcher checks the stream
	// beside the reads and ends the session when it changed.
	sctx, stop := context.WithCancelCause(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		c.watchStream(sctx, created, stop)
	}()
	defer func() {
		stop(nil)
		<-watched
	}()
	for {
		msg, err := it.Next(jetstream.NextContext(sctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if cause := context.Cause(sctx); sctx.Err() != nil && cause != nil {
				return cause
			}
			return fmt.Errorf("read snapshots: %w", err)
		}
		if err := c.handle(ctx, msg); err != nil {
			return err
		}
		if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
			c.caughtUp.Store(true)
		}
	}
}

// watchStream checks every StreamCheck that the snapshot stream is still
// the one created at created, and ends the session through stop when it
// is not (or cannot be read).
func (c *Consumer) watchStream(ctx context.Context, created time.Time, stop context.CancelCauseFunc) {
	t := time.NewTicker(c.cfg.StreamCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := c.incarnation(ctx)
		if err != nil {
			if ctx.Err() == nil {
				stop(err)
			}
			return
		}
		if !now.Equal(created) {
			stop(fmt.Errorf("snapshot stream replaced (created %s, was %s): reading it from its start", now, created))
			return
		}
	}
}

// incarnation is the snapshot stream's creation time, which changes when
// it is deleted and created again. A missing stream is created again.
func (c *Consumer) incarnation(ctx context.Context) (time.Time, error) {
	sc := c.cfg.Streams.SnapshotStreamConfig()
	s, err := c.js.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		var created bool
		admin := c.cfg.Admin
		if admin == nil {
			admin = c.js
		}
		if created, err = streams.Ensure(ctx, admin, sc); err == nil {
			if created {
				c.recreated.Inc()
				c.log.Error().Str("stream", sc.Name).Msg("stream was deleted under the node: recreated it with its configured definition")
			}
			s, err = c.js.Stream(ctx, sc.Name)
		}
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("snapshot stream %s: %w", sc.Name, err)
	}
	return s.CachedInfo().Created, nil
}

// handle stores one snapshot. A malformed, forged or oversized one is
// counted and skipped; only Redis errors end the session.
//
// The subject's node token is the publishing identity: NATS permissions
// let only node X publish on <prefix>.snap.X (docs/security.md). So a
// snapshot is taken only when the node named in its headers and in its
// data is the subject's, and it is decoded, within Config.Limits, before
// it is stored: the cluster view never meets one it cannot read.
func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg) error {
	node := msg.Subject()[strings.LastIndexByte(msg.Subject(), '.')+1:]
	info, err := streams.ParseSnapshotHeaders(msg.Headers(), node)
	if err != nil {
		result := ResultInvalid
		if info.Node != node {
			result = ResultForged
		}
		c.received.WithLabelValues(result).Inc()
		c.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("snapshot skipped")
		return nil
	}
	if info.Removed && msg.Headers().Get(jetstream.MarkerReasonHeader) != "" {
		// The server's marker: the last snapshot expired without a removal.
		// The peer is down, not gone: its record stays, so it shows as down.
		if err := c.peers.Expire(ctx, node); err != nil {
			return err
		}
		c.received.WithLabelValues(ResultExpired).Inc()
		return nil
	}
	if info.Removed {
		// A graceful stop, or an operator's forget.
		removed, err := c.peers.Remove(ctx, node, info.Version)
		if err != nil {
			return err
		}
		if !removed {
			c.received.WithLabelValues(ResultStale).Inc()
			return nil
		}
		c.received.WithLabelValues(ResultRemoved).Inc()
		c.log.Info().Str("peer", node).Msg("peer removed")
		return nil
	}
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("snapshot metadata: %w", err)
	}
	data, err := c.assemble(ctx, msg, node, info.Version)
	switch {
	case errors.Is(err, streams.ErrSnapshotTooLarge):
		c.received.WithLabelValues(ResultOversize).Inc()
		c.log.Warn().Err(err).Str("subject", msg.Subject()).Uint64("seq", info.Version).Msg("snapshot skipped")
		return nil
	case errors.Is(err, streams.ErrSnapshotIncomplete):
		c.received.WithLabelValues(ResultIncomplete).Inc()
		c.log.Warn().Err(err).Str("subject", msg.Subject()).Uint64("seq", info.Version).Msg("snapshot skipped: the previous complete one stays")
		return nil
	case errors.Is(err, streams.ErrSnapshotChunkForged):
		c.received.WithLabelValues(ResultForged).Inc()
		c.log.Warn().Err(err).Str("subject", msg.Subject()).Uint64("seq", info.Version).Msg("snapshot skipped")
		return nil
	case err != nil:
		return err
	}
	// The TTL runs from publication (the server's timestamp), not from
	// receipt: a replayed old snapshot of a dead node is already expired
	// and is not stored. It is capped by this node's own setting.
	expires := md.Timestamp.Add(min(info.TTL, c.cfg.MaxTTL))
	if info.Delta {
		return c.handleDelta(ctx, msg.Subject(), node, info, expires, data)
	}
	d, err := streams.DecodeSnapshotLimited(data, c.cfg.Limits)
	switch {
	case errors.Is(err, streams.ErrSnapshotTooLarge):
		c.received.WithLabelValues(ResultOversize).Inc()
		c.log.Warn().Err(err).Str("subject", msg.Subject()).Uint64("seq", info.Version).Msg("snapshot skipped")
		return nil
	case err != nil:
		c.received.WithLabelValues(ResultInvalid).Inc()
		c.log.Warn().Err(err).Str("subject", msg.Subject()).Uint64("seq", info.Version).Msg("snapshot skipped")
		return nil
	case d.Node != node:
		c.received.WithLabelValues(ResultForged).Inc()
		c.log.Warn().Str("subject", msg.Subject()).Str("peer", d.Node).Msg("snapshot skipped: its data names another node than its subject")
		return nil
	}
	ok, err := c.peers.Put(ctx, aggregate.Snapshot{Node: node, Version: info.Version, Generated: info.Generated, Expires: expires, Data: data})
	if err != nil {
		return err
	}
	if ok {
		c.received.WithLabelValues(ResultStored).Inc()
	} else {
		c.received.WithLabelValues(ResultStale).Inc()
	}
	return nil
}

// handleDelta stores an incremental snapshot onto exactly its base, or
// asks its node for a full one. It is decoded first, within the limits, so
// the cluster view never meets one it cannot read.
func (c *Consumer) handleDelta(ctx context.Context, subject, node string, info streams.SnapshotInfo, expires time.Time, data []byte) error {
	if _, err := streams.DecodeSnapshotDelta(data, c.cfg.Limits); err != nil {
		result := ResultInvalid
		if errors.Is(err, streams.ErrSnapshotTooLarge) {
			result = ResultOversize
		}
		c.received.WithLabelValues(result).Inc()
		c.log.Warn().Err(err).Str("subject", subject).Uint64("seq", info.Version).Msg("snapshot delta skipped")
		return nil
	}
	res, err := c.peers.PutDelta(ctx, aggregate.Snapshot{Node: node, Version: info.Version, Generated: info.Generated, Expires: expires, Data: data},
		info.Base.Version, info.Base.Generated)
	if err != nil {
		return err
	}
	switch res {
	case aggregate.DeltaStored:
		c.received.WithLabelValues(ResultStored).Inc()
	case aggregate.DeltaStale:
		c.received.WithLabelValues(ResultStale).Inc()
	default:
		c.received.WithLabelValues(ResultNoBase).Inc()
		c.log.Debug().Str("peer", node).Uint64("seq", info.Version).Uint64("base", info.Base.Version).Msg("snapshot delta without its base: asking for a full one")
		// Best effort: the peer's periodic full snapshot comes anyway.
		if err := c.js.Conn().Publish(c.cfg.Streams.Subjects().SnapshotRequest(node), nil); err != nil {
			c.log.Warn().Err(err).Str("peer", node).Msg("full snapshot not asked for; waiting for the periodic one")
		}
	}
	return nil
}

// assemble returns the whole data of the snapshot whose head is msg: its
// own data, or that and its chunks (streams.AssembleSnapshot), fetched
// from the stream. An error other than the streams' refusals means the
// stream did not answer: the session restarts and reads the head again.
func (c *Consumer) assemble(ctx context.Context, msg jetstream.Msg, node string, version uint64) ([]byte, error) {
	if !streams.IsChunked(msg.Headers()) {
		return msg.Data(), nil
	}
	s, err := c.js.Stream(ctx, c.cfg.Streams.SnapshotStream())
	if err != nil {
		return nil, fmt.Errorf("snapshot chunks of %s: %w", node, err)
	}
	maxBytes := c.cfg.Limits.MaxBytes
	if maxBytes <= 0 {
		maxBytes = streams.DefaultMaxSnapshotBytes
	}
	return streams.AssembleSnapshot(ctx, streams.StreamChunkGetter(s), msg.Subject(), node, version, msg.Headers(), msg.Data(), maxBytes)
}
