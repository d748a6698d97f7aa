package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/consumers/snapshot"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/memlimit"
	"github.com/jetmetrics/jetmetrics/streams"
)

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, opts, err := nodeConfig(args, stdout)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	// A reload (SIGHUP, POST /-/reload) builds the configuration again
	// the same way: the same flags and variables, the file read anew, so
	// that precedence is decided in one place.
	cfg.Reload = func() (node.Config, error) {
		c, _, err := nodeConfig(args, io.Discard)
		if err != nil {
			return node.Config{}, err
		}
		if err := checkNodeFlags(c); err != nil {
			return node.Config{}, err
		}
		return c, nil
	}
	logger, err := newLogger(opts.logLevel, opts.logFormat, stderr)
	if err != nil {
		return err
	}
	// From here on everything goes through the logger: the node's own
	// lines, the log package's (net/http and any dependency that uses
	// it), and the error that ends the run.
	prevOut, prevFlags := log.Writer(), log.Flags()
	log.SetFlags(0)
	log.SetOutput(node.LogWriter(logger.With().Str("component", "log").Logger(), zerolog.WarnLevel))
	defer func() {
		log.SetOutput(prevOut)
		log.SetFlags(prevFlags)
	}()
	if err := startNode(ctx, cfg, opts, logger, stdout); err != nil {
		logger.Error().Err(err).Msg("jetmetrics node stopped")
		return reportedError{err}
	}
	return nil
}

// nodeOptions are the node command's flags that are not node.Config's.
type nodeOptions struct {
	logLevel, logFormat string
	checkConfig         bool
	// memoryLimit and memoryLimitRatio are --memory.limit, parsed, and
	// --memory.limit-ratio: the process's, not the node's (applyMemoryLimit).
	memoryLimit      memlimit.Setting
	memoryLimitRatio float64
}

