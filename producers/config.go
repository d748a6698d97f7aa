package producers

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/latency"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Defaults of the Config fields left zero.
const (
	DefaultFlushInterval  = time.Second
	DefaultPublishTimeout = 5 * time.Second
)

// headerRoom is what a batch leaves of the server's max payload for the
// message headers (Nats-Msg-Id, Nats-Expected-Stream and the status line:
// about 200 bytes at the longest token lengths).
const headerRoom = 1024

// MinBatchBytes is the smallest MaxBatchBytes accepted: below it ordinary
// series would not fit one message and would be dropped.
const MinBatchBytes = 512

// incarnationLen is the length of the random suffix of a producer id.
const incarnationLen = 8

// MaxNameBytes is the longest Config.Name: the producer id, Name plus "-"
// plus the incarnation id, must fit one subject token.
const MaxNameBytes = streams.MaxTokenBytes - 1 - incarnationLen

// Config configures a Producer. Node and Name are required; every other
// zero field means its documented default.
type Config struct {
	// Node is the node whose aggregate receives the deltas: a subject
	// token.
	Node string
	// Name names the producer, typically the service. The producer id is
	// Name, "-" and a random incarnation id of 8 lowercase base32
	// characters, so Name is a subject token of at most MaxNameBytes.
	Name string
	// Prefix is the subject prefix; default streams.DefaultPrefix. Batches
	// are published with the delta stream of that prefix as the expected
	// stream (streams.Config.DeltaStream: JETMETRICS_DELTAS by default), so
	// a subject captured by another stream is refused, not stored there.
	Prefix string
	// FlushInterval is how often the deltas are cut into a batch; default
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// PublishTimeout bounds one publish attempt; default
	// DefaultPublishTimeout.
	PublishTimeout time.Duration
	// MaxBatchBytes bounds the JSON of one message; a flush larger than
	// that is split into several messages. Default, and upper bound
	// whatever is set: the connection's MaxPayload minus 1 KiB for headers
	// (1 MiB minus 1 KiB while the connection has not yet reached a
	// server). At least MinBatchBytes.
	MaxBatchBytes int
	// Limits bounds metric names, label names and label values; the zero
	// value means series' defaults.
	Limits series.Limits
	// Logger receives the producer's own log lines; the zero value logs
	// nothing.
	Logger zerolog.Logger
	// Latency sets the window and EWMA half-life of the in-memory trackers
	// of the latency handles (Producer.Latency); the zero value means
	// latency's defaults (100 samples, 1 minute).
	Latency latency.Config
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if err := streams.CheckToken("node", c.Node); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := streams.CheckToken("name", c.Name); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if len(c.Name) > MaxNameBytes {
		return fmt.Errorf("config: %w: name %q is %d bytes; the producer id adds %d, so at most %d", streams.ErrToken, c.Name, len(c.Name), 1+incarnationLen, MaxNameBytes)
	}
	if c.Prefix != "" {
		if err := streams.CheckToken("prefix", c.Prefix); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	if c.FlushInterval < 0 {
		return fmt.Errorf("config: flush interval %v is negative", c.FlushInterval)
	}
	if c.PublishTimeout < 0 {
		return fmt.Errorf("config: publish timeout %v is negative", c.PublishTimeout)
	}
	if c.MaxBatchBytes != 0 && c.MaxBatchBytes < MinBatchBytes {
		return fmt.Errorf("config: max batch bytes %d is below %d", c.MaxBatchBytes, MinBatchBytes)
	}
	if err := c.Latency.Validate(); err != nil {
		return fmt.Errorf("config: field Latency: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = streams.DefaultPrefix
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	return c
}
