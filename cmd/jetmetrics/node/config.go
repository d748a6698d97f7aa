package node

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/config"
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
	// (default "./data"). A running node locks it, and it records the node
	// it belongs to: a second node on it, or a node of another name, is
	// refused at start.
	DataDir string
	// AdoptDataDir lets a node start on a data directory recorded as
	// another node's, and records it as this node's.
	AdoptDataDir bool

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
	// NATSClusterUser and NATSClusterPassword (or NATSClusterPasswordFile,
	// a file holding it) are the credentials every route to
	// NATSClusterListen must present, and this node's routes carry.
	NATSClusterUser, NATSClusterPassword, NATSClusterPasswordFile string
	// NATSClusterTLSCertFile, NATSClusterTLSKeyFile and
	// NATSClusterTLSCAFile secure the routes with mutual, verified TLS:
	// the certificate this node presents both ways and the CAs that sign
	// the peers'.
	NATSClusterTLSCertFile, NATSClusterTLSKeyFile, NATSClusterTLSCAFile string

	// NATSUsersFile is the embedded server's users file (docs/security.md):
	// each user's credential and role, enforced as NATS permissions.
	// Empty: clients need no credentials, which only a loopback
	// NATSListen allows unless NATSInsecure.
	NATSUsersFile string
	// NATSInsecure lets the embedded server's client or route listener
	// bind a non-loopback address without authentication, and the route
	// listener without route TLS.
	NATSInsecure bool
	// NATSTLSCertFile and NATSTLSKeyFile are the embedded client
	// listener's certificate, and NATSTLSCAFile the CAs that verify client
	// certificates (then required). With NATSURL they are the client side
	// instead: the CAs that verify the server and a client certificate.
	NATSTLSCertFile, NATSTLSKeyFile, NATSTLSCAFile string
	// NATSCredsFile (a JWT credentials file), NATSNkeyFile (an nkey
	// seed), NATSUser with NATSPassword or NATSPasswordFile, or
	// NATSTokenFile authenticate the node to NATSURL: one of them.
	NATSCredsFile, NATSNkeyFile, NATSUser, NATSPassword, NATSPasswordFile, NATSTokenFile string

	// RedisURL uses an existing Redis (redis://, rediss:// or unix://),
	// with an ACL user and password in it or not; empty starts and
	// supervises a redis-server child under DataDir, reachable only by
	// this node (a random password and a private unix socket).
	RedisURL string
	// RedisPassword is the password of RedisURL's user (the command reads
	// it from JETMETRICS_REDIS_PASSWORD), and RedisPasswordFile a file
	// holding it, read again for each new connection; a trailing newline
	// is ignored. The password is given in one place: the URL, one of
	// these, or nowhere.
	RedisPassword, RedisPasswordFile string
	// RedisTLSCAFile (PEM certificates that sign the server's, default
	// the system's), RedisTLSCertFile and RedisTLSKeyFile (a client
	// certificate, read again for each handshake) and RedisTLSServerName
	// (the name to verify, default the URL's host) configure a rediss://
	// RedisURL.
	RedisTLSCAFile, RedisTLSCertFile, RedisTLSKeyFile, RedisTLSServerName string
	// RedisKeyPrefix starts every Redis key (default "jetmetrics").
	RedisKeyPrefix string
	// RedisConnectTimeout bounds how long a start waits for the Redis at
	// RedisURL to answer before it fails (default 30 s).
	RedisConnectTimeout time.Duration
	// NATSConnectTimeout bounds how long a start waits to connect to
	// NATSURL before it fails (default 30 s).
	NATSConnectTimeout time.Duration

	// WebListen is the HTTP address (default ":9480"); "127.0.0.1:0" picks
	// a free port (see Node.WebAddr).
	WebListen string
	// WebConfigFile is an exporter-toolkit web configuration file (TLS,
	// client certificates, bcrypt basic auth), read again on every request
	// and handshake; empty serves plain HTTP to anyone.
	WebConfigFile string
	// WebEnableLifecycle serves POST /-/reload; without it the endpoint
	// answers 403.
	WebEnableLifecycle bool
	// WebHealthyWithoutAuth serves /-/healthy without basic auth (TLS and
	// client certificates still apply: they precede any request).
	WebHealthyWithoutAuth bool
	// WebMaxConnections bounds the HTTP connections open at once; more wait
	// in the kernel's accept queue (default 256).
	WebMaxConnections int
	// WebMaxMetricsRequests and WebMaxClusterRequests bound the /metrics
	// and /metrics/cluster requests served at once; more are answered 503
	// with Retry-After (defaults 8 and 2).
	WebMaxMetricsRequests, WebMaxClusterRequests int
	// WebReadTimeout, WebWriteTimeout and WebIdleTimeout bound reading a
	// request, writing its response, and a keep-alive connection's wait
	// for the next request (defaults 30 s, 60 s, 60 s).
	WebReadTimeout, WebWriteTimeout, WebIdleTimeout time.Duration
	// ReadyStallAfter is how long the aggregator's mark may stay put while
	// the stream holds more of this node's deltas before /-/ready says the
	// node is not applying them (default 30 s).
	ReadyStallAfter time.Duration

	// Streams names and sizes the streams. Replicas 0 means 3 in a NATS
	// cluster of three or more servers, else 1 (never 2: see autoReplicas).
	Streams streams.Config
	// Limits bounds label count, label value length and names.
	Limits series.Limits
	// MaxSeries and MaxSeriesPerMetric cap the node's cardinality.
	MaxSeries, MaxSeriesPerMetric int
	// MaxProducers caps the producer ids whose batch marks the node holds
	// (default aggregator.DefaultMaxProducers).
	MaxProducers int
	// MaxBatchBytes rejects larger delta messages as oversize (default
	// 8 MiB).
	MaxBatchBytes int

	// SnapshotInterval is how often the node publishes its snapshot
	// (default 5 s); SnapshotTTL how long peers keep it (default three
	// intervals, at least 1 s).
	SnapshotInterval, SnapshotTTL time.Duration
	// SnapshotFullEvery makes every SnapshotFullEvery-th snapshot full and
	// the others incremental (snapshot.Config.FullEvery; 0 means
	// snapshot.DefaultFullEvery, 1 full snapshots only).
	SnapshotFullEvery int
	// PeerForgetAfter is how long a peer whose snapshot expired stays
	// known, shown as down, unless it is removed on purpose first
	// (default 24 h).
	PeerForgetAfter time.Duration
	// ClusterCacheBytes bounds the peers' decoded families the cluster
	// view keeps between scrapes (default DefaultClusterCacheBytes); the
	// compressed snapshots in Redis are the source of truth.
	ClusterCacheBytes int64
	// OrphanScanInterval is how often the delta stream is scanned for
	// deltas no live node will apply (default 30 s).
	OrphanScanInterval time.Duration

	// File is the decoded --config.file: volumes, probes, observer
	// settings and limits (zero: none).
	File config.File
	// Reload builds the configuration anew for Node.Reload (SIGHUP, POST
	// /-/reload): the command rereads --config.file and applies the same
	// precedence as at start. Of what it returns, the node applies File
	// and the limits; the rest must not differ. Nil: a reload rereads
	// nothing and keeps the running configuration.
	Reload func() (Config, error)

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

