package node

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Config configures a node. Zero values mean the defaults documented on
// each field.
type Config struct {
	// Name is the node name, a subject token (default: the host name with
	// characters outside [A-Za-z0-9_-] replaced by '-').
	Name string
	// DataDir holds the embedded NATS store and the managed Redis files
	// (default "./data").
	DataDir string

	// NATSURL connects to an existing NATS; empty starts an embedded server.
	NATSURL string
	// NATSListen is the embedded server's client address; empty accepts
	// in-process connections only.
	NATSListen string

	// NATSClusterListen is the embedded server's route address
	// ("host:port"); with NATSClusterRoutes it joins a NATS cluster.
	NATSClusterListen string
	// NATSClusterRoutes are the route URLs of every cluster member
	// (nats://host:port), this node's own included or not.
	NATSClusterRoutes []string
	// NATSClusterName names the cluster (default "jetmetrics").
	NATSClusterName string

	// RedisURL uses an existing Redis (redis://, rediss:// or unix://);
	// empty starts and supervises a redis-server child under DataDir.
	RedisURL string
	// RedisKeyPrefix starts every Redis key (default "jetmetrics").
	RedisKeyPrefix string

	// WebListen is the HTTP address (default ":9480"); "127.0.0.1:0" picks
	// a free port (see Node.WebAddr).
	WebListen string

	// Streams names and sizes the streams. Replicas 0 means 3 in a NATS
	// cluster of three or more servers, else the cluster's size.
	Streams streams.Config
	// Limits bounds label count, label value length and names.
	Limits series.Limits
	// MaxSeries and MaxSeriesPerMetric cap the node's cardinality.
	MaxSeries, MaxSeriesPerMetric int
	// MaxBatchBytes rejects larger delta messages as oversize (default
	// 8 MiB).
	MaxBatchBytes int

	// SnapshotInterval is how often the node publishes its snapshot
	// (default 5 s); SnapshotTTL how long peers keep it (default three
	// intervals).
	SnapshotInterval, SnapshotTTL time.Duration
	// PeerForgetAfter is how long a peer whose snapshot expired stays
	// known, shown as down, unless it is removed on purpose first
	// (default 24 h).
	PeerForgetAfter time.Duration
	// OrphanScanInterval is how often the delta stream is scanned for
	// deltas no live node will apply (default 30 s).
	OrphanScanInterval time.Duration

	// Demo also runs a built-in producer publishing demo metrics of every
	// kind each DemoInterval (default 1 s).
	Demo         bool
	DemoInterval time.Duration

	// Logger receives every log line (default: discard).
	Logger zerolog.Logger
	// Registry is the process's registry: the node registers its own
	// metrics and serves it on /metrics (default: a new registry with the
	// Go and process collectors).
	Registry *prometheus.Registry
}

// DefaultWebListen is the default HTTP address.
const DefaultWebListen = ":9480"

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName()
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.WebListen == "" {
		c.WebListen = DefaultWebListen
	}
	if c.DemoInterval <= 0 {
		c.DemoInterval = time.Second
	}
	replicas := c.Streams.Replicas // 0 means: decided once connected
	c.Streams = c.Streams.WithDefaults()
	c.Streams.Replicas = replicas
	return c
}

// Validate reports the first invalid setting, naming it.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := streams.CheckToken("node name", c.Name); err != nil {
		return err
	}
	if err := c.Streams.Validate(); err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	if _, _, err := net.SplitHostPort(c.WebListen); err != nil {
		return fmt.Errorf("--web.listen-address %q: %w", c.WebListen, err)
	}
	if c.NATSClusterListen != "" && c.NATSURL != "" {
		return fmt.Errorf("--nats.cluster.listen is for the embedded server; with --nats.url the cluster is the external one's")
	}
	if c.NATSClusterListen != "" && len(c.NATSClusterRoutes) == 0 {
		return fmt.Errorf("--nats.cluster.listen %q needs --nats.cluster.routes: the route URLs of the cluster's nodes", c.NATSClusterListen)
	}
	if c.NATSListen != "" && c.NATSURL == "" {
		if _, _, err := splitHostPort(c.NATSListen); err != nil {
			return fmt.Errorf("--nats.listen %q: %w", c.NATSListen, err)
		}
	}
	return nil
}

// DefaultName is the host name made into a subject token.
func DefaultName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "node"
	}
	h = strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, h)
	if len(h) > streams.MaxTokenBytes {
		h = h[:streams.MaxTokenBytes]
	}
	return h
}

func (c Config) natsDir() string  { return filepath.Join(c.DataDir, "nats") }
func (c Config) redisDir() string { return filepath.Join(c.DataDir, "redis") }
