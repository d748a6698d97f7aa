package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
)

// ingestConfig sizes the ingest figure.
type ingestConfig struct {
	producers int
	series    int
	duration  time.Duration
	// backlog is how many deltas the draining phase publishes first.
	backlog int
	// latencyAt, when set, runs the latency phase alone at this many
	// deltas/s, flushing every latencyFlush, instead of the whole figure.
	latencyAt    float64
	latencyFlush time.Duration
}

// Metrics of the node's registry the figure reads.
const (
	appliedUpdates  = "jetmetrics_aggregator_series_updates_total"
	appliedSequence = "jetmetrics_aggregator_applied_sequence"
)

// cpuMeter samples the CPU time of this process, redis-server and a child.
type cpuMeter struct {
	redisPID, childPID int
}

type cpuSample struct {
	self, redis, child time.Duration
	// err is the first process whose CPU could not be read.
	err error
}

func (m cpuMeter) sample() cpuSample {
	s := cpuSample{self: selfCPU()}
	var err1, err2 error
	s.redis, err1 = procCPU(m.redisPID)
	if m.childPID != 0 {
		s.child, err2 = procCPU(m.childPID)
	}
	s.err = errors.Join(err1, err2)
	return s
}

func (s cpuSample) sub(o cpuSample) cpuSample {
	return cpuSample{self: s.self - o.self, redis: s.redis - o.redis, child: s.child - o.child, err: errors.Join(s.err, o.err)}
}

// ingestFigure measures the deltas a node applies per second at
// saturation and their CPU, and publish→visible latency at half that
// load, beside the pipelined HINCRBY ceiling of the same redis-server.
//
// Saturation is measured two ways. Draining: producers fill the stream
// first, then a node starts on it and works the backlog off with nothing
// else running: the ceiling of NATS→aggregator→Redis. Sustained: producers
// publish while the node applies, so the node also stores every incoming
// message and the producers share the machine; a search over the offered
// rate finds the most the node keeps up with (saturation), and an
// overload beyond the drain rate shows what it applies when it cannot.
func ingestFigure(ctx context.Context, e *env, cfg ingestConfig, rep *report) error {
	rs, rdb, err := e.redis(ctx, "ingest")
	if err != nil {
		return err
	}
	// The peer is measured before and after ours and averaged, so a
	// machine that gets busier or quieter meanwhile weighs on both alike.
	peerTime := min(cfg.duration, 4*time.Second)
	before, peerCPU, err := hincrbyCeiling(ctx, rdb, rs, peerTime)
	if err != nil {
		return err
	}
	e.log.Info().Float64("per_second", before).Msg("ingest: HINCRBY ceiling")
	if cfg.latencyAt > 0 {
		return latencyPhase(ctx, e, rs, rdb, cfg, "n3", cfg.latencyAt, cfg.latencyFlush, true, rep)
	}
	perM := func(d time.Duration, n float64) float64 {
		if d < 0 {
			return math.NaN()
		}
		return d.Seconds() / (n / 1e6)
	}

	drain, err := drainBacklog(ctx, e, rs, cfg)
	if err != nil {
		return err
	}
	sus, over, tried, err := saturate(ctx, e, rs, cfg, drain.rate)
	if err != nil {
		return err
	}
	after, peerCPU2, err := hincrbyCeiling(ctx, rdb, rs, peerTime)
	if err != nil {
		return err
	}
	e.log.Info().Float64("per_second", after).Msg("ingest: HINCRBY ceiling")
	ceiling := (before + after) / 2
	peerCPU = cpuSample{self: (peerCPU.self + peerCPU2.self) / 2, redis: (peerCPU.redis + peerCPU2.redis) / 2}
	peerNote := fmt.Sprintf("peer: pipelined HINCRBY/s, mean of %.0f before and %.0f after", before, after)
	rep.add(
		newRow("ingest: deltas applied/s draining a backlog", "deltas/s", drain.rate, ceiling, goal{kind: ratioAtLeast, value: 0.5},
			fmt.Sprintf("%.0f deltas in %d messages, in %.1f s, producers idle; %s", drain.applied, drain.messages, drain.seconds, peerNote)),
		newRow("ingest: node CPU per million deltas, draining (aggregator, NATS)", "cpu-s", perM(drain.cpu.self, drain.applied), peerCPU.self.Seconds(), goal{},
			"peer: go-redis client CPU per million HINCRBY"),
		newRow("ingest: redis-server CPU per million deltas, draining", "cpu-s", perM(drain.cpu.redis, drain.applied), peerCPU.redis.Seconds(), goal{},
			"peer: redis-server CPU per million HINCRBY"),
	)

	rep.add(
		newRow("ingest: deltas applied/s sustained, the most offered that the node kept up with", "deltas/s", sus.rate, ceiling, goal{kind: ratioAtLeast, value: 0.5},
			fmt.Sprintf("%d producers × %d series every %s, %.0f/s offered; searched: %s", cfg.producers, sus.series, sus.interval, sus.offered, tried)),
		newRow("ingest: node CPU per million deltas, sustained", "cpu-s", perM(sus.cpu.self, sus.applied), peerCPU.self.Seconds(), goal{}, "node and its embedded NATS, which stores every message"),
		newRow("ingest: redis-server CPU per million deltas, sustained", "cpu-s", perM(sus.cpu.redis, sus.applied), peerCPU.redis.Seconds(), goal{}, ""),
		newRow("ingest: producers' CPU per million deltas, sustained", "cpu-s", perM(sus.cpu.child, sus.applied), math.NaN(), goal{},
			fmt.Sprintf("%d producer processes", cfg.producers)),
		newRow("ingest: deltas applied/s under overload, producers offering 1.25× the drain rate", "deltas/s", over.rate, ceiling, goal{},
			fmt.Sprintf("%.0f/s offered, %d messages behind at the end: the producers and the node's NATS storing what it cannot apply take the cores", over.offered, over.backlog)),
	)

	// Half of saturation in the sustained phase's own shape (its flush
	// interval, half the series), which the target is about; then the
	// same rate with the SDK's default flush, for information: twice the
	// series and four times the burst per flush.
	half := min(sus.rate, sus.offered) / 2
	if err := latencyPhase(ctx, e, rs, rdb, cfg, "n3", half, sus.interval, true, rep); err != nil {
		return err
	}
	return latencyPhase(ctx, e, rs, rdb, cfg, "n4", half, producers.DefaultFlushInterval, false, rep)
}

