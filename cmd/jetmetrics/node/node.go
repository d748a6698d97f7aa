package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/consumers/broadcast"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/backoff"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/datadir"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Node is one jetmetrics node. Make it with New and start it with Run.
type Node struct {
	cfg Config
	log zerolog.Logger
	reg *prometheus.Registry

	webAddr     atomic.Pointer[string]
	natsURL     atomic.Pointer[string]
	provisioned atomic.Bool
	// provisionErr is why the last attempt to provision the streams
	// failed, for /-/ready while the node retries.
	provisionErr atomic.Pointer[error]
	agg          atomic.Pointer[aggregator.Aggregator]
	nc           atomic.Pointer[nats.Conn]
	rdb          atomic.Pointer[redis.Client]
	peers        atomic.Pointer[aggregate.Peers]
	// highWater is the lowest aggregate version /metrics may serve: the
	// last stream sequence the delta stream held for this node when the
	// node started (seeded), raised to every version served since. No
	// earlier incarnation can have served a newer aggregate than that
	// start point, so exposed counters never go backwards across a crash,
	// nor while Redis is restored or rolled back and the aggregator
	// replays. Nothing is served before it is seeded.
	highWater atomic.Uint64
	seeded    atomic.Bool
	// lastLocal is the last aggregate loaded for exposition, reused while
	// the stored mark has not moved. Shared, so never modified.
	lastLocal atomic.Pointer[aggregate.State]
	// localExpo and clusterExpo render /metrics and /metrics/cluster,
	// keeping what they rendered of each node at each version.
	localExpo, clusterExpo *exposition.Handler
	broadcast              atomic.Pointer[broadcast.Consumer]
	// runner runs the components once Run has made them; running is set
	// once all are started.
	runner  atomic.Pointer[runner]
	running atomic.Bool
	// vols are the volumes observed: the configuration file's, or with
	// Demo and none there, the machine's disks (demoVols). volumes serves
	// them once the volume components run; clusterVolumes gathers their
	// gauges for /metrics/cluster.
	vols           atomic.Pointer[[]config.Volume]
	demoVols       []config.Volume
	volumes        atomic.Pointer[volumeService]
	clusterVolumes atomic.Pointer[prometheus.Registry]
	// services serves the probed services once the probe components run;
	// clusterServices gathers their gauges for /metrics/cluster.
	services        atomic.Pointer[serviceState]
	clusterServices atomic.Pointer[prometheus.Registry]
	// obsKV is the lease bucket, once provisionObs has made it.
	obsMu sync.Mutex
	obsKV jetstream.KeyValue
	// stall is since when the readiness checks have seen the
	// aggregator's mark stand still.
	stall progress
	// reload is the state of configuration reloads (reload.go).
	reload reloadState
	// file is the configuration file in force: cfg.File until a reload.
	file      atomic.Pointer[config.File]
	started   chan struct{}
	startOnce sync.Once
}

// New validates cfg and returns a node ready to Run.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	reg := cfg.Registry
	if reg == nil {
		reg = exposition.NewRegistry()
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("node", cfg.Name).Logger(),
		reg:     reg,
		started: make(chan struct{}),
	}
	if err := reg.Register(newPeerCollector(n)); err != nil {
		return nil, fmt.Errorf("peer metrics: %w", err)
	}
	if err := reg.Register(newStreamCollector(n)); err != nil {
		return nil, fmt.Errorf("stream metrics: %w", err)
	}
	if cfg.Demo {
		vols, err := demoVolumes()
		if err != nil {
			n.log.Warn().Err(err).Msg("demo: no local volumes")
		}
		n.demoVols = vols
	}
	n.file.Store(&cfg.File)
	vols := n.volumesOf(cfg.File)
	n.vols.Store(&vols)
	if err := n.registerReload(); err != nil {
		return nil, err
	}
	return n, nil
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Started is closed once the HTTP server listens (WebAddr is known) or Run
// has returned.
func (n *Node) Started() <-chan struct{} { return n.started }

