package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
)

// env owns what a figure starts (servers, nodes, directories) and stops it
// in reverse order.
type env struct {
	dir   string
	log   zerolog.Logger
	stops []func()
}

func newEnv(log zerolog.Logger) (*env, error) {
	dir, err := os.MkdirTemp("", "jmbench")
	if err != nil {
		return nil, fmt.Errorf("bench dir: %w", err)
	}
	return &env{dir: dir, log: log}, nil
}

// defer registers fn to run at close, before what was registered earlier.
func (e *env) onClose(fn func()) { e.stops = append(e.stops, fn) }

// close stops everything, last started first, and removes the directory.
func (e *env) close() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	e.stops = nil
	os.RemoveAll(e.dir)
}

// subdir returns a new directory under the env's.
func (e *env) subdir(name string) string {
	d, err := os.MkdirTemp(e.dir, name)
	if err != nil {
		return filepath.Join(e.dir, name)
	}
	return d
}

// redis starts a redis-server child as a node runs it (AOF, fsync every
// second) on a unix socket, and a client of it.
func (e *env) redis(ctx context.Context, name string) (*redisserver.Server, *redis.Client, error) {
	dir := e.subdir("redis-" + name)
	rs, err := redisserver.Start(ctx, redisserver.Config{
		Dir:         dir,
		Socket:      filepath.Join(dir, "redis.sock"),
		AppendFsync: "everysec",
		Logger:      e.log.With().Str("component", "redis-"+name).Logger().Level(zerolog.WarnLevel),
	})
	if err != nil {
		return nil, nil, err
	}
	// The machine is shared: a dump of 300k fields or a script of 20k
	// writes can take seconds under load, longer than go-redis's default
	// 3 s timeout, and a resent script only finds its mark moved.
	opts := rs.Options()
	opts.ReadTimeout, opts.WriteTimeout, opts.MaxRetries = 30*time.Second, 30*time.Second, -1
	rdb := redis.NewClient(opts)
	e.onClose(func() {
		rdb.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rs.Stop(sctx); err != nil {
			e.log.Warn().Err(err).Msg("stop redis-server")
		}
	})
	return rs, rdb, nil
}

// runningNode is a node running in this process.
type runningNode struct {
	*node.Node
	reg  *prometheus.Registry
	url  string
	stop func() // stops the node and waits; idempotent
}

// startNode runs a node with cfg until close and waits until it is ready.
// Unset fields get the harness's defaults: a data directory, loopback
// ports and the env's logger.
func (e *env) startNode(ctx context.Context, cfg node.Config) (*runningNode, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = e.subdir("node-" + cfg.Name)
	}
	if cfg.WebListen == "" {
		cfg.WebListen = "127.0.0.1:0"
	}
	if cfg.NATSURL == "" && cfg.NATSListen == "" {
		cfg.NATSListen = "127.0.0.1:0"
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	cfg.Logger = e.log.With().Str("bench_node", cfg.Name).Logger()
	n, err := node.New(cfg)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.log.Warn().Err(err).Str("bench_node", cfg.Name).Msg("node stopped")
				}
			case <-time.After(time.Minute):
				e.log.Warn().Str("bench_node", cfg.Name).Msg("node did not stop within a minute")
			}
		})
	}
	e.onClose(stop)
	select {
	case <-n.Started():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rn := &runningNode{Node: n, reg: cfg.Registry, url: "http://" + n.WebAddr(), stop: stop}
	err = poll(ctx, time.Minute, func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("node %s stopped: %w", cfg.Name, err)
		default:
		}
		resp, err := http.Get(rn.url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("node %s: /-/ready: %s", cfg.Name, resp.Status)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rn, nil
}

// errStop ends a poll early with the error it wraps.
var errStop = errors.New("stop polling")

// poll calls cond every 10 ms until it returns nil, and returns its last
// error if that takes longer than timeout or ctx ends.
func poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil || errors.Is(err, errStop) {
			return err
		}
		select {
		case <-deadline.C:
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// counterValue reads a counter or gauge of reg without labels.
func counterValue(reg prometheus.Gatherer, name string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return sum, nil
	}
	return 0, fmt.Errorf("no metric %s", name)
}