// Defaults of the fields whose zero value means a default.
const (
	// DefaultWebListen is the default HTTP address.
	DefaultWebListen = ":9480"
	// DefaultConnectTimeout is how long a start waits for an external
	// Redis or NATS to answer.
	DefaultConnectTimeout = 30 * time.Second
	// DefaultSnapshotInterval is how often a node publishes its snapshot.
	DefaultSnapshotInterval = 5 * time.Second
)

// DefaultSnapshotTTL is the snapshot TTL for interval: three intervals,
// and at least the second JetStream's per-message TTL needs.
func DefaultSnapshotTTL(interval time.Duration) time.Duration {
	return max(3*interval, time.Second)
}

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
	c.webDefaults()
	if c.DemoInterval == 0 {
		c.DemoInterval = time.Second
	}
	if c.RedisConnectTimeout == 0 {
		c.RedisConnectTimeout = DefaultConnectTimeout
	}
	if c.NATSConnectTimeout == 0 {
		c.NATSConnectTimeout = DefaultConnectTimeout
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.SnapshotTTL == 0 {
		c.SnapshotTTL = DefaultSnapshotTTL(c.SnapshotInterval)
	}
	// 0 means: decided once connected (replicas), or derived at start
	// (byte bounds, stream_bounds.go).
	replicas, deltaBytes, dlqBytes := c.Streams.Replicas, c.Streams.DeltaMaxBytes, c.Streams.DeadLetterMaxBytes
	c.Streams = c.Streams.WithDefaults()
	c.Streams.Replicas = replicas
	if deltaBytes == 0 {
		c.Streams.DeltaMaxBytes = 0
	}
	if dlqBytes == 0 {
		c.Streams.DeadLetterMaxBytes = 0
	}
	return c
}