// WebAddr is the HTTP server's address once it listens.
func (n *Node) WebAddr() string {
	if p := n.webAddr.Load(); p != nil {
		return *p
	}
	return ""
}

// NATSURL is the URL producers can publish to: the embedded server's
// client URL, or the configured one.
func (n *Node) NATSURL() string {
	if p := n.natsURL.Load(); p != nil {
		return *p
	}
	return ""
}

// Ready reports whether NATS is connected, the streams exist, Redis
// answers and every component is ready (see Readiness); the error names
// the first check or component that is not.
func (n *Node) Ready(ctx context.Context) error {
	_, err := n.Readiness(ctx)
	return err
}

// Readiness is Ready with a line per check and component, "name: ok" or
// "name: why not", as /-/ready shows them.
func (n *Node) Readiness(ctx context.Context) (string, error) {
	checks := []componentState{{Name: "nats", Err: n.natsReady()}, {Name: "streams", Err: n.streamsReady()}, {Name: "redis", Err: n.redisReady(ctx)}}
	if r := n.runner.Load(); r != nil {
		checks = append(checks, r.states(ctx)...)
	}
	if !n.running.Load() {
		checks = append(checks, componentState{Name: "components", Err: errors.New("starting")})
	}
	return readyReport(checks)
}

func (n *Node) natsReady() error {
	if nc := n.nc.Load(); nc == nil || !nc.IsConnected() {
		return errors.New("not connected")
	}
	return nil
}

func (n *Node) streamsReady() error {
	if n.provisioned.Load() {
		return nil
	}
	if p := n.provisionErr.Load(); p != nil {
		return *p
	}
	return errors.New("not provisioned yet")
}

func (n *Node) redisReady(ctx context.Context) error {
	rdb := n.rdb.Load()
	if rdb == nil {
		return errors.New("not connected")
	}
	return rdb.Ping(ctx).Err()
}