// nodeConfig parses the node command's flags and their JETMETRICS_*
// variables, and reads --config.file. Precedence is decided here, once
// for every key: a flag given on the command line, then its variable,
// then the file's key of the same meaning (config.File.FlagValues), then
// the flag's default. -h returns flag.ErrHelp.
func nodeConfig(args []string, stdout io.Writer) (node.Config, nodeOptions, error) {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	var cfg node.Config
	var opts nodeOptions
	fs.StringVar(&cfg.Name, "node.name", node.DefaultName(), "node name, a subject token of [A-Za-z0-9_-]")
	fs.StringVar(&cfg.DataDir, "data.dir", "./data", "directory for the embedded NATS store and the managed Redis files")
	fs.BoolVar(&cfg.AdoptDataDir, "data.adopt", false, "start on a --data.dir recorded as another node's, and record it as this node's")
	fs.StringVar(&cfg.NATSURL, "nats.url", "", "NATS server URL(s), comma separated; empty starts an embedded server")
	fs.DurationVar(&cfg.NATSConnectTimeout, "nats.connect-timeout", node.DefaultConnectTimeout, "how long a start waits to connect to --nats.url before it fails")
	fs.StringVar(&cfg.NATSListen, "nats.listen", "127.0.0.1:4222", `embedded server's client address; "" for in-process only`)
	fs.StringVar(&cfg.NATSClusterListen, "nats.cluster.listen", "", "embedded server's route address (host:port) to join a NATS cluster")
	routes := fs.String("nats.cluster.routes", "", "comma-separated route URLs of the cluster's nodes (nats://host:port)")
	fs.StringVar(&cfg.NATSClusterName, "nats.cluster.name", "jetmetrics", "NATS cluster name")
	fs.StringVar(&cfg.NATSClusterUser, "nats.cluster.user", "", "user every route must authenticate as, and this node's routes do; with --nats.cluster.password-file")
	fs.StringVar(&cfg.NATSClusterPasswordFile, "nats.cluster.password-file", "", "file holding the route password (or set JETMETRICS_NATS_CLUSTER_PASSWORD)")
	fs.StringVar(&cfg.NATSClusterTLSCertFile, "nats.cluster.tls.cert-file", "", "PEM certificate of this node's routes, both ways (mutual TLS, with --nats.cluster.tls.key-file and --nats.cluster.tls.ca-file)")
	fs.StringVar(&cfg.NATSClusterTLSKeyFile, "nats.cluster.tls.key-file", "", "PEM private key of --nats.cluster.tls.cert-file")
	fs.StringVar(&cfg.NATSClusterTLSCAFile, "nats.cluster.tls.ca-file", "", "PEM CA certificates that sign the other nodes' route certificates")
	fs.StringVar(&cfg.NATSUsersFile, "nats.users.file", "", "YAML users file of the embedded NATS: each user's bcrypt password or nkey and role (producer, node, admin), enforced as NATS permissions (docs/security.md)")
	fs.BoolVar(&cfg.NATSInsecure, "nats.insecure", false, "allow --nats.listen or --nats.cluster.listen on a non-loopback address without authentication (and routes there without TLS)")
	fs.StringVar(&cfg.NATSTLSCertFile, "nats.tls.cert-file", "", "PEM certificate of the embedded client listener; with --nats.url a client certificate")
	fs.StringVar(&cfg.NATSTLSKeyFile, "nats.tls.key-file", "", "PEM private key of --nats.tls.cert-file")
	fs.StringVar(&cfg.NATSTLSCAFile, "nats.tls.ca-file", "", "PEM CA certificates: of client certificates the embedded listener then requires; with --nats.url, of the server's certificate")
	fs.StringVar(&cfg.NATSCredsFile, "nats.creds", "", "JWT credentials file for --nats.url")
	fs.StringVar(&cfg.NATSNkeyFile, "nats.nkey", "", "nkey seed file for --nats.url")
	fs.StringVar(&cfg.NATSUser, "nats.user", "", "user for --nats.url, with --nats.password-file (or JETMETRICS_NATS_PASSWORD)")
	fs.StringVar(&cfg.NATSPasswordFile, "nats.password-file", "", "file holding --nats.user's password")
	fs.StringVar(&cfg.NATSTokenFile, "nats.token-file", "", "file holding a token for --nats.url")
	fs.StringVar(&cfg.RedisURL, "redis.url", "", "Redis URL (redis://, rediss://, unix://), with an ACL user (redis://user@host:6379); empty starts a managed redis-server reachable only by this node")
	fs.StringVar(&cfg.RedisPasswordFile, "redis.password-file", "", "file holding the password of --redis.url's user, read for each new connection (or set JETMETRICS_REDIS_PASSWORD; never both, nor with a password in the URL)")
	fs.StringVar(&cfg.RedisTLSCAFile, "redis.tls.ca-file", "", "PEM CA certificates to verify a rediss:// Redis with; empty uses the system's")
	fs.StringVar(&cfg.RedisTLSCertFile, "redis.tls.cert-file", "", "PEM client certificate for a rediss:// Redis, with --redis.tls.key-file")
	fs.StringVar(&cfg.RedisTLSKeyFile, "redis.tls.key-file", "", "PEM private key of --redis.tls.cert-file")
	fs.StringVar(&cfg.RedisTLSServerName, "redis.tls.server-name", "", "name the rediss:// Redis's certificate must carry; empty means the URL's host")
	fs.StringVar(&cfg.RedisKeyPrefix, "redis.key-prefix", "jetmetrics", "prefix of every Redis key")
	fs.DurationVar(&cfg.RedisConnectTimeout, "redis.connect-timeout", node.DefaultConnectTimeout, "how long a start waits for the Redis of --redis.url to answer before it fails")
	fs.StringVar(&cfg.WebListen, "web.listen-address", node.DefaultWebListen, "HTTP address for /metrics and the API")
	fs.StringVar(&cfg.WebConfigFile, "web.config.file", "", "exporter-toolkit web configuration file for TLS, client certificates and basic auth (reread on every request); empty serves plain HTTP")
	fs.BoolVar(&cfg.WebEnableLifecycle, "web.enable-lifecycle", false, "serve POST /-/reload, which rereads --config.file (SIGHUP does too, always)")
	fs.BoolVar(&cfg.WebHealthyWithoutAuth, "web.healthy-without-auth", false, "serve /-/healthy without the basic auth of --web.config.file (TLS still applies)")
	fs.IntVar(&cfg.WebMaxConnections, "web.max-connections", node.DefaultWebMaxConnections, "most HTTP connections open at once; more wait to be accepted")
	fs.IntVar(&cfg.WebMaxMetricsRequests, "web.max-requests.metrics", node.DefaultWebMaxMetricsRequests, "most /metrics requests served at once; more get 503 with Retry-After")
	fs.IntVar(&cfg.WebMaxClusterRequests, "web.max-requests.cluster", node.DefaultWebMaxClusterRequests, "most /metrics/cluster requests (any format) served at once; more get 503 with Retry-After")
	fs.DurationVar(&cfg.WebReadTimeout, "web.read-timeout", node.DefaultWebReadTimeout, "longest time to read an HTTP request")
	fs.DurationVar(&cfg.WebWriteTimeout, "web.write-timeout", node.DefaultWebWriteTimeout, "longest time to serve an HTTP request and write its response")
	fs.DurationVar(&cfg.WebIdleTimeout, "web.idle-timeout", node.DefaultWebIdleTimeout, "how long an idle keep-alive connection stays open")
	fs.DurationVar(&cfg.ReadyStallAfter, "web.ready-stall-after", node.DefaultReadyStallAfter, "/-/ready fails once the aggregator has applied nothing for this long while the stream holds this node's deltas")
	fs.StringVar(&cfg.Streams.Prefix, "streams.prefix", streams.DefaultPrefix, "subject prefix and stream name base")
	fs.IntVar(&cfg.Streams.Replicas, "streams.replicas", 0, "stream replicas; 0 picks 3 in a NATS cluster of three or more servers, else 1 (R2 stops with either server down)")
	fs.Int64Var(&cfg.Streams.DeltaMaxBytes, "streams.delta-max-bytes", 0, "bytes the delta stream may hold, then publishes fail until space is made (SDKs keep counting and retry); 0 derives a quarter of the data dir's free space (64 MiB to 64 GiB; unlimited with --nats.url), -1 unlimited")
	fs.Int64Var(&cfg.Streams.DeadLetterMaxBytes, "streams.dlq-max-bytes", 0, "bytes the dead-letter stream may hold, then its oldest go; 0 derives a fiftieth of the data dir's free space (16 MiB to 1 GiB; unlimited with --nats.url), -1 unlimited")
	fs.DurationVar(&cfg.Streams.DeltaMaxAge, "streams.delta-max-age", streams.DefaultDeltaMaxAge, "how long deltas are kept: the replay horizon")
	fs.DurationVar(&cfg.Streams.Duplicates, "streams.duplicate-window", streams.DefaultDuplicates, "broker deduplication window on Nats-Msg-Id")
	fs.IntVar(&cfg.MaxSeries, "limits.max-series", 1_000_000, "most series a node holds; new series beyond are refused")
	fs.IntVar(&cfg.MaxSeriesPerMetric, "limits.max-series-per-metric", 100_000, "most series one metric holds")
	fs.IntVar(&cfg.MaxProducers, "limits.max-producers", 100_000, "most producer ids whose batch marks a node holds; the first batch of one more is rejected as producer_limit")
	fs.IntVar(&cfg.MaxBatchBytes, "limits.max-batch-bytes", 8<<20, "largest delta message accepted; larger ones are rejected as oversize")
	fs.IntVar(&cfg.Limits.MaxLabels, "limits.max-labels", 16, "most labels a series may have")
	fs.IntVar(&cfg.Limits.MaxLabelValueBytes, "limits.max-label-value-bytes", 256, "longest label value in bytes")
	fs.DurationVar(&cfg.SnapshotInterval, "snapshot.interval", node.DefaultSnapshotInterval, "how often the node publishes its snapshot to the cluster")
	fs.DurationVar(&cfg.SnapshotTTL, "snapshot.ttl", 0, "how long peers show a node after its last snapshot; 0 means three --snapshot.interval (at least 1s)")
	fs.IntVar(&cfg.SnapshotFullEvery, "snapshot.full-every", snapshot.DefaultFullEvery, "every how many snapshots one is full; the others carry only the series changed since the previous one (1: full ones only, for a cluster with nodes older than incremental snapshots)")
	fs.Int64Var(&cfg.ClusterCacheBytes, "cluster.cache-bytes", node.DefaultClusterCacheBytes, "bytes /metrics/cluster keeps between scrapes of peers' snapshots: copies of their compressed chains (so a scrape reads from Redis only what changed) and decoded metric families (an estimate; one LRU); a scrape decodes only the families it needs")
	fs.DurationVar(&cfg.PeerForgetAfter, "cluster.peer-forget-after", 24*time.Hour, "how long a peer whose snapshot expired stays known, with jetmetrics_peer_up 0, unless it stops gracefully or is forgotten (DELETE /api/v1/nodes/{name})")
	fs.DurationVar(&cfg.OrphanScanInterval, "cluster.orphan-scan-interval", 30*time.Second, "how often the delta stream is scanned for deltas no live node will apply (jetmetrics_orphan_deltas)")
	fs.BoolVar(&cfg.Demo, "demo", false, "also run a built-in producer publishing demo metrics")
	fs.DurationVar(&cfg.DemoInterval, "demo.interval", time.Second, "how often the demo producer updates its metrics")
	memoryLimit := fs.String("memory.limit", "auto", "soft memory limit of the Go runtime, which collects more often near it: auto is GOMEMLIMIT's if set, else --memory.limit-ratio of the cgroup's memory limit (a container's, a systemd MemoryMax), else none; none (or 0) for none; or a size, which overrides GOMEMLIMIT: 512MiB, 2GiB, 1.5GB, bytes")
	fs.Float64Var(&opts.memoryLimitRatio, "memory.limit-ratio", 0.9, "fraction of the cgroup's memory limit that --memory.limit=auto sets, in (0, 1]; the rest is for memory the Go runtime does not count: a managed redis-server in the same cgroup, kernel buffers")
	fs.StringVar(&opts.logLevel, "log.level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&opts.logFormat, "log.format", "console", "log format: console or json")
	configFile := fs.String("config.file", "", "YAML file of volumes, probes, observer settings and limits (docs/configuration.md); reread on SIGHUP and POST /-/reload; empty: none")
	fs.BoolVar(&opts.checkConfig, "check-config", false, "validate the flags and --config.file, and exit")
	if err := parseFlags(fs, args, stdout); err != nil {
		return cfg, opts, err
	}
	var err error
	if opts.memoryLimit, err = parseMemoryLimit(*memoryLimit, opts.memoryLimitRatio); err != nil {
		return cfg, opts, err
	}
	if *configFile != "" {
		f, err := config.Load(*configFile)
		if err != nil {
			if errors.As(err, new(*config.Error)) {
				return cfg, opts, usageError{err.Error()} // names the file already
			}
			return cfg, opts, usageError{"--config.file: " + err.Error()}
		}
		cfg.File = f
		// Flags given on the command line or through their variable are
		// set already (parseFlags); the file fills the others.
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for name, v := range f.FlagValues() {
			if given[name] {
				continue
			}
			if err := fs.Set(name, v); err != nil {
				return cfg, opts, usageError{fmt.Sprintf("--config.file %s: invalid value %q for the twin of --%s: %v", *configFile, v, name, err)}
			}
		}
	}
	// The password's environment variable has no flag: a flag's value is
	// on the command line, which every user of the machine can read.
	cfg.RedisPassword = os.Getenv(redisPasswordEnv)
	cfg.NATSPassword = os.Getenv(natsPasswordEnv)
	cfg.NATSClusterPassword = os.Getenv(natsClusterPasswordEnv)
	for _, r := range strings.Split(*routes, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.NATSClusterRoutes = append(cfg.NATSClusterRoutes, r)
		}
	}
	return cfg, opts, nil
}