// latencyPhase times publish→visible while producers offer rate deltas/s,
// each flushing every flush, on a fresh node named name: the last one may
// still have a backlog. Probes, flushing as often, time each gauge set
// until Redis holds it. target says whether the p99 row carries the
// issue's target (flush + 250 ms) or is for information.
func latencyPhase(ctx context.Context, e *env, rs *redisserver.Server, rdb *redis.Client, cfg ingestConfig,
	name string, rate float64, flush time.Duration, target bool, rep *report) error {
	reg := prometheus.NewRegistry()
	rn, err := e.startNode(ctx, node.Config{Name: name, RedisURL: rs.URL(), Registry: reg})
	if err != nil {
		return err
	}
	defer rn.stop()
	const warmup = 2 * time.Second
	perProducer := max(1, int(rate*flush.Seconds())/cfg.producers)
	load := loadConfig{natsURL: rn.NATSURL(), node: rn.Name(), producers: cfg.producers, series: perProducer, interval: flush, duration: warmup + cfg.duration}
	child, err := startLoad(ctx, load)
	if err != nil {
		return err
	}
	if err := sleepCtx(ctx, warmup); err != nil {
		return err
	}
	h0, _ := counterValue(reg, appliedUpdates)
	ht0 := time.Now()
	lat, err := probeLatency(ctx, rn, rdb, flush, cfg.duration-time.Second)
	if err != nil {
		return err
	}
	h1, _ := counterValue(reg, appliedUpdates)
	applied := (h1 - h0) / time.Since(ht0).Seconds()
	if _, err := child.wait(time.Minute); err != nil {
		return err
	}
	if err := noRejections(reg); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	slices.Sort(lat)
	limit := (flush + 250*time.Millisecond).Seconds() * 1000
	what := fmt.Sprintf("at half the sustained rate, flushing every %s", flush)
	if !target {
		what = fmt.Sprintf("at the same rate, flushing every %s (the SDK's default)", flush)
	}
	g := goal{kind: atMost, value: limit, unit: "ms"}
	if !target {
		g = goal{}
	}
	note := fmt.Sprintf("%d samples at %.0f deltas/s (%d producers × %d series every %s)", len(lat), applied, cfg.producers, perProducer, flush)
	rep.add(
		newRow("ingest: publish→visible latency p50 "+what, "ms", quantile(lat, 0.5), math.NaN(), goal{}, note),
		newRow("ingest: publish→visible latency p99 "+what, "ms", quantile(lat, 0.99), math.NaN(), g,
			fmt.Sprintf("target flush interval + 250 ms; from the gauge set until Redis holds it; p90 %.0f ms, slowest %.0f ms", quantile(lat, 0.9), lat[len(lat)-1])),
	)
	return nil
}