// Run starts the node and blocks until ctx ends or a part fails for good;
// it returns nil after a clean shutdown.
func (n *Node) Run(ctx context.Context) (err error) {
	defer n.startOnce.Do(func() { close(n.started) })
	dir, err := datadir.Claim(n.cfg.DataDir, n.cfg.Name, n.cfg.AdoptDataDir)
	if err != nil {
		return fmt.Errorf("--data.dir %q: %w", n.cfg.DataDir, err)
	}
	defer dir.Close()

	// Redis first: a missing redis-server is the likeliest problem on a new
	// machine, and it should be reported before anything else starts.
	rs, rdb, err := n.startRedis(ctx)
	if err != nil {
		return err
	}
	n.rdb.Store(rdb)
	n.peers.Store(aggregate.NewPeers(rdb, n.cfg.RedisKeyPrefix, aggregate.ForgetAfter(n.cfg.PeerForgetAfter)))
	defer func() {
		if cerr := rdb.Close(); cerr != nil {
			n.log.Debug().Err(cerr).Msg("close redis client")
		}
		if rs != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if serr := rs.Stop(sctx); serr != nil {
				n.log.Warn().Err(serr).Msg("stop redis-server")
			}
			n.log.Info().Msg("redis-server stopped")
		}
	}()

	ns, nc, adminNC, err := n.startNATS(ctx)
	if err != nil {
		return err
	}
	n.nc.Store(nc)
	defer func() {
		if derr := drain(nc, 10*time.Second); derr != nil {
			n.log.Warn().Err(derr).Msg("drain nats connection")
		}
		if adminNC != nc {
			adminNC.Close()
		}
		if ns != nil {
			ns.Shutdown()
			n.log.Info().Msg("embedded nats-server stopped")
		}
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	// admin creates and recreates the streams; nc may not (docs/security.md).
	admin, err := jetstream.New(adminNC)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	web, err := n.listenWeb()
	if err != nil {
		return err
	}
	n.startOnce.Do(func() { close(n.started) })

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := &group{cancel: cancel}
	g.Go(func() error { return web.Run(runCtx) })

	if ns != nil {
		// In a cluster, JetStream requests made before a meta leader exists
		// are dropped unanswered; wait for one instead of timing out.
		if size := n.cfg.clusterSize(); size > 1 {
			why := fmt.Errorf("waiting for the NATS cluster to elect a JetStream leader: the cluster's first start needs all %d servers of --nats.cluster.routes up, later starts %d of them", size, size/2+1)
			n.provisionErr.Store(&why)
		}
		if err := ns.WaitJetStreamReady(runCtx); err != nil {
			cancel()
			g.Wait()
			return err
		}
	}
	if n.cfg.Streams.Replicas == 0 {
		embedded := 0
		if ns != nil {
			embedded = n.cfg.clusterSize()
		}
		n.cfg.Streams.Replicas = autoReplicas(nc, embedded)
	}
	if err := n.boundStreams(n.cfg.DataDir, ns != nil); err != nil {
		cancel()
		g.Wait()
		return err
	}
	if err := n.provision(runCtx, admin); err != nil {
		cancel()
		g.Wait()
		return err
	}
	n.provisioned.Store(true)
	if err := n.seedHighWater(runCtx, js, rdb); err != nil {
		cancel()
		g.Wait()
		return err
	}

	comps, err := n.components(runCtx, js, admin, rdb, rs, nc)
	if err != nil {
		cancel()
		g.Wait()
		return err
	}
	r := &runner{g: g, ctx: runCtx}
	n.runner.Store(r)
	for _, c := range comps {
		r.start(c)
	}
	n.running.Store(true)
	n.log.Info().Str("web", n.WebAddr()).Str("nats", redactURL(n.NATSURL())).Msg("node running")

	select {
	case <-ctx.Done():
	case <-g.Done():
	}
	n.log.Info().Msg("node stopping")
	cancel()
	return g.Wait()
}

func (n *Node) startRedis(ctx context.Context) (*redisserver.Server, *redis.Client, error) {
	if n.cfg.RedisURL != "" {
		opts, err := n.cfg.redisOptions()
		if err != nil {
			return nil, nil, err
		}
		if err := n.waitRedis(ctx, opts); err != nil {
			return nil, nil, err
		}
		return nil, redis.NewClient(opts), nil
	}
	dir, err := filepath.Abs(n.cfg.redisDir())
	if err != nil {
		return nil, nil, fmt.Errorf("redis dir: %w", err)
	}
	// The child's output and the supervisor's notices carry the node's
	// name from n.log; redisserver adds none of its own.
	rc := managedRedis(dir, quiet(n.log.With().Str("component", "redis-server").Logger()))
	rs, err := redisserver.Start(ctx, rc)
	if err != nil {
		return nil, nil, fmt.Errorf("start redis-server: %w", err)
	}
	n.log.Info().Str("url", rs.URL()).Msg("redis-server started")
	return rs, redis.NewClient(rs.Options()), nil
}

