package broadcast

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/backoff"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Config configures a Consumer.
type Config struct {
	// Node is this node's name, for logs.
	Node string
	// Streams names the streams and subjects.
	Streams streams.Config
	// Logger receives the consumer's logs.
	Logger zerolog.Logger
}

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

	received *prometheus.CounterVec
}

// New returns a broadcast consumer storing into peers; metrics go to reg.
func New(cfg Config, js jetstream.JetStream, peers *aggregate.Peers, reg prometheus.Registerer) (*Consumer, error) {
	cfg.Streams = cfg.Streams.WithDefaults()
	c := &Consumer{
		cfg: cfg, js: js, peers: peers,
		log: cfg.Logger.With().Str("node", cfg.Node).Str("stream", cfg.Streams.SnapshotStream()).Logger(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmetrics_broadcast_snapshots_total",
			Help: "Snapshots received from the cluster, by result (stored, stale, removed, expired, invalid).",
		}, []string{"result"}),
	}
	if err := reg.Register(c.received); err != nil {
		return nil, fmt.Errorf("broadcast metrics: %w", err)
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
	var retry backoff.Backoff
	for {
		err := c.session(ctx)
		c.ready.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		wait := retry.Next()
		c.log.Warn().Err(err).Dur("backoff", wait).Msg("broadcast consumer restarting")
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

func (c *Consumer) session(ctx context.Context) error {
	c.caughtUp.Store(false)
	cons, err := c.js.OrderedConsumer(ctx, c.cfg.Streams.SnapshotStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.cfg.Streams.Subjects().SnapshotAll()},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
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
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
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

// handle stores one snapshot. A malformed one is counted and skipped; only
// Redis errors end the session.
func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg) error {
	node := msg.Subject()[strings.LastIndexByte(msg.Subject(), '.')+1:]
	info, err := streams.ParseSnapshotHeaders(msg.Headers(), node)
	if err != nil {
		c.received.WithLabelValues("invalid").Inc()
		c.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("snapshot skipped")
		return nil
	}
	if info.Removed && msg.Headers().Get(jetstream.MarkerReasonHeader) != "" {
		// The server's marker: the last snapshot expired without a removal.
		// The peer is down, not gone: its record stays, so it shows as down.
		if err := c.peers.Expire(ctx, node); err != nil {
			return err
		}
		c.received.WithLabelValues("expired").Inc()
		return nil
	}
	if info.Removed {
		// A graceful stop, or an operator's forget.
		if err := c.peers.Remove(ctx, node, info.Version); err != nil {
			return err
		}
		c.received.WithLabelValues("removed").Inc()
		c.log.Info().Str("peer", node).Msg("peer removed")
		return nil
	}
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("snapshot metadata: %w", err)
	}
	// The TTL runs from publication, not from receipt: a replayed old
	// snapshot of a dead node is already expired and is not stored.
	expires := md.Timestamp.Add(info.TTL)
	ok, err := c.peers.Put(ctx, aggregate.Snapshot{Node: node, Version: info.Version, Generated: info.Generated, Expires: expires, Data: msg.Data()})
	if err != nil {
		return err
	}
	if ok {
		c.received.WithLabelValues("stored").Inc()
	} else {
		c.received.WithLabelValues("stale").Inc()
	}
	return nil
}