// drained is what the draining phase measured.
type drained struct {
	rate, applied, seconds float64
	messages               uint64
	cpu                    cpuSample
}

// drainBacklog fills the delta stream with producers publishing back to
// back while no node runs, then starts a node on that stream (its
// embedded server recovers it from the data directory) and times it
// working the backlog off.
func drainBacklog(ctx context.Context, e *env, rs *redisserver.Server, cfg ingestConfig) (drained, error) {
	var d drained
	dataDir := e.subdir("node-drain")
	// The node's embedded server, as the node configures it, run alone.
	ns, err := natsserver.Start(natsserver.Config{Name: "n1", StoreDir: filepath.Join(dataDir, "nats"), Port: -1, MaxPayload: 8 << 20,
		Logger: e.log.With().Str("component", "nats-drain").Logger().Level(zerolog.WarnLevel)})
	if err != nil {
		return d, err
	}
	defer ns.Shutdown()
	nc, err := ns.Connect()
	if err != nil {
		return d, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return d, err
	}
	if err := streams.Provision(ctx, js, streams.Config{}); err != nil {
		return d, err
	}
	rounds := max(1, cfg.backlog/(cfg.producers*cfg.series))
	load := loadConfig{natsURL: ns.ClientURL(), node: "n1", producers: cfg.producers, series: cfg.series, rounds: rounds, duration: 4 * cfg.duration}
	child, err := startLoad(ctx, load)
	if err != nil {
		return d, err
	}
	if _, err := child.wait(time.Minute); err != nil {
		return d, err
	}
	stream, err := js.Stream(ctx, streams.Config{}.DeltaStream())
	if err != nil {
		return d, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return d, err
	}
	d.messages = info.State.LastSeq
	nc.Close()
	ns.Shutdown()

	reg := prometheus.NewRegistry()
	meter := cpuMeter{redisPID: rs.PID()}
	rn, err := e.startNode(ctx, node.Config{Name: "n1", DataDir: dataDir, RedisURL: rs.URL(), Registry: reg})
	if err != nil {
		return d, err
	}
	defer rn.stop()
	a0, _ := counterValue(reg, appliedUpdates)
	c0, t0 := meter.sample(), time.Now()
	err = poll(ctx, 4*cfg.duration, func() error {
		mark, err := counterValue(reg, appliedSequence)
		if err == nil && uint64(mark) < d.messages {
			err = fmt.Errorf("applied up to seq %v of %d", mark, d.messages)
		}
		return err
	})
	c1, t1 := meter.sample(), time.Now()
	a1, _ := counterValue(reg, appliedUpdates)
	d.applied = a1 - a0
	d.seconds = t1.Sub(t0).Seconds()
	d.rate = d.applied / d.seconds
	d.cpu = c1.sub(c0)
	if err := noRejections(reg); err != nil {
		return d, fmt.Errorf("draining: %w", err)
	}
	e.log.Info().Float64("deltas", d.applied).Float64("seconds", d.seconds).Float64("per_s", d.rate).Err(err).Msg("ingest: drained")
	return d, nil
}

// noRejections fails when the node rejected any update: the load would
// not be what the figure means to measure (dead letters are slower than
// applies).
func noRejections(reg prometheus.Gatherer) error {
	n, err := counterValue(reg, "jetmetrics_aggregator_rejected_updates_total")
	if err != nil || n == 0 {
		return nil // no rejection has a series yet
	}
	return fmt.Errorf("the node rejected %.0f updates of the load", n)
}

// sustained is what the sustained phase measured.
type sustained struct {
	rate, applied, offered float64
	series                 int
	interval               time.Duration
	cpu                    cpuSample
	backlog                uint64 // messages in the stream not yet applied at the end
}

// keptUp reports whether the node applied what was offered: no more
// left in the stream at the end than a flush of every producer, and at
// least nine tenths of the offered rate applied.
func (s sustained) keptUp(producers int) bool {
	return s.backlog <= uint64(2*producers) && s.rate >= 0.9*s.offered
}