// startNATS starts the embedded server, or connects to --nats.url. It
// returns the node's connection and the one that creates streams: the
// same with --nats.url or without a users file, else an in-process admin.
func (n *Node) startNATS(ctx context.Context) (*natsserver.Server, *nats.Conn, *nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("jetmetrics-node-" + n.cfg.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				n.log.Warn().Err(err).Msg("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			n.log.Info().Str("url", c.ConnectedUrlRedacted()).Msg("nats reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// Permission violations land here: a denied subject names what
			// this node's credential lacks.
			n.log.Warn().Err(err).Msg("nats error")
		}),
	}
	if n.cfg.NATSURL != "" {
		auth, err := n.cfg.clientOptions().NATSOptions()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--nats.url credentials: %w", err)
		}
		nc, err := n.connectNATS(ctx, append(opts, auth...))
		if err != nil {
			return nil, nil, nil, err
		}
		url := n.cfg.NATSURL
		n.natsURL.Store(&url)
		return nil, nc, nc, nil
	}
	auth, err := n.cfg.embeddedAuth()
	if err != nil {
		return nil, nil, nil, err
	}
	clientTLS, err := n.cfg.clientTLS()
	if err != nil {
		return nil, nil, nil, err
	}
	routeTLS, err := n.cfg.routeTLS()
	if err != nil {
		return nil, nil, nil, err
	}
	sc := natsserver.Config{
		Name:       n.cfg.Name,
		StoreDir:   n.cfg.natsDir(),
		DontListen: n.cfg.NATSListen == "",
		// natsserver names the server (the node) in every line itself.
		Logger: quiet(n.cfg.Logger.With().Str("component", "nats-server").Logger()),
		// Room for snapshots of large aggregates; the SDK splits deltas to
		// whatever the server allows.
		MaxPayload:    8 << 20,
		ClusterName:   n.cfg.NATSClusterName,
		ClusterListen: n.cfg.NATSClusterListen,
		Routes:        n.cfg.NATSClusterRoutes,
		TLS:           clientTLS,
		ClusterTLS:    routeTLS,
	}
	if n.cfg.NATSClusterUser != "" {
		pw, err := n.cfg.clusterPassword()
		if err != nil {
			return nil, nil, nil, err
		}
		sc.ClusterUser, sc.ClusterPassword = n.cfg.NATSClusterUser, pw
	}
	var nodeAuth, adminAuth []nats.Option
	if auth != nil {
		sc.Users, sc.Nkeys = auth.users, auth.nkeys
		nodeAuth, adminAuth = []nats.Option{auth.node}, []nats.Option{auth.admin, nats.Name("jetmetrics-node-" + n.cfg.Name + "-admin")}
	}
	for _, l := range n.cfg.insecureListeners() {
		n.log.Warn().Str("listen", l).Msg("--nats.insecure: this listener leaves loopback without authentication (or, for routes, without TLS); anyone who reaches it or sees its traffic can read, write and delete every stream")
	}
	if !sc.DontListen {
		host, port, err := splitHostPort(n.cfg.NATSListen)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--nats.listen %q: %w", n.cfg.NATSListen, err)
		}
		sc.Host, sc.Port = host, port
	}
	ns, err := natsserver.Start(sc)
	if err != nil {
		// A port in use or an address that is not this machine's: say
		// which flags set the listeners.
		return nil, nil, nil, fmt.Errorf("start embedded nats-server (--nats.listen %q, --nats.cluster.listen %q): %w", n.cfg.NATSListen, n.cfg.NATSClusterListen, err)
	}
	url := ns.ClientURL()
	n.natsURL.Store(&url)
	nc, err := ns.Connect(append(opts, nodeAuth...)...)
	if err != nil {
		ns.Shutdown()
		return nil, nil, nil, fmt.Errorf("connect to embedded nats-server: %w", err)
	}
	adminNC := nc
	if auth != nil {
		if adminNC, err = ns.Connect(append(opts, adminAuth...)...); err != nil {
			nc.Close()
			ns.Shutdown()
			return nil, nil, nil, fmt.Errorf("connect to embedded nats-server as admin: %w", err)
		}
	}
	n.log.Info().Str("url", url).Str("store", sc.StoreDir).Bool("auth", auth != nil).Msg("embedded nats-server started")
	return ns, nc, adminNC, nil
}

// splitHostPort parses "host:port"; port 0 asks for a free one.
func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