// Validate reports the first setting that would make a start fail or
// wait forever, in one line naming its flag and why. It only reads the
// configuration and the file system: it dials nothing and binds nothing.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, check := range []func() error{
		c.checkNames,
		c.checkDurations,
		c.checkStreams,
		c.checkDataDir,
		c.checkWeb,
		c.checkNATS,
		c.checkRedis,
		c.File.Validate,
		c.checkVolumes,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// invalid is the one-line error for a flag's value.
func invalid(flag, value, why string) error {
	return fmt.Errorf("invalid value %q for --%s: %s", value, flag, why)
}

func (c Config) checkNames() error {
	if err := streams.CheckToken("node name", c.Name); err != nil {
		return invalid("node.name", c.Name, err.Error())
	}
	if err := streams.CheckToken("prefix", c.Streams.Prefix); err != nil {
		return invalid("streams.prefix", c.Streams.Prefix, err.Error())
	}
	return nil
}

func (c Config) checkDurations() error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"snapshot.interval", c.SnapshotInterval},
		{"snapshot.ttl", c.SnapshotTTL},
		{"demo.interval", c.DemoInterval},
		{"redis.connect-timeout", c.RedisConnectTimeout},
		{"nats.connect-timeout", c.NATSConnectTimeout},
		{"streams.delta-max-age", c.Streams.DeltaMaxAge},
		{"streams.duplicate-window", c.Streams.Duplicates},
		{"cluster.peer-forget-after", c.PeerForgetAfter},
		{"cluster.orphan-scan-interval", c.OrphanScanInterval},
		{"web.read-timeout", c.WebReadTimeout},
		{"web.write-timeout", c.WebWriteTimeout},
		{"web.idle-timeout", c.WebIdleTimeout},
		{"web.ready-stall-after", c.ReadyStallAfter},
	} {
		if d.v < 0 {
			return invalid(d.flag, d.v.String(), "want a positive duration")
		}
	}
	switch {
	case c.SnapshotInterval < 100*time.Millisecond:
		return invalid("snapshot.interval", c.SnapshotInterval.String(), "want at least 100ms")
	case c.SnapshotTTL < time.Second:
		return invalid("snapshot.ttl", c.SnapshotTTL.String(), "want at least 1s, the shortest message TTL JetStream keeps")
	case c.SnapshotTTL < c.SnapshotInterval:
		return invalid("snapshot.ttl", c.SnapshotTTL.String(), fmt.Sprintf("want at least --snapshot.interval (%s), or peers drop live nodes", c.SnapshotInterval))
	}
	return nil
}

func (c Config) checkStreams() error {
	s := c.Streams
	switch {
	case s.Replicas < 0 || s.Replicas > 5:
		return invalid("streams.replicas", fmt.Sprint(s.Replicas), "want 0 (automatic) to 5")
	case s.Duplicates > s.DeltaMaxAge:
		return invalid("streams.duplicate-window", s.Duplicates.String(), fmt.Sprintf("longer than --streams.delta-max-age (%s): JetStream refuses the stream", s.DeltaMaxAge))
	}
	if s.Replicas > 1 && c.NATSURL == "" {
		// The embedded server's cluster is this node and its routes; a
		// stream needing more servers than that is never created.
		if servers := c.clusterSize(); s.Replicas > servers {
			return invalid("streams.replicas", fmt.Sprint(s.Replicas), fmt.Sprintf("the embedded NATS has %d server(s) (--nats.cluster.routes): JetStream could never place the streams", servers))
		}
	}
	return nil
}

// checkDataDir refuses a data directory that is a file or lies under
// one; one that does not exist yet is created at start.
func (c Config) checkDataDir() error {
	if c.NATSURL != "" && c.RedisURL != "" {
		return nil // nothing is stored locally
	}
	// The directory, or the nearest of its parents that exists, must be
	// a directory: MkdirAll fails under a file.
	for dir := filepath.Clean(c.DataDir); ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err == nil {
			if !st.IsDir() {
				return invalid("data.dir", c.DataDir, dir+" is not a directory")
			}
			return nil
		}
		if parent := filepath.Dir(dir); parent == dir {
			return nil
		}
	}
}

