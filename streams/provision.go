package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config sets the streams' names and limits. The zero value means the
// defaults documented on each field.
type Config struct {
	// Prefix is the subject prefix and the base of the stream names
	// (default DefaultPrefix: subjects jetmetrics.*, streams JETMETRICS_*).
	Prefix string
	// Replicas is the stream replication factor (default 1; 3 in a cluster).
	Replicas int
	// DeltaMaxAge is how long deltas are kept: the replay horizon (default
	// 24 h). Exactly-once after Redis data loss needs the deltas since the
	// last checkpoint, so keep it far above the snapshot interval.
	DeltaMaxAge time.Duration
	// DeltaMaxBytes bounds the delta stream; when full it refuses new
	// deltas (discard new: publishers get an error and the SDK keeps
	// counting in memory and retries) rather than dropping acknowledged
	// ones (0 or negative: unlimited).
	DeltaMaxBytes int64
	// DeadLetterMaxBytes bounds the dead-letter stream; when full its
	// oldest dead letters go (discard old: they are copies, the deltas
	// stay in the delta stream) (0 or negative: unlimited).
	DeadLetterMaxBytes int64
	// DeltaMaxBytesDerived and DeadLetterMaxBytesDerived say the bounds
	// are a node's default (derived from its own free space, or unlimited
	// for want of knowing an external server's disk), not an operator's
	// choice: they bound a stream this node creates, and a stream that
	// exists keeps its bound. Nodes with different disks (or one on an
	// external NATS) then never overwrite each other's or the operator's
	// bound at each start.
	DeltaMaxBytesDerived, DeadLetterMaxBytesDerived bool
	// Duplicates is the broker's deduplication window on Nats-Msg-Id
	// (default 2 min).
	Duplicates time.Duration
	// DeadLetterMaxAge is how long rejected input is kept (default 14 days).
	DeadLetterMaxAge time.Duration
	// MemoryStorage keeps streams in memory instead of on disk (tests).
	MemoryStorage bool
}

// Defaults.
const (
	DefaultDeltaMaxAge      = 24 * time.Hour
	DefaultDuplicates       = 2 * time.Minute
	DefaultDeadLetterMaxAge = 14 * 24 * time.Hour
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DeltaMaxAge <= 0 {
		c.DeltaMaxAge = DefaultDeltaMaxAge
	}
	if c.DeltaMaxBytes <= 0 {
		c.DeltaMaxBytes = -1
	}
	if c.DeadLetterMaxBytes <= 0 {
		c.DeadLetterMaxBytes = -1
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.DeadLetterMaxAge <= 0 {
		c.DeadLetterMaxAge = DefaultDeadLetterMaxAge
	}
	return c
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if err := CheckToken("prefix", c.Prefix); err != nil {
		return err
	}
	if c.Replicas > 5 {
		return fmt.Errorf("replicas %d: JetStream allows at most 5", c.Replicas)
	}
	if c.Duplicates > c.DeltaMaxAge {
		return fmt.Errorf("duplicate window %s is longer than the delta max age %s", c.Duplicates, c.DeltaMaxAge)
	}
	return nil
}

// Subjects returns the subject builder for c's prefix.
func (c Config) Subjects() Subjects { return Subjects{Prefix: c.WithDefaults().Prefix} }

// StreamName is the name of one of the prefix's streams: DELTAS, DLQ, SNAP.
func StreamName(prefix, suffix string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return strings.ToUpper(strings.ReplaceAll(prefix, "-", "_")) + "_" + suffix
}

// DeltaStream is the name of the delta stream (JETMETRICS_DELTAS).
func (c Config) DeltaStream() string { return StreamName(c.WithDefaults().Prefix, "DELTAS") }

// DeadLetterStream is the name of the dead-letter stream (JETMETRICS_DLQ).
func (c Config) DeadLetterStream() string { return StreamName(c.WithDefaults().Prefix, "DLQ") }

func (c Config) storage() jetstream.StorageType { return storageType(c.MemoryStorage) }

// storageType is where a stream of the project keeps its messages.
func storageType(memory bool) jetstream.StorageType {
	if memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// DeltaStreamConfig is the definition of the delta stream: the durable log
// of every producer's batches, deduplicated on Nats-Msg-Id.
func (c Config) DeltaStreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:        c.DeltaStream(),
		Description: "jetmetrics metric delta batches, one subject per node and producer",
		Subjects:    []string{c.Subjects().DeltaAll()},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      c.DeltaMaxAge,
		MaxBytes:    c.DeltaMaxBytes,
		Duplicates:  c.Duplicates,
		Storage:     c.storage(),
		Replicas:    c.Replicas,
	}
}