// provision creates the streams, retrying while JetStream is not yet
// available (a cluster still electing its meta leader).
func (n *Node) provision(ctx context.Context, js jetstream.JetStream) error {
	retry := backoff.Backoff{Max: time.Second}
	for {
		// Short attempts: requests to a stream still electing its leader
		// are dropped, not refused, and only a retry gets an answer.
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := streams.Provision(pctx, js, n.cfg.Streams)
		cancel()
		if err == nil {
			n.log.Info().Str("stream", n.cfg.Streams.DeltaStream()).Int("replicas", n.cfg.Streams.Replicas).Msg("streams provisioned")
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("provision streams: %w", err)
		}
		if denied := js.Conn().LastError(); errors.Is(denied, nats.ErrPermissionViolation) {
			// A node credential of an external NATS may not create or
			// update streams: streams an admin made are enough.
			missing, lerr := n.missingStreams(ctx, js)
			if lerr == nil && len(missing) == 0 {
				n.log.Warn().Err(denied).Msg("provision streams: not allowed to update them; using them as they are")
				return nil
			}
			if lerr == nil {
				return fmt.Errorf("streams %s are missing and the --nats.url credential may not create them (%v): create them once with an admin credential (jetmetrics node with an admin's --nats.creds, or nats stream add; docs/security.md)", strings.Join(missing, ", "), denied)
			}
		}
		why := n.provisionFailure(err)
		n.provisionErr.Store(&why)
		wait := retry.Next()
		n.log.Warn().Err(why).Dur("backoff", wait).Msg("provision streams: retrying")
		if !backoff.Sleep(ctx, wait) {
			return fmt.Errorf("provision streams: %w", err)
		}
	}
}

// provisionFailure is err as /-/ready shows it while provisioning
// retries: the replica count asked for and, when JetStream cannot place
// it, what to do.
func (n *Node) provisionFailure(err error) error {
	r := n.cfg.Streams.Replicas
	// 10005 is nats-server's JSClusterNoPeersErrF ("no suitable peers for
	// placement"), which nats.go has no name for.
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == 10005 {
		return fmt.Errorf("JetStream cannot place R%d streams on the servers it sees (%w): start the other servers, or set --streams.replicas to at most the servers up (docs/operations.md, \"Cluster sizes\")", r, err)
	}
	return fmt.Errorf("provisioning R%d streams: %w", r, err)
}

// missingStreams lists the streams Provision makes that do not exist.
func (n *Node) missingStreams(ctx context.Context, js jetstream.JetStream) ([]string, error) {
	var missing []string
	for _, name := range []string{n.cfg.Streams.DeltaStream(), n.cfg.Streams.DeadLetterStream(), n.cfg.Streams.SnapshotStream()} {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.Stream(sctx, name)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			missing = append(missing, name)
		case err != nil:
			return nil, err
		}
	}
	return missing, nil
}

// drain drains nc and waits for it to close.
func drain(nc *nats.Conn, timeout time.Duration) error {
	if nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return err
	}
	select {
	case <-closed:
		return nil
	case <-time.After(timeout):
		nc.Close()
		return errors.New("drain timed out")
	}
}

// quiet keeps an embedded server's chatter (banners, notices) out of the
// node's log unless the node logs at debug level.
func quiet(l zerolog.Logger) zerolog.Logger {
	if l.GetLevel() > zerolog.DebugLevel {
		return l.Level(zerolog.WarnLevel)
	}
	return l
}