func (c Config) checkWeb() error {
	if _, _, err := listenAddr(c.WebListen); err != nil {
		return invalid("web.listen-address", c.WebListen, err.Error())
	}
	return c.checkWebLimits()
}

func (c Config) checkNATS() error {
	if strings.ContainsFunc(c.NATSClusterName, unicode.IsSpace) {
		return invalid("nats.cluster.name", c.NATSClusterName, "contains white space, which NATS refuses")
	}
	if c.NATSURL != "" {
		switch {
		case c.NATSClusterListen != "":
			return invalid("nats.cluster.listen", c.NATSClusterListen, "is for the embedded server; with --nats.url the cluster is the external one's")
		case len(c.NATSClusterRoutes) > 0:
			return invalid("nats.cluster.routes", strings.Join(c.NATSClusterRoutes, ","), "is for the embedded server; with --nats.url the cluster is the external one's")
		}
		for _, u := range strings.Split(c.NATSURL, ",") {
			if err := checkNATSURL(u); err != nil {
				return invalid("nats.url", redactURL(c.NATSURL), err.Error())
			}
		}
		return c.checkNATSAuth()
	}
	var listens []listener
	if c.NATSListen != "" {
		host, port, err := listenAddr(c.NATSListen)
		if err != nil {
			return invalid("nats.listen", c.NATSListen, err.Error())
		}
		listens = append(listens, listener{"nats.listen", host, port})
	}
	if c.NATSClusterListen == "" {
		if len(c.NATSClusterRoutes) > 0 {
			return invalid("nats.cluster.routes", strings.Join(c.NATSClusterRoutes, ","), "needs --nats.cluster.listen, the address this node's routes listen on")
		}
	} else {
		host, port, err := listenAddr(c.NATSClusterListen)
		if err != nil {
			return invalid("nats.cluster.listen", c.NATSClusterListen, err.Error())
		}
		listens = append(listens, listener{"nats.cluster.listen", host, port})
		if len(c.NATSClusterRoutes) == 0 {
			return invalid("nats.cluster.listen", c.NATSClusterListen, "needs --nats.cluster.routes: the route URLs of the cluster's nodes")
		}
		others := 0
		for _, r := range c.NATSClusterRoutes {
			rh, rp, err := routeAddr(r)
			if err != nil {
				return invalid("nats.cluster.routes", redactURL(r), err.Error())
			}
			if !isSelf(host, port, rh, rp) {
				others++
			}
		}
		if others == 0 {
			return invalid("nats.cluster.routes", strings.Join(c.NATSClusterRoutes, ","),
				fmt.Sprintf("every route points at this node's own --nats.cluster.listen %s, so it would wait for the other nodes forever; list the other nodes' route URLs", c.NATSClusterListen))
		}
	}
	// The HTTP server and the embedded NATS listeners bind at start; two on
	// one port fail it.
	if host, port, err := listenAddr(c.WebListen); err == nil {
		listens = append(listens, listener{"web.listen-address", host, port})
	}
	for i, a := range listens {
		for _, b := range listens[i+1:] {
			if a.port != 0 && a.port == b.port && hostsOverlap(a.host, b.host) {
				return invalid(b.flag, net.JoinHostPort(b.host, strconv.Itoa(b.port)), fmt.Sprintf("same port as --%s", a.flag))
			}
		}
	}
	return c.checkNATSAuth()
}

func (c Config) checkRedis() error {
	if c.RedisURL == "" {
		return c.checkManagedRedis()
	}
	_, err := c.redisOptions()
	return err
}

// clusterSize is how many servers the embedded NATS cluster has: this one
// and every route that is not to itself.
func (c Config) clusterSize() int {
	if c.NATSClusterListen == "" {
		return 1
	}
	host, port, err := listenAddr(c.NATSClusterListen)
	if err != nil {
		return 1
	}
	seen := map[string]bool{}
	for _, r := range c.NATSClusterRoutes {
		if rh, rp, err := routeAddr(r); err == nil && !isSelf(host, port, rh, rp) {
			seen[net.JoinHostPort(rh, strconv.Itoa(rp))] = true
		}
	}
	return 1 + len(seen)
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