// saturate searches the offered rate, as fractions of the drain rate, for
// the most the node keeps up with: first an overload (1.25×), then a
// bisection between a quarter and the overload. It returns the best run
// that kept up (the overload if none did), the overload, and what it
// tried.
func saturate(ctx context.Context, e *env, rs *redisserver.Server, cfg ingestConfig, drainRate float64) (best, overload sustained, tried string, err error) {
	var log []string
	lo, hi := 0.25, 1.25
	for step, f := 0, hi; step < 4; step, f = step+1, (lo+hi)/2 {
		// A node of its own each time, so no run inherits a backlog.
		s, err := sustain(ctx, e, rs, cfg, fmt.Sprintf("s%d", step+1), drainRate*f)
		if err != nil {
			return best, overload, "", err
		}
		kept := s.keptUp(cfg.producers)
		verdict := "kept up"
		if !kept {
			verdict = fmt.Sprintf("fell behind (%.0f/s applied, %d messages left)", s.rate, s.backlog)
		}
		log = append(log, fmt.Sprintf("%.0f/s offered %s", s.offered, verdict))
		if step == 0 {
			overload = s
		}
		if !kept {
			hi = f
			continue
		}
		lo = f
		if s.rate > best.rate {
			best = s
		}
		if step == 0 {
			break // even the overload was absorbed
		}
	}
	if best.rate == 0 {
		best = overload
		log = append(log, "none kept up: the overload stands in")
	}
	return best, overload, strings.Join(log, "; "), nil
}

// sustain runs a node and producers offering about offered deltas per
// second, and measures the deltas applied per second over cfg.duration
// after a warmup.
func sustain(ctx context.Context, e *env, rs *redisserver.Server, cfg ingestConfig, name string, offered float64) (sustained, error) {
	s := sustained{interval: 250 * time.Millisecond}
	s.series = max(1, int(offered*s.interval.Seconds())/cfg.producers)
	reg := prometheus.NewRegistry()
	rn, err := e.startNode(ctx, node.Config{Name: name, RedisURL: rs.URL(), Registry: reg})
	if err != nil {
		return s, err
	}
	defer rn.stop()
	nc, err := nats.Connect(rn.NATSURL())
	if err != nil {
		return s, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return s, err
	}
	stream, err := js.Stream(ctx, streams.Config{}.DeltaStream())
	if err != nil {
		return s, err
	}
	const warmup = 2 * time.Second
	load := loadConfig{natsURL: rn.NATSURL(), node: rn.Name(), producers: cfg.producers, series: s.series, interval: s.interval, duration: warmup + cfg.duration}
	child, err := startLoad(ctx, load)
	if err != nil {
		return s, err
	}
	meter := cpuMeter{redisPID: rs.PID(), childPID: child.pid()}
	if err := sleepCtx(ctx, warmup); err != nil {
		return s, err
	}
	a0, _ := counterValue(reg, appliedUpdates)
	c0, t0 := meter.sample(), time.Now()
	if err := sleepCtx(ctx, cfg.duration-500*time.Millisecond); err != nil {
		return s, err
	}
	a1, _ := counterValue(reg, appliedUpdates)
	c1, t1 := meter.sample(), time.Now()
	info, err := stream.Info(ctx)
	if err != nil {
		return s, err
	}
	mark, _ := counterValue(reg, appliedSequence)
	s.backlog = info.State.LastSeq - min(info.State.LastSeq, uint64(mark))
	res, err := child.wait(time.Minute)
	if err != nil {
		return s, err
	}
	if err := noRejections(reg); err != nil {
		return s, fmt.Errorf("sustained: %w", err)
	}
	s.applied = a1 - a0
	s.rate = s.applied / t1.Sub(t0).Seconds()
	s.cpu = c1.sub(c0)
	if s.cpu.err != nil {
		e.log.Warn().Err(s.cpu.err).Msg("ingest: cpu not measured")
		s.cpu.child = -1
	}
	s.offered = float64(res.Updates) / (warmup + cfg.duration).Seconds()
	e.log.Info().Any("load", res).Float64("applied_per_s", s.rate).Uint64("backlog_msgs", s.backlog).Msg("ingest: sustained")
	return s, nil
}

