package fault_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// nodeName is the node every test aggregates for.
const nodeName = "n1"

// seriesLimits are the limits the rig's aggregators run with.
var seriesLimits = series.Limits{}

// Time limits. Every wait in the suite is a poll bounded by one of them.
const (
	// settleTimeout bounds waiting for an aggregator to apply everything.
	settleTimeout = 30 * time.Second
	// loadTimeout bounds one test's load loop.
	loadTimeout = 30 * time.Second
)

// rig is a real embedded nats-server and a real redis-server with the
// streams provisioned, for tests that run aggregators directly.
type rig struct {
	t       *testing.T
	nats    *natsserver.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	redis   *redisserver.Server
	rdb     *redis.Client
	store   *aggregate.Store
	streams streams.Config
}

// rigConfig chooses what the rig's defaults leave open.
type rigConfig struct {
	// Duplicates is the delta stream's duplicate window (default 2 min).
	Duplicates time.Duration
	// AppendFsync is Redis's AOF fsync policy (default "always").
	AppendFsync string
}

func newRig(t *testing.T, cfg rigConfig) *rig {
	t.Helper()
	if cfg.AppendFsync == "" {
		cfg.AppendFsync = "always"
	}
	ns := harness.NATS(t)
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sc := streams.Config{Duplicates: cfg.Duplicates}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := streams.Provision(ctx, js, sc); err != nil {
		t.Fatal(err)
	}
	rs := harness.RedisWith(t, redisserver.Config{AppendFsync: cfg.AppendFsync})
	rdb := harness.RedisClient(t, rs)
	return &rig{
		t: t, nats: ns, nc: nc, js: js, redis: rs, rdb: rdb,
		store:   aggregate.NewStore(rdb, "", nodeName),
		streams: sc,
	}
}

// instance is one aggregator running in the test, as one process would:
// its own registry, its own store client state, its own lifetime.
type instance struct {
	agg    *aggregator.Aggregator
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// aggregatorConfig fills what every test's aggregator shares: the node,
// the rig's streams, quick resumption, and the test's logger.
func (r *rig) aggregatorConfig(cfg aggregator.Config) aggregator.Config {
	cfg.Node = nodeName
	cfg.Streams = r.streams
	cfg.Limits = seriesLimits
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = 2*time.Millisecond, 50*time.Millisecond
	}
	if cfg.IdleCheck == 0 {
		cfg.IdleCheck = 50 * time.Millisecond
	}
	cfg.Logger = harness.Logger(r.t).With().Str("component", "aggregator").Logger()
	return cfg
}

// start runs an aggregator until stop or the test's cleanup.
func (r *rig) start(cfg aggregator.Config) *instance {
	r.t.Helper()
	reg := prometheus.NewRegistry()
	a, err := aggregator.New(r.aggregatorConfig(cfg), r.js, aggregate.NewStore(r.rdb, "", nodeName), reg)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{agg: a, reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		in.err = a.Run(ctx)
	}()
	r.t.Cleanup(func() { in.stop(r.t) })
	return in
}

// stop ends the instance and waits for Run to return.
func (in *instance) stop(t testing.TB) {
	t.Helper()
	in.cancel()
	select {
	case <-in.done:
		if in.err != nil {
			t.Errorf("aggregator: %v", in.err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("aggregator did not stop within 30s")
	}
}

// counterValue reads one of an instance's own counters.
func (in *instance) counterValue(name string) float64 {
	fams, err := in.reg.Gather()
	if err != nil {
		return -1
	}
	var v float64
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// lastSeq is the stream sequence of node's newest delta message, 0 when
// there is none.
func lastSeq(ctx context.Context, js jetstream.JetStream, node string) (uint64, error) {
	s, err := js.Stream(ctx, streams.Config{}.DeltaStream())
	if err != nil {
		return 0, err
	}
	m, err := s.GetLastMsgForSubject(ctx, streams.Subjects{}.DeltaNode(node))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// settle waits until the aggregate's stream mark has reached the last
// message published for the node so far: nothing is left to apply, and
// whatever the aggregate shows now is final.
func settle(t testing.TB, js jetstream.JetStream, rdb *redis.Client) {
	t.Helper()
	var last uint64
	harness.Eventually(t, settleTimeout, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		last, err = lastSeq(ctx, js, nodeName)
		return err
	})
	store := aggregate.NewStore(rdb, "", nodeName)
	harness.Eventually(t, settleTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := store.Marks(ctx)
		if err != nil {
			return err
		}
		if m.Stream < last {
			return fmt.Errorf("aggregate at stream seq %d, the stream's last message for %s is %d", m.Stream, nodeName, last)
		}
		return nil
	})
}

// storedSamples reads the aggregate from Redis and flattens it as /metrics
// would expose it.
func storedSamples(ctx context.Context, store *aggregate.Store) (map[string]float64, error) {
	st, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	fams := map[string]*dto.MetricFamily{}
	for _, f := range exposition.Families([]*aggregate.State{st}, false) {
		fams[f.GetName()] = f
	}
	return harness.Samples(fams), nil
}

// checkStored settles and compares the stored aggregate with the ledger.
func (r *rig) checkStored(led *ledger) {
	r.t.Helper()
	settle(r.t, r.js, r.rdb)
	got, err := storedSamples(context.Background(), r.store)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := led.check(got); err != nil {
		r.t.Fatalf("aggregate differs from the ledger:\n%v", err)
	}
}
