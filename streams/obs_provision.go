package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ObsConfig sets the observation stream and the lease bucket. The zero
// value means the defaults documented on each field.
type ObsConfig struct {
	// Prefix is the subject prefix and the base of the stream and bucket
	// names (default DefaultPrefix: JETMETRICS_OBS, jetmetrics_leases).
	Prefix string
	// Replicas is the replication factor of the stream and the bucket
	// (default 1; 3 in a cluster).
	Replicas int
	// HistoryDepth is how many results the stream keeps per target
	// (MaxMsgsPerSubject; default 360, one hour at a 10 s interval).
	HistoryDepth int64
	// LeaseTTL is the lease bucket's TTL: a lease that is not renewed for
	// this long expires (default 30 s). It is fixed when the bucket is
	// made; nodes that start later use the bucket's TTL, whatever theirs.
	LeaseTTL time.Duration
	// MemoryStorage keeps the stream and the bucket in memory (tests).
	MemoryStorage bool
}

// Defaults.
const (
	DefaultHistoryDepth = 360
	DefaultLeaseTTL     = 30 * time.Second
	// MinLeaseTTL is the shortest lease TTL: the server's expiry timer
	// and a renewal round trip must fit well inside one.
	MinLeaseTTL = 500 * time.Millisecond
)

// WithDefaults returns c with every zero field set to its default.
func (c ObsConfig) WithDefaults() ObsConfig {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.HistoryDepth <= 0 {
		c.HistoryDepth = DefaultHistoryDepth
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	return c
}

// Validate reports the first invalid setting.
func (c ObsConfig) Validate() error {
	c = c.WithDefaults()
	if err := CheckToken("prefix", c.Prefix); err != nil {
		return err
	}
	if c.Replicas > 5 {
		return fmt.Errorf("replicas %d: JetStream allows at most 5", c.Replicas)
	}
	if c.LeaseTTL < MinLeaseTTL {
		return fmt.Errorf("lease ttl %s is shorter than %s", c.LeaseTTL, MinLeaseTTL)
	}
	return nil
}

// Subjects returns the subject builder for c's prefix.
func (c ObsConfig) Subjects() Subjects { return Subjects{Prefix: c.WithDefaults().Prefix} }

// ObsStream is the name of the observation stream (JETMETRICS_OBS).
func (c ObsConfig) ObsStream() string { return StreamName(c.WithDefaults().Prefix, "OBS") }

// LeaseBucket is the name of the lease KV bucket (jetmetrics_leases).
func (c ObsConfig) LeaseBucket() string {
	return strings.ReplaceAll(c.WithDefaults().Prefix, "-", "_") + "_leases"
}

func (c ObsConfig) storage() jetstream.StorageType { return storageType(c.MemoryStorage) }

// ObsStreamConfig is the definition of the observation stream: every
// observer's results, the newest HistoryDepth per target. It keeps the
// history the API serves, so old results go (discard old), never new ones.
func (c ObsConfig) ObsStreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:              c.ObsStream(),
		Description:       "jetmetrics observation results, one subject per kind and target",
		Subjects:          []string{c.Subjects().ObservationAll()},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: c.HistoryDepth,
		Storage:           c.storage(),
		Replicas:          c.Replicas,
	}
}

// LeaseBucketConfig is the definition of the lease bucket: one key per
// observer and target (and one per observer and live node), each expiring
// LeaseTTL after its last write.
func (c ObsConfig) LeaseBucketConfig() jetstream.KeyValueConfig {
	c = c.WithDefaults()
	return jetstream.KeyValueConfig{
		Bucket:      c.LeaseBucket(),
		Description: "jetmetrics observer leases and live observer nodes",
		History:     1,
		TTL:         c.LeaseTTL,
		Storage:     c.storage(),
		Replicas:    c.Replicas,
	}
}

// ProvisionObs creates the observation stream, or updates it to c's
// definition, and is safe to call from every node at once; like Provision,
// an existing stream keeps its replica count.
func ProvisionObs(ctx context.Context, js jetstream.JetStream, c ObsConfig) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("provision observation stream: %w", err)
	}
	sc := c.ObsStreamConfig()
	if err := provision(ctx, js, sc, false); err != nil {
		return fmt.Errorf("provision stream %s: %w", sc.Name, err)
	}
	return nil
}

// ProvisionLeases returns the lease bucket, creating it when it does not
// exist. An existing bucket is used as it is, never updated: whichever node
// made it decided its TTL and replicas, and nodes configured otherwise do
// not fight over them (read the TTL from the bucket's status).
func ProvisionLeases(ctx context.Context, js jetstream.JetStream, c ObsConfig) (jetstream.KeyValue, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("provision lease bucket: %w", err)
	}
	kc := c.LeaseBucketConfig()
	for {
		kv, err := js.KeyValue(ctx, kc.Bucket)
		if err == nil {
			return kv, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("open lease bucket %s: %w", kc.Bucket, err)
		}
		kv, err = js.CreateKeyValue(ctx, kc)
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			continue // another node made it first: use that one
		}
		if err != nil {
			return nil, fmt.Errorf("create lease bucket %s: %w", kc.Bucket, err)
		}
		return kv, nil
	}
}