// hincrbyCeiling measures the pipelined HINCRBY rate of rdb's server:
// four goroutines, each with a pipeline of 1000 commands in flight over
// 100,000 fields, for d. It returns commands per second and the CPU per
// million commands of this process (the client) and of redis-server.
func hincrbyCeiling(ctx context.Context, rdb *redis.Client, rs *redisserver.Server, d time.Duration) (float64, cpuSample, error) {
	const goroutines, pipeline, fields = 4, 1000, 100_000
	key := "bench:hincrby"
	names := make([]string, fields)
	for i := range names {
		names[i] = "f" + strconv.Itoa(i)
	}
	meter := cpuMeter{redisPID: rs.PID()}
	var ops atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	c0, t0 := meter.sample(), time.Now()
	var wg sync.WaitGroup
	errs := make([]error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			next := g * fields / goroutines
			for ctx.Err() == nil {
				p := rdb.Pipeline()
				for range pipeline {
					p.HIncrBy(ctx, key, names[next%fields], 1)
					next++
				}
				if _, err := p.Exec(ctx); err != nil {
					if ctx.Err() == nil {
						errs[g] = err
					}
					return
				}
				ops.Add(pipeline)
			}
		})
	}
	wg.Wait()
	c1, t1 := meter.sample(), time.Now()
	if err := errors.Join(errs...); err != nil {
		return 0, cpuSample{}, fmt.Errorf("hincrby ceiling: %w", err)
	}
	n := float64(ops.Load())
	cpu := c1.sub(c0)
	perMillion := cpuSample{self: time.Duration(float64(cpu.self) / (n / 1e6)), redis: time.Duration(float64(cpu.redis) / (n / 1e6))}
	if err := rdb.Del(context.Background(), key).Err(); err != nil {
		return 0, cpuSample{}, err
	}
	return n / t1.Sub(t0).Seconds(), perMillion, nil
}

// probes is how many gauges time publish→visible at once, each from its
// own producer so their flush timers are out of phase: enough for a few
// hundred samples a phase, so that p99 is not simply the slowest one.
const probes = 48

// probeLatency sets probe gauges to the current time and polls Redis until
// the node's aggregate holds each value, for d; it returns the latencies
// in milliseconds.
func probeLatency(ctx context.Context, rn *runningNode, rdb *redis.Client, flush, d time.Duration) ([]float64, error) {
	// The series hash of the node's aggregate, and a probe's field: its
	// series key, a bare metric name. pkg/aggregate keeps the key schema
	// private; this is checked below by reading a first probe back.
	hash := aggregate.DefaultKeyPrefix + ":{" + rn.Name() + "}:series"
	fields := make([]string, probes)
	for i := range fields {
		fields[i] = "harness_probe_" + strconv.Itoa(i)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []float64
	var wg sync.WaitGroup
	// want[i] is the value probe i waits for; seen[i] is closed by the
	// poller when Redis holds it.
	want := make([]atomic.Pointer[string], probes)
	seen := make([]chan struct{}, probes)
	for i := range seen {
		seen[i] = make(chan struct{}, 1)
	}
	pollErr := make(chan error, 1)
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				pollErr <- nil
				return
			case <-tick.C:
			}
			vals, err := rdb.HMGet(ctx, hash, fields...).Result()
			if err != nil {
				if ctx.Err() == nil {
					pollErr <- err
				} else {
					pollErr <- nil
				}
				return
			}
			for i, v := range vals {
				w := want[i].Load()
				if s, ok := v.(string); ok && w != nil && s == *w {
					want[i].Store(nil)
					seen[i] <- struct{}{}
				}
			}
		}
	})
	errs := make([]error, probes)
	for i := range probes {
		wg.Go(func() {
			nc, err := nats.Connect(rn.NATSURL())
			if err != nil {
				errs[i] = err
				return
			}
			defer nc.Close()
			p, err := producers.New(producers.Config{Node: rn.Name(), Name: "probe-" + strconv.Itoa(i), FlushInterval: flush}, nc)
			if err != nil {
				errs[i] = err
				return
			}
			defer func() {
				cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer ccancel()
				_ = p.Close(cctx)
			}()
			g, err := p.NewFloatGauge(producers.Opts{Name: fields[i], Help: "Publish→visible probe."})
			if err != nil {
				errs[i] = err
				return
			}
			for {
				// A random pause of up to a flush interval before every
				// set, the first included, so sets land anywhere in the
				// probe's flush interval: a first set right after New
				// would wait a whole interval, every probe's at once.
				if sleepCtx(ctx, rand.N(flush)) != nil {
					return
				}
				start := time.Now()
				v := float64(start.UnixMicro())
				s := strconv.FormatFloat(v, 'g', -1, 64)
				want[i].Store(&s)
				g.Set(v)
				select {
				case <-ctx.Done():
					return
				case <-seen[i]:
				}
				mu.Lock()
				lat = append(lat, time.Since(start).Seconds()*1000)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, <-pollErr)...); err != nil {
		return nil, fmt.Errorf("latency probes: %w", err)
	}
	if len(lat) == 0 {
		return nil, fmt.Errorf("latency probes: no probe became visible in %s under %s; has pkg/aggregate's key schema changed?", d, hash)
	}
	return lat, nil
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