// seedHighWater starts the high-water mark at the version the aggregate
// reaches once it has applied the last message the delta stream holds for
// this node: that message's sequence plus the base of the stream's
// incarnation (aggregator.Base, from the marks in Redis: after the stream
// was replaced, versions run ahead of its sequences). Every version an
// earlier incarnation of the node served was that of a message in this
// stream, or of one before it, so none was newer: after a crash that cost
// Redis the tail of its AOF, /metrics answers 503 until the aggregator has
// replayed up to there (or has caught up with the stream, should that
// message be deleted meanwhile). The mark is read from the stream and the
// node's own Redis, never from a message anyone may publish, such as a
// snapshot or a checkpoint: a Redis that lost everything gives base 0,
// and a checkpoint restored after a reset may then be served before the
// aggregator has replayed past it (docs/guarantees.md, step 12). It
// retries until the stream and Redis answer or ctx ends.
func (n *Node) seedHighWater(ctx context.Context, js jetstream.JetStream, rdb redis.UniversalClient) error {
	retry := backoff.Backoff{Max: time.Second}
	for {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		version, seq, err := n.deltaHorizon(sctx, js, rdb)
		cancel()
		if err == nil {
			raiseTo(&n.highWater, version)
			n.seeded.Store(true)
			n.log.Debug().Uint64("seq", seq).Uint64("version", version).Msg("high-water mark seeded from the delta stream")
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("read the delta stream's last sequence for %s: %w", n.cfg.Name, err)
		}
		wait := retry.Next()
		n.log.Warn().Err(err).Dur("backoff", wait).Msg("read the delta stream's last sequence: retrying")
		if !backoff.Sleep(ctx, wait) {
			return fmt.Errorf("read the delta stream's last sequence for %s: %w", n.cfg.Name, err)
		}
	}
}

// deltaHorizon is the stream sequence of the last message the delta stream
// holds for this node (0 when none) and the aggregate version it stands
// for: the sequence plus the base the stored aggregate takes in the
// stream's current incarnation.
func (n *Node) deltaHorizon(ctx context.Context, js jetstream.JetStream, rdb redis.UniversalClient) (version, seq uint64, err error) {
	s, err := js.Stream(ctx, n.cfg.Streams.DeltaStream())
	if err != nil {
		return 0, 0, err
	}
	if seq, err = lastSeqOf(ctx, s, n.cfg.Streams.Subjects().DeltaNode(n.cfg.Name)); err != nil {
		return 0, 0, err
	}
	marks, err := aggregate.NewStore(rdb, n.cfg.RedisKeyPrefix, n.cfg.Name).Marks(ctx)
	if err != nil {
		return 0, 0, err
	}
	info := s.CachedInfo()
	return aggregator.Base(marks, aggregator.Incarnation(info), info.State.LastSeq) + seq, seq, nil
}

// lastDeltaSeq is the stream sequence of the last message the delta stream
// holds for this node, 0 when it holds none.
func (n *Node) lastDeltaSeq(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	s, err := js.Stream(ctx, n.cfg.Streams.DeltaStream())
	if err != nil {
		return 0, err
	}
	return lastSeqOf(ctx, s, n.cfg.Streams.Subjects().DeltaNode(n.cfg.Name))
}

// lastSeqOf is the stream sequence of s's last message on subject, 0 when
// it holds none.
func lastSeqOf(ctx context.Context, s jetstream.Stream, subject string) (uint64, error) {
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// publishFloor is the lowest version worth publishing as a snapshot: the
// high-water mark, until the aggregator has caught up with the stream.
func (n *Node) publishFloor() uint64 {
	if a := n.agg.Load(); a != nil && a.CaughtUp() {
		return 0
	}
	return n.highWater.Load()
}

// raiseTo sets a to v if v is higher.
func raiseTo(a *atomic.Uint64, v uint64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// autoReplicas picks the stream replication factor when none is set: 3 in
// a NATS cluster of three or more servers, else 1. Never 2: a replicated
// stream needs a majority of its replicas to accept a write, and the
// majority of two is two, so R2 stops taking deltas when either server
// is down, where R1 stops only when the one holding the stream is
// (docs/operations.md, "Cluster sizes"). embedded is the size of the
// embedded server's cluster, known from the flags; 0 with --nats.url,
// where the servers the connection knows are the estimate (it may list a
// server under several URLs, so an external cluster is best given
// --streams.replicas).
func autoReplicas(nc *nats.Conn, embedded int) int {
	servers := embedded
	if servers == 0 && nc.ConnectedClusterName() != "" {
		servers = len(nc.Servers())
	}
	if servers >= 3 {
		return 3
	}
	return 1
}