// DeadLetterStreamConfig is the definition of the dead-letter stream.
func (c Config) DeadLetterStreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:        c.DeadLetterStream(),
		Description: "jetmetrics rejected input, with reason, original subject and sequence headers",
		Subjects:    []string{c.Subjects().DeadLetterAll()},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.DeadLetterMaxAge,
		MaxBytes:    c.DeadLetterMaxBytes,
		Duplicates:  c.Duplicates,
		Storage:     c.storage(),
		Replicas:    c.Replicas,
	}
}

// Provision creates the streams, or updates them to c's definition, and is
// safe to call from every node at once. A stream that exists keeps its
// replica count: whichever node creates it first decides it, and later
// nodes never fight over it (change it with `nats stream edit`).
func Provision(ctx context.Context, js jetstream.JetStream, c Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("provision streams: %w", err)
	}
	for _, p := range []struct {
		sc        jetstream.StreamConfig
		keepBound bool
	}{
		{c.DeltaStreamConfig(), c.DeltaMaxBytesDerived},
		{c.DeadLetterStreamConfig(), c.DeadLetterMaxBytesDerived},
		{c.SnapshotStreamConfig(), false},
	} {
		if err := provision(ctx, js, p.sc, p.keepBound); err != nil {
			return fmt.Errorf("provision stream %s: %w", p.sc.Name, err)
		}
	}
	return nil
}

// Ensure creates the stream sc names with its definition when it does not
// exist, and reports whether this call created it; a stream that exists is
// left as it is. A node calls it when a stream it uses has gone from under
// it (an operator deleted it): recreating it is safe from every node at
// once.
func Ensure(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) (created bool, err error) {
	_, err = js.Stream(ctx, sc.Name)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, fmt.Errorf("look up stream %s: %w", sc.Name, err)
	}
	_, err = js.CreateStream(ctx, sc)
	switch {
	case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
		return false, nil // another node recreated it first
	case err != nil:
		return false, fmt.Errorf("recreate stream %s: %w", sc.Name, err)
	}
	return true, nil
}

// Gone reports whether err says a stream is missing: a lookup that found
// no stream, or a publish nothing answered (no stream takes the subject).
// Either can also be a stream between leaders in a cluster, so callers
// confirm with Ensure, which never replaces a stream that exists.
func Gone(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// Full reports whether err is a publish refused because the stream is at
// one of its limits under discard new: its messages, its bytes, or (with
// discard new per subject) the subject's messages. It stays refused until
// messages leave the stream (by age, or deleted) or its operator raises
// the limit.
//
// nats-server answers these with the code of any failed store,
// JSStreamStoreFailedF, and the store's error as the description, which
// alone tells them apart: the same code also carries transient failures,
// such as "store is closed" while a stream's store is stopped or reset
// under a publish (a server shutting down, a replica reset, a stream
// moved), and, from older nats-server releases, whatever error the store
// hit writing (a full disk, a missing block file).
func Full(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsStreamStoreFailed {
		return false
	}
	switch apiErr.Description {
	case "maximum messages exceeded", "maximum bytes exceeded", "maximum messages per subject exceeded":
		return true
	}
	return false
}

// jsStreamStoreFailed is the JetStream error code of a message the stream
// did not store (nats-server's JSStreamStoreFailedF); its description is
// the store's error, which says why.
const jsStreamStoreFailed jetstream.ErrorCode = 10077

func provision(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig, keepBound bool) error {
	for {
		s, err := js.Stream(ctx, sc.Name)
		switch {
		case err == nil:
			info := s.CachedInfo()
			sc.Replicas = info.Config.Replicas
			if keepBound {
				sc.MaxBytes = info.Config.MaxBytes
			}
			// A bound below what the stream holds would make JetStream
			// delete the oldest messages at once, acknowledged deltas
			// included: keep it at least at the stream's size (a bound
			// derived from free disk space shrinks as the disk fills).
			if sc.MaxBytes > 0 && uint64(sc.MaxBytes) < info.State.Bytes {
				sc.MaxBytes = int64(info.State.Bytes)
			}
			_, err = js.UpdateStream(ctx, sc)
			return err
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return err
		}
		_, err = js.CreateStream(ctx, sc)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			continue // another node created it first: update that one
		}
		return err
	}
}
