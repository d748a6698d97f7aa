package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Config configures a Publisher. Zero values mean the documented defaults.
type Config struct {
	// Admin recreates a stream deleted under the node: a connection
	// allowed to create streams, when the one given to New is not
	// (docs/security.md). Default: the one given to New.
	Admin jetstream.JetStream
	// Node is the node whose aggregate is published (required).
	Node string
	// Streams names the streams and subjects.
	Streams streams.Config
	// Interval is how often a snapshot is published (default 5 s).
	Interval time.Duration
	// TTL is how long peers keep a snapshot (default 3 intervals).
	TTL time.Duration
	// FullEvery makes every FullEvery-th snapshot a full one and the
	// others deltas of the series changed since the previous snapshot
	// (default DefaultFullEvery; 1 publishes full snapshots only, as nodes
	// before incremental snapshots do). A checkpoint due, a peer's request
	// and any failed publication also make the next snapshot full.
	FullEvery int
	// CheckpointInterval is how often the snapshot is also written as the
	// node's checkpoint (default 1 min; never more often than Interval).
	CheckpointInterval time.Duration
	// Logger receives the publisher's logs.
	Logger zerolog.Logger
	// Memory, when set, holds the aggregate in memory (the aggregator): a
	// snapshot is taken from it while it has one, and from Redis
	// otherwise. Reading a large aggregate from Redis keeps Redis busy
	// (HGETALL) while the aggregator waits to apply.
	Memory interface {
		Held() (aggregate.Held, bool)
	}
	// Floor, when set, is the lowest aggregate version worth publishing: a
	// node catching up after a crash or a Redis rollback holds an older
	// aggregate than it published before, and publishing it would replace
	// its newer snapshot in the stream. Older ones are skipped, not failed.
	Floor func() uint64
}

// DefaultInterval is the default snapshot interval.
const DefaultInterval = 5 * time.Second

// DefaultFullEvery is the default FullEvery: a full snapshot a minute at
// the default interval, when the default checkpoint is due anyway (see
// docs/capacity.md for the measured trade-off).
const DefaultFullEvery = 12

func (c Config) withDefaults() Config {
	c.Streams = c.Streams.WithDefaults()
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.TTL <= 0 {
		c.TTL = 3 * c.Interval
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = time.Minute
	}
	if c.FullEvery <= 0 {
		c.FullEvery = DefaultFullEvery
	}
	return c
}

// EffectiveTTL is the TTL the publisher gives its snapshots: TTL, or
// three intervals when it is zero. Receivers honour at most a small
// multiple of their own (broadcast.Config.MaxTTL).
func (c Config) EffectiveTTL() time.Duration { return c.withDefaults().TTL }

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if err := streams.CheckToken("node name", c.Node); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	c = c.withDefaults()
	if c.TTL < time.Second {
		return fmt.Errorf("snapshot: ttl %s is under the 1s JetStream allows", c.TTL)
	}
	if c.TTL < c.Interval {
		return fmt.Errorf("snapshot: ttl %s is shorter than the interval %s: peers would drop live nodes", c.TTL, c.Interval)
	}
	return nil
}

// Publisher publishes one node's snapshots.
type Publisher struct {
	cfg      Config
	js       jetstream.JetStream
	store    *aggregate.Store
	log      zerolog.Logger
	subjects streams.Subjects

	published prometheus.Counter
	failures  prometheus.Counter
	recreated prometheus.Counter
	bytes     prometheus.Gauge
	series    prometheus.Gauge
	chunks    prometheus.Counter
	deltas    prometheus.Counter
	requests  prometheus.Counter
	lastCkpt  time.Time
	snapSlot  string
	ckptSlot  string
	lastMark  uint64
	// lastSeq is the snapshot stream sequence of the last publish.
	lastSeq    uint64
	hasVersion bool

	// The last snapshot published, which the next delta applies on, and
	// its fields; hasBase is false when the next must be full.
	base      streams.DeltaBase
	hasBase   bool
	sinceFull int
	tracked   tracker
	// untracked is set when the base was a dump published whole, whose
	// fields are not tracked (see Publish).
	untracked bool
	// wantFull is set by a peer's request for a full snapshot.
	wantFull atomic.Bool
}