// startNode validates cfg and, unless only checking, runs the node.
func startNode(ctx context.Context, cfg node.Config, opts nodeOptions, logger zerolog.Logger, stdout io.Writer) error {
	if err := checkNodeFlags(cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if opts.checkConfig {
		fmt.Fprintln(stdout, "configuration is valid")
		return nil
	}
	// Before anything large is loaded: the aggregate, peers' snapshots.
	applyMemoryLimit(opts.memoryLimit, opts.memoryLimitRatio, memlimit.System(), logger)
	reg := exposition.NewRegistry(versioncollector.NewCollector("jetmetrics"))
	cfg.Logger = logger
	cfg.Registry = reg
	// go-redis logs connection-pool trouble through a process-wide logger;
	// the node reports Redis outages itself, so keep these at debug.
	redis.SetLogger(redisLogger{logger.With().Str("component", "go-redis").Logger()})
	n, err := node.New(cfg)
	if err != nil {
		return usageError{err.Error()}
	}
	// SIGHUP rereads --config.file, as POST /-/reload does. Reload
	// logs the outcome itself and serialises concurrent reloads.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	reloads := make(chan struct{})
	go func() {
		defer close(reloads)
		for {
			select {
			case <-runCtx.Done():
				return
			case <-hup:
				logger.Info().Msg("SIGHUP: reloading the configuration")
				_ = n.Reload(runCtx) // logged and counted by Reload
			}
		}
	}()
	err = n.Run(runCtx)
	cancel()
	<-reloads
	return err
}

// checkNodeFlags refuses the flag values that node.Config reads as "the
// default" (zero) or would correct silently; Config.Validate checks the
// rest, for the flags and for every other caller of node.New alike.
func checkNodeFlags(cfg node.Config) error {
	switch {
	case cfg.Streams.DeltaMaxAge < time.Minute:
		return flagError("streams.delta-max-age", cfg.Streams.DeltaMaxAge.String(), "want at least 1m: it is the replay horizon")
	case cfg.Streams.Duplicates <= 0:
		return flagError("streams.duplicate-window", cfg.Streams.Duplicates.String(), "want a positive duration")
	case cfg.MaxSeries < 1:
		return flagError("limits.max-series", fmt.Sprint(cfg.MaxSeries), "want at least 1")
	case cfg.MaxSeriesPerMetric < 1:
		return flagError("limits.max-series-per-metric", fmt.Sprint(cfg.MaxSeriesPerMetric), "want at least 1")
	case cfg.MaxProducers < 1:
		return flagError("limits.max-producers", fmt.Sprint(cfg.MaxProducers), "want at least 1")
	case cfg.MaxBatchBytes < 1024:
		return flagError("limits.max-batch-bytes", fmt.Sprint(cfg.MaxBatchBytes), "want at least 1024")
	case cfg.Limits.MaxLabels < 1:
		return flagError("limits.max-labels", fmt.Sprint(cfg.Limits.MaxLabels), "want at least 1")
	case cfg.Limits.MaxLabelValueBytes < 1:
		return flagError("limits.max-label-value-bytes", fmt.Sprint(cfg.Limits.MaxLabelValueBytes), "want at least 1")
	case cfg.SnapshotInterval <= 0:
		return flagError("snapshot.interval", cfg.SnapshotInterval.String(), "want at least 100ms")
	case cfg.SnapshotTTL < 0:
		return flagError("snapshot.ttl", cfg.SnapshotTTL.String(), "want 0 (three --snapshot.interval) or at least 1s")
	case cfg.SnapshotFullEvery < 1:
		return flagError("snapshot.full-every", fmt.Sprint(cfg.SnapshotFullEvery), "want at least 1 (1: every snapshot full)")
	case cfg.OrphanScanInterval <= 0:
		return flagError("cluster.orphan-scan-interval", cfg.OrphanScanInterval.String(), "want a positive duration")
	case cfg.ClusterCacheBytes <= 0:
		return flagError("cluster.cache-bytes", fmt.Sprint(cfg.ClusterCacheBytes), "want a positive number of bytes")
	case cfg.PeerForgetAfter <= 0:
		return flagError("cluster.peer-forget-after", cfg.PeerForgetAfter.String(), "want a positive duration")
	case cfg.DemoInterval <= 0:
		return flagError("demo.interval", cfg.DemoInterval.String(), "want a positive duration")
	case cfg.RedisConnectTimeout <= 0:
		return flagError("redis.connect-timeout", cfg.RedisConnectTimeout.String(), "want a positive duration")
	case cfg.NATSConnectTimeout <= 0:
		return flagError("nats.connect-timeout", cfg.NATSConnectTimeout.String(), "want a positive duration")
	case cfg.WebMaxConnections < 1:
		return flagError("web.max-connections", fmt.Sprint(cfg.WebMaxConnections), "want at least 1")
	case cfg.WebMaxMetricsRequests < 1:
		return flagError("web.max-requests.metrics", fmt.Sprint(cfg.WebMaxMetricsRequests), "want at least 1")
	case cfg.WebMaxClusterRequests < 1:
		return flagError("web.max-requests.cluster", fmt.Sprint(cfg.WebMaxClusterRequests), "want at least 1")
	case cfg.WebReadTimeout <= 0:
		return flagError("web.read-timeout", cfg.WebReadTimeout.String(), "want a positive duration")
	case cfg.WebWriteTimeout <= 0:
		return flagError("web.write-timeout", cfg.WebWriteTimeout.String(), "want a positive duration")
	case cfg.WebIdleTimeout <= 0:
		return flagError("web.idle-timeout", cfg.WebIdleTimeout.String(), "want a positive duration")
	case cfg.ReadyStallAfter <= 0:
		return flagError("web.ready-stall-after", cfg.ReadyStallAfter.String(), "want a positive duration")
	case cfg.Name == "":
		return flagError("node.name", "", "want a name of [A-Za-z0-9_-]")
	case cfg.DataDir == "" && (cfg.NATSURL == "" || cfg.RedisURL == ""):
		return flagError("data.dir", "", "want a directory for the embedded NATS store and the managed Redis files")
	}
	return nil
}

// redisPasswordEnv holds the password of --redis.url's user.
const redisPasswordEnv = "JETMETRICS_REDIS_PASSWORD"

// natsPasswordEnv and natsClusterPasswordEnv hold the passwords of
// --nats.user and --nats.cluster.user.
const (
	natsPasswordEnv        = "JETMETRICS_NATS_PASSWORD"
	natsClusterPasswordEnv = "JETMETRICS_NATS_CLUSTER_PASSWORD"
)

type redisLogger struct{ log zerolog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug().Msgf(format, v...)
}

func newLogger(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), flagError("log.level", level, "want debug, info, warn or error")
	}
	// Every goroutine of the node logs: one write at a time, whatever w is
	// (a file is safe on its own; a buffer, as in tests, is not).
	out := zerolog.SyncWriter(w)
	switch format {
	case "json":
		w = out
	case "console":
		w = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339, NoColor: !isTerminal(w)}
	default:
		return zerolog.Nop(), flagError("log.format", format, "want console or json")
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	// A terminal, not any character device: /dev/null is one too.
	return term.IsTerminal(int(f.Fd()))
}
