package node

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/consumers/backlog"
	"github.com/jetmetrics/jetmetrics/consumers/broadcast"
	"github.com/jetmetrics/jetmetrics/consumers/snapshot"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
)

// components builds the node's components from its configuration, in the
// order they start: a subsystem is one entry here.
func (n *Node) components(ctx context.Context, js, admin jetstream.JetStream, rdb *redis.Client, rs *redisserver.Server, nc *nats.Conn) ([]Component, error) {
	agg, err := aggregator.New(aggregator.Config{
		Node:               n.cfg.Name,
		Streams:            n.cfg.Streams,
		Limits:             n.cfg.Limits,
		MaxSeries:          n.cfg.MaxSeries,
		MaxSeriesPerMetric: n.cfg.MaxSeriesPerMetric,
		MaxProducers:       n.cfg.MaxProducers,
		MaxMessageBytes:    n.cfg.MaxBatchBytes,
		Checkpoints:        snapshot.Checkpoints{JS: js, Streams: n.cfg.Streams},
		Admin:              admin,
		Logger:             n.cfg.Logger, // the aggregator adds the node itself
	}, js, aggregate.NewStore(rdb, n.cfg.RedisKeyPrefix, n.cfg.Name), n.reg)
	if err != nil {
		return nil, err
	}
	n.agg.Store(agg)
	pub, err := snapshot.New(snapshot.Config{
		Node:      n.cfg.Name,
		Streams:   n.cfg.Streams,
		Interval:  n.cfg.SnapshotInterval,
		TTL:       n.cfg.SnapshotTTL,
		FullEvery: n.cfg.SnapshotFullEvery,
		Logger:    n.cfg.Logger,
		Memory:    agg,
		Floor:     n.publishFloor,
		Admin:     admin,
	}, js, aggregate.NewStore(rdb, n.cfg.RedisKeyPrefix, n.cfg.Name), n.reg)
	if err != nil {
		return nil, err
	}
	// A peer's snapshot is kept at most twice this node's own TTL: no
	// message can keep a dead node listed for longer (docs/security.md).
	maxTTL := 2 * snapshot.Config{Interval: n.cfg.SnapshotInterval, TTL: n.cfg.SnapshotTTL}.EffectiveTTL()
	bc, err := broadcast.New(broadcast.Config{Node: n.cfg.Name, Streams: n.cfg.Streams, MaxTTL: maxTTL, Logger: n.cfg.Logger, Admin: admin}, js, n.peers.Load(), n.reg)
	if err != nil {
		return nil, err
	}
	n.broadcast.Store(bc)
	scan, err := backlog.New(backlog.Config{Node: n.cfg.Name, Streams: n.cfg.Streams, Interval: n.cfg.OrphanScanInterval, Applied: appliedBy(agg), Logger: n.cfg.Logger}, js, n.peers.Load(), n.reg)
	if err != nil {
		return nil, err
	}
	comps := []Component{
		component{name: "aggregator", run: agg.Run, ready: n.aggregatorReady},
		component{name: "snapshot-publisher", run: pub.Run},
		component{name: "broadcast", run: bc.Run, ready: readyFlag(bc.Ready, "not consuming snapshots yet")},
		component{name: "backlog-scanner", run: scan.Run},
	}
	if rs != nil {
		comps = append(comps, component{name: "redis-server", run: rs.Supervise})
	}
	if n.cfg.Demo {
		comps = append(comps, component{name: "demo", run: func(ctx context.Context) error { return runDemo(ctx, nc, n.cfg) }})
	}
	observers, err := n.observerSlots(ctx, js, admin, rdb, nc)
	if err != nil {
		return nil, err
	}
	return append(comps, observers...), nil
}

// aggregatorReady: the aggregator consumes and applies this node's deltas,
// and /metrics can be served.
func (n *Node) aggregatorReady(ctx context.Context) error {
	if a := n.agg.Load(); a == nil || !a.Ready() {
		return errors.New("not consuming yet")
	}
	return n.applying(ctx)
}