// New returns a publisher of store's aggregate; its metrics go to reg.
func New(cfg Config, js jetstream.JetStream, store *aggregate.Store, reg prometheus.Registerer) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Publisher{
		cfg: cfg, js: js, store: store, subjects: cfg.Streams.Subjects(),
		log: cfg.Logger.With().Str("node", cfg.Node).Str("stream", cfg.Streams.SnapshotStream()).Logger(),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_snapshot_published_total", Help: "Snapshots of this node's aggregate published.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_snapshot_failures_total", Help: "Snapshot publications that failed (Redis or NATS unavailable).",
		}),
		recreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_snapshot_stream_recreated_total", Help: "Times the publisher found the snapshot stream deleted and created it again with its configured definition.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmetrics_snapshot_size_bytes", Help: "Size on the wire of the last snapshot published.",
		}),
		series: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmetrics_snapshot_fields", Help: "Series-hash fields in the last snapshot published.",
		}),
		chunks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_snapshot_chunks_total", Help: "Messages (chunks and heads) of snapshots and checkpoints too large for one message of the server's max_payload.",
		}),
	}
	p.deltas = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jetmetrics_snapshot_deltas_total", Help: "Snapshots published as deltas of the previous one (incremental); the others of jetmetrics_snapshot_published_total are full.",
	})
	p.requests = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jetmetrics_snapshot_full_requests_total", Help: "Peers' requests for a full snapshot (a delta reached them without its base).",
	})
	for _, c := range []prometheus.Collector{p.published, p.failures, p.recreated, p.bytes, p.series, p.chunks, p.deltas, p.requests} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("snapshot metrics: %w", err)
		}
	}
	return p, nil
}

// Run publishes every interval until ctx ends, then publishes a removal and
// returns nil. A failed publication is logged and retried at the next tick.
func (p *Publisher) Run(ctx context.Context) error {
	// A peer that received a delta without its base asks for a full
	// snapshot: the next tick publishes one.
	sub, err := p.js.Conn().Subscribe(p.subjects.SnapshotRequest(p.cfg.Node), func(*nats.Msg) {
		p.requests.Inc()
		p.wantFull.Store(true)
	})
	if err != nil {
		p.log.Warn().Err(err).Str("subject", p.subjects.SnapshotRequest(p.cfg.Node)).Msg("full snapshots on request unavailable; peers wait for the periodic one")
	} else {
		defer func() { _ = sub.Unsubscribe() }()
	}
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		if err := p.Publish(ctx); err != nil && ctx.Err() == nil {
			p.failures.Inc()
			p.log.Warn().Err(err).Msg("snapshot not published")
		}
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := p.publishRemoval(rctx); err != nil {
				p.log.Warn().Err(err).Msg("removal not published; peers drop this node when its snapshot expires")
			}
			return nil
		case <-t.C:
		}
	}
}

// RequestFull makes the next snapshot full, as a peer's request does.
func (p *Publisher) RequestFull() { p.wantFull.Store(true) }

