package aggregator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Config configures an Aggregator. The zero value of every field but Node
// means the default documented on it.
type Config struct {
	// Admin recreates a stream deleted under the node: a connection
	// allowed to create streams, when the one given to New is not
	// (docs/security.md). Default: the one given to New.
	Admin jetstream.JetStream
	// Node is the node whose deltas are aggregated (required).
	Node string
	// Streams names the streams and subjects (default prefix jetmetrics).
	Streams streams.Config
	// Limits bounds label count, length and names (series.Limits defaults).
	Limits series.Limits
	// MaxSeries caps the node's series; updates that would create a series
	// beyond it are refused and counted (default 1,000,000).
	MaxSeries int
	// MaxSeriesPerMetric caps one metric's series (default 100,000).
	MaxSeriesPerMetric int
	// MaxMessageBytes rejects (as oversize) a delta message larger than
	// this (default 8 MiB, the embedded server's largest payload).
	MaxMessageBytes int
	// MaxGroupMessages is the most messages applied in one Redis call
	// (default 512).
	MaxGroupMessages int
	// MaxGroupOps is the most series one Redis call changes, a bound on how
	// long one transaction blocks Redis (default 20,000).
	MaxGroupOps int
	// MaxQueuedBytes bounds the memory of the messages read and decoded
	// ahead of the fold (default 256 MiB). Up to 2 × MaxGroupMessages
	// messages queue; with the largest batches the count alone would let
	// a fold that falls behind hold GBs. A single message larger than this
	// still passes when nothing else is queued.
	MaxQueuedBytes int
	// MaxSeqJump is how far above its producer's last applied batch a
	// batch's seq may be (default DefaultMaxSeqJump); a batch beyond it is
	// rejected as seq_jump (docs/wire-format.md).
	MaxSeqJump uint64
	// MaxProducers caps the producer ids whose batch marks the node holds
	// (default DefaultMaxProducers): the first batch of one more is
	// rejected as producer_limit. Marks travel in every snapshot and
	// checkpoint, so without a cap a client inventing ids could push them
	// past the server's payload limit.
	MaxProducers int
	// MarkHorizon is how long, in stream time, a producer's batch mark is
	// kept after the last message that moved it (default: the delta
	// stream's max age plus its duplicate window plus DefaultMarkMargin;
	// negative keeps marks for ever). Pruning is safe only beyond the
	// replay horizon (docs/design.md, "Producer marks are bounded").
	MarkHorizon time.Duration
	// Checkpoints supplies the node's latest checkpoint, restored when the
	// aggregate is found empty (Redis lost everything). Nil replays the
	// whole stream instead.
	Checkpoints Checkpoints
	// IdleCheck is how often an idle aggregator checks that the stored mark
	// is still its own, to notice a wiped or rolled back Redis without
	// waiting for traffic (default 1 s).
	IdleCheck time.Duration
	// Fault injects failures at the steps of an apply, for fault tests. A
	// non-nil error from it ends the session at that step, exactly as a
	// crash there would leave things: nothing after the step happens, and
	// the next session starts from what Redis holds. Nil in production.
	Fault func(step Step, mark uint64) error
	// RetryMin and RetryMax bound the backoff after an error (default 100 ms
	// and 5 s).
	RetryMin, RetryMax time.Duration
	// Logger receives the aggregator's logs.
	Logger zerolog.Logger
}

// Step names a point in applying a group of messages.
type Step string

// The steps at which Config.Fault is called.
const (
	// StepDecoded: the group is decoded and folded, nothing written yet.
	StepDecoded Step = "decoded"
	// StepApplied: Redis has applied the group, the session has not yet
	// committed it in memory.
	StepApplied Step = "applied"
	// StepCommitted: the session has moved on to the new mark.
	StepCommitted Step = "committed"
)

// Checkpoints finds a node's latest checkpoint; nil, nil when it has none.
// A checkpoint found but not valid is an error wrapping
// streams.ErrBadCheckpoint, refused and counted; any other error is
// retried.
type Checkpoints interface {
	LatestCheckpoint(ctx context.Context, node string) (*aggregate.Dump, error)
}

// Defaults.
const (
	DefaultMaxSeries          = 1_000_000
	DefaultMaxSeriesPerMetric = 100_000
	DefaultMaxGroupMessages   = 512
	DefaultMaxMessageBytes    = 8 << 20
	DefaultMaxGroupOps        = 20_000
	DefaultMaxQueuedBytes     = 256 << 20
	DefaultMaxSeqJump         = 1_000_000
	DefaultMaxProducers       = 100_000
	// DefaultMarkMargin is added to the replay horizon before a mark is
	// pruned.
	DefaultMarkMargin = time.Hour
)

func (c Config) withDefaults() Config {
	c.Streams = c.Streams.WithDefaults()
	if c.MaxSeries <= 0 {
		c.MaxSeries = DefaultMaxSeries
	}
	if c.MaxSeriesPerMetric <= 0 {
		c.MaxSeriesPerMetric = DefaultMaxSeriesPerMetric
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxGroupMessages <= 0 {
		c.MaxGroupMessages = DefaultMaxGroupMessages
	}
	if c.MaxGroupOps <= 0 {
		c.MaxGroupOps = DefaultMaxGroupOps
	}
	if c.MaxQueuedBytes <= 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.MaxProducers <= 0 {
		c.MaxProducers = DefaultMaxProducers
	}
	if c.MarkHorizon == 0 {
		c.MarkHorizon = c.Streams.DeltaMaxAge + c.Streams.Duplicates + DefaultMarkMargin
	}
	if c.MaxSeqJump == 0 {
		c.MaxSeqJump = DefaultMaxSeqJump
	}
	if c.IdleCheck <= 0 {
		c.IdleCheck = time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Second
	}
	return c
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if c.Node == "" {
		return errors.New("aggregator: node name is required")
	}
	if err := streams.CheckToken("node name", c.Node); err != nil {
		return fmt.Errorf("aggregator: %w", err)
	}
	return c.Streams.Validate()
}