// Publish publishes one snapshot now — full, or a delta of the previous
// one (Config.FullEvery) — and a checkpoint when one is due. Checkpoints
// are always full: a snapshot is full whenever one is due.
func (p *Publisher) Publish(ctx context.Context) error {
	now := time.Now()
	src, err := p.source(ctx)
	if errors.Is(err, aggregate.ErrTorn) {
		// Being restored or rebuilt: not a failure, and nothing to show
		// yet; peers keep the last snapshot until its TTL.
		p.log.Debug().Err(err).Msg("snapshot skipped: the aggregate is being restored or rebuilt")
		return nil
	}
	if err != nil {
		return err
	}
	mark := src.mark()
	if p.cfg.Floor != nil {
		if floor := p.cfg.Floor(); mark < floor {
			p.log.Debug().Uint64("seq", mark).Uint64("floor", floor).Msg("snapshot skipped: catching up with what was published before")
			return nil
		}
	}
	ckptDue := mark > 0 && now.Sub(p.lastCkpt) >= p.cfg.CheckpointInterval
	// A publisher whose aggregator holds the aggregate tracks only that:
	// a dump it reads meanwhile (at start, or while a session restarts)
	// is published whole when its mark moved, and not tracked, since a
	// tracker of a dump holds copies of its keys where one of the held
	// aggregate shares them. While the mark stays, the deltas on such an
	// untracked base are empty; once the aggregate is held, it is full.
	dumpOnly := p.cfg.Memory == nil
	changedDump := src.held == nil && !dumpOnly && mark != p.lastMark
	full := !p.hasBase || p.sinceFull+1 >= p.cfg.FullEvery || ckptDue || p.wantFull.Swap(false) || mark < p.base.Version ||
		changedDump || (p.untracked && src.held != nil)
	// Until it is published, nothing says the peers hold what follows.
	p.hasBase = false
	gen := time.UnixMilli(now.UnixMilli())
	if !full {
		return p.publishDelta(ctx, src, mark, gen)
	}
	msg, fields, err := p.snapshotMsg(src, now)
	if err != nil {
		return err
	}
	if err := p.publishChunked(ctx, msg, &p.snapSlot, p.cfg.TTL); err != nil {
		return fmt.Errorf("publish snapshot at seq %d: %w", mark, err)
	}
	p.published.Inc()
	p.bytes.Set(float64(len(msg.Data)))
	p.series.Set(float64(fields))
	p.lastMark, p.hasVersion = mark, true
	p.tracked = tracker{}
	if p.cfg.FullEvery > 1 {
		p.untracked = src.held == nil && !dumpOnly
		if !p.untracked {
			p.tracked.reset(src)
		}
		p.base, p.hasBase, p.sinceFull = streams.DeltaBase{Version: mark, Generated: gen}, true, 0
	}
	if ckptDue {
		ckpt := nats.NewMsg(p.subjects.Checkpoint(p.cfg.Node))
		for k, v := range msg.Header {
			ckpt.Header[k] = v
		}
		ckpt.Header.Del(jetstream.MsgTTLHeader)
		ckpt.Data = msg.Data
		if p.ckptSlot == "" {
			// The chunks of the checkpoint the stream holds stay whole
			// until the next one's head is written: use the other slot.
			p.ckptSlot = streams.OtherSlot(p.currentCheckpointSlot(ctx))
		}
		if err := p.publishChunked(ctx, ckpt, &p.ckptSlot, 0); err != nil {
			return fmt.Errorf("publish checkpoint at seq %d: %w", mark, err)
		}
		p.lastCkpt = now
		p.log.Debug().Uint64("seq", mark).Int("bytes", len(msg.Data)).Msg("checkpoint published")
	}
	return nil
}

// publishDelta publishes the delta of src on the last snapshot published.
func (p *Publisher) publishDelta(ctx context.Context, src source, mark uint64, gen time.Time) error {
	d := src.delta()
	if p.untracked {
		d.Series = map[string]string{} // the mark has not moved: nothing changed
	} else {
		p.tracked.diff(src, d)
	}
	msg, err := streams.SnapshotDeltaMsg(p.subjects.Snapshot(p.cfg.Node), p.cfg.Node, mark, p.base, d, gen, p.cfg.TTL)
	if err != nil {
		return err
	}
	if err := p.publishChunked(ctx, msg, &p.snapSlot, p.cfg.TTL); err != nil {
		return fmt.Errorf("publish snapshot delta at seq %d: %w", mark, err)
	}
	p.published.Inc()
	p.deltas.Inc()
	p.bytes.Set(float64(len(msg.Data)))
	p.lastMark, p.hasVersion = mark, true
	p.base, p.hasBase = streams.DeltaBase{Version: mark, Generated: gen}, true
	p.sinceFull++
	return nil
}

// publishChunked publishes msg whole when it fits in one message of the
// connection's max_payload, else as chunks in *slot followed by its head
// (streams.ChunkSnapshot), and then switches *slot to the other one for
// the next. ttl, when set, is the head's time to live; the chunks get one
// interval more, so they never expire before their head.
func (p *Publisher) publishChunked(ctx context.Context, msg *nats.Msg, slot *string, ttl time.Duration) error {
	if *slot == "" {
		*slot = streams.SlotA
	}
	parts := streams.ChunkSnapshot(msg, *slot, p.js.Conn().MaxPayload())
	for i, m := range parts {
		var opts []jetstream.PublishOpt
		switch {
		case ttl > 0 && i == len(parts)-1:
			opts = append(opts, jetstream.WithMsgTTL(ttl))
		case ttl > 0:
			opts = append(opts, jetstream.WithMsgTTL(ttl+p.cfg.Interval))
		}
		if err := p.publish(ctx, m, opts...); err != nil {
			if len(parts) > 1 {
				return fmt.Errorf("part %d of %d: %w", i+1, len(parts), err)
			}
			return err
		}
	}
	if len(parts) > 1 {
		*slot = streams.OtherSlot(*slot)
		p.chunks.Add(float64(len(parts)))
	}
	return nil
}

// currentCheckpointSlot is the slot of the chunks of the node's checkpoint
// in the stream, or "" when it has none or it is in one message.
func (p *Publisher) currentCheckpointSlot(ctx context.Context) string {
	s, err := p.js.Stream(ctx, p.cfg.Streams.SnapshotStream())
	if err != nil {
		return ""
	}
	m, err := s.GetLastMsgForSubject(ctx, p.subjects.Checkpoint(p.cfg.Node))
	if err != nil {
		return ""
	}
	return m.Header.Get(streams.HeaderSnapshotSlot)
}

// publish publishes msg to the snapshot stream. A stream deleted under the
// node is created again with its definition, and msg published once more:
// peers and the node's next restore depend on it.
func (p *Publisher) publish(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) error {
	opts = append(opts, jetstream.WithExpectStream(p.cfg.Streams.SnapshotStream()))
	ack, err := p.js.PublishMsg(ctx, msg, opts...)
	if err == nil {
		p.sawSequence(ack.Sequence)
	}
	if !streams.Gone(err) {
		return err
	}
	sc := p.cfg.Streams.SnapshotStreamConfig()
	admin := p.cfg.Admin
	if admin == nil {
		admin = p.js
	}
	created, cerr := streams.Ensure(ctx, admin, sc)
	if cerr != nil {
		return fmt.Errorf("%w (%w)", err, cerr)
	}
	if created {
		p.recreated.Inc()
		p.log.Error().Str("stream", sc.Name).Msg("stream was deleted under the node: recreated it with its configured definition")
		// The checkpoint went with it: write the next one now.
		p.lastCkpt = time.Time{}
	}
	ack, err = p.js.PublishMsg(ctx, msg, opts...)
	if err == nil {
		p.sawSequence(ack.Sequence)
	}
	return err
}

// sawSequence notes the stream sequence a publish was stored at. A
// sequence below the last one means the stream was deleted and recreated
// since — by another part of this node or another node, so publish never
// saw it gone — and the checkpoint went with the old stream: the next one
// is written now.
func (p *Publisher) sawSequence(seq uint64) {
	if seq < p.lastSeq {
		p.log.Warn().Uint64("seq", seq).Uint64("last_seq", p.lastSeq).Msg("snapshot stream was recreated: writing a checkpoint now")
		p.lastCkpt = time.Time{}
		p.hasBase = false
	}
	p.lastSeq = seq
}

// source reads the aggregate: from memory when the aggregator holds it,
// else from Redis.
func (p *Publisher) source(ctx context.Context) (source, error) {
	if p.cfg.Memory != nil {
		if h, ok := p.cfg.Memory.Held(); ok {
			return source{held: &h}, nil
		}
	}
	d, err := p.store.Dump(ctx)
	if err != nil {
		return source{}, err
	}
	if d.Torn() {
		// Neither peers nor a later restore may see it: a restore in
		// progress, or one Redis loaded in part, which the aggregator
		// rebuilds from the last good checkpoint.
		return source{}, fmt.Errorf("aggregate at seq %d: %w", d.Mark(), aggregate.ErrTorn)
	}
	return source{dump: d}, nil
}

// snapshotMsg builds the full snapshot message of src.
func (p *Publisher) snapshotMsg(src source, now time.Time) (msg *nats.Msg, fields int, err error) {
	subject := p.subjects.Snapshot(p.cfg.Node)
	if src.held != nil {
		return streams.SnapshotMsgOf(subject, *src.held, now, p.cfg.TTL)
	}
	msg, err = streams.SnapshotMsg(subject, src.dump, now, p.cfg.TTL)
	return msg, len(src.dump.Series), err
}

func (p *Publisher) publishRemoval(ctx context.Context) error {
	if !p.hasVersion {
		return nil
	}
	msg := streams.RemovalMsg(p.subjects.Snapshot(p.cfg.Node), p.cfg.Node, p.lastMark, time.Now(), p.cfg.TTL)
	if err := p.publish(ctx, msg, jetstream.WithMsgTTL(p.cfg.TTL)); err != nil {
		return fmt.Errorf("publish removal: %w", err)
	}
	p.log.Info().Uint64("seq", p.lastMark).Msg("removal published")
	return nil
}

// Checkpoints reads checkpoints from the snapshot stream.
type Checkpoints struct {
	JS      jetstream.JetStream
	Streams streams.Config
	// Limits bound a chunked checkpoint's size before its chunks are
	// fetched (zero fields mean streams' defaults).
	Limits streams.SnapshotLimits
}

// LatestCheckpoint fetches node's newest checkpoint, or nil when it has
// none. A checkpoint whose headers or data are not what the publisher
// writes for node (streams.CheckCheckpoint) is an error wrapping
// streams.ErrBadCheckpoint: the caller refuses it and rebuilds from the
// delta stream rather than retry.
func (c Checkpoints) LatestCheckpoint(ctx context.Context, node string) (*aggregate.Dump, error) {
	cfg := c.Streams.WithDefaults()
	s, err := c.JS.Stream(ctx, cfg.SnapshotStream())
	if err != nil {
		return nil, fmt.Errorf("checkpoint of %s: %w", node, err)
	}
	m, err := s.GetLastMsgForSubject(ctx, cfg.Subjects().Checkpoint(node))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint of %s: %w", node, err)
	}
	data, err := c.assemble(ctx, s, m, node)
	if err != nil {
		return nil, err
	}
	d, err := streams.CheckCheckpoint(m.Header, data, node)
	if err != nil {
		return nil, fmt.Errorf("%w (stream seq %d)", err, m.Sequence)
	}
	return d, nil
}

// assemble returns the whole data of the checkpoint whose head is m
// (streams.AssembleSnapshot). A checkpoint with a missing, mixed or forged
// chunk is ErrBadCheckpoint: restoring falls back to the delta stream.
func (c Checkpoints) assemble(ctx context.Context, s jetstream.Stream, m *jetstream.RawStreamMsg, node string) ([]byte, error) {
	if !streams.IsChunked(m.Header) {
		return m.Data, nil
	}
	info, err := streams.ParseSnapshotHeaders(m.Header, node)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (stream seq %d)", streams.ErrBadCheckpoint, err, m.Sequence)
	}
	data, err := streams.AssembleSnapshot(ctx, streams.StreamChunkGetter(s), m.Subject, node, info.Version, m.Header, m.Data, c.Limits.MaxBytes)
	switch {
	case errors.Is(err, streams.ErrSnapshotIncomplete), errors.Is(err, streams.ErrSnapshotChunkForged), errors.Is(err, streams.ErrSnapshotTooLarge):
		return nil, fmt.Errorf("%w: %w (stream seq %d)", streams.ErrBadCheckpoint, err, m.Sequence)
	case err != nil:
		return nil, fmt.Errorf("checkpoint of %s: %w", node, err)
	}
	return data, nil
}
