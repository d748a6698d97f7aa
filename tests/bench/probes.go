package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	cl "github.com/jetmetrics/jetmetrics/consumers/latency"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/latency"
	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	pprobes "github.com/jetmetrics/jetmetrics/pkg/probes"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	pp "github.com/jetmetrics/jetmetrics/producers/probes"
	"github.com/jetmetrics/jetmetrics/streams"
)

// probesConfig is the probes figure: services probed by TCP connect to a
// local listener, shared by nodes through the lease bucket (the observe
// figure's schedule, with probes for polls), then the latency state
// writer folding a backlog of results into Redis.
type probesConfig struct {
	schedule observeConfig // volumes: the services
	backlog  int           // results the fold part publishes before folding
}

// countingProber records the call in the ledger, then probes.
type countingProber struct {
	service, node string
	ledger        *pollLedger
	pr            pp.Prober
}

func (p countingProber) Probe(ctx context.Context) (time.Duration, error) {
	p.ledger.call(p.service, p.node, time.Now())
	return p.pr.Probe(ctx)
}

// probesFigure runs cfg.schedule.nodes probe observers in this process
// over one embedded nats-server, each service a TCP connect to one local
// listener, and reports probes per interval, the spread over the nodes,
// services probed twice in one interval (must be 0) and the CPU this
// process spent per probe. Then it folds a backlog of results with the
// latency state writer into a redis-server and reports results per second.
func probesFigure(ctx context.Context, e *env, cfg probesConfig, rep *report) error {
	ns, err := natsserver.Start(natsserver.Config{Name: "probes", StoreDir: filepath.Join(e.subdir("nats-probes"), "nats"), DontListen: true})
	if err != nil {
		return err
	}
	e.onClose(ns.Shutdown)
	if err := probeSchedule(ctx, e, ns, cfg.schedule, rep); err != nil {
		return err
	}
	return foldBacklog(ctx, e, ns, cfg, rep)
}

func probeSchedule(ctx context.Context, e *env, ns *natsserver.Server, cfg observeConfig, rep *report) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	e.onClose(func() { _ = ln.Close() })
	go func() { // accept and hang up: the probe is the connect
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	services := make([]string, cfg.volumes)
	for i := range services {
		services[i] = fmt.Sprintf("svc-%04d", i)
	}
	ledger := &pollLedger{observer: "probe", interval: cfg.interval, slots: map[int64]int{}, byNode: map[string]int{}, seen: map[string]int64{}, to: time.Now().Add(24 * time.Hour)}
	ledger.from = ledger.to
	obs := streams.ObsConfig{LeaseTTL: cfg.leaseTTL, HistoryDepth: 8}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var leases []*observer.Leases
	for i := range cfg.nodes {
		name := fmt.Sprintf("n%d", i)
		nc, err := ns.Connect()
		if err != nil {
			return err
		}
		e.onClose(nc.Close)
		l, o, err := startProber(ctx, nc, name, services, ln.Addr().String(), cfg, obs, ledger, e)
		if err != nil {
			return err
		}
		leases = append(leases, l)
		for _, run := range []func(context.Context) error{l.Run, o.Run} {
			wg.Go(func() {
				if err := run(runCtx); err != nil {
					e.log.Warn().Err(err).Str("observer", name).Msg("stopped")
				}
			})
		}
	}
	w, err := observeWindow(ctx, e, cfg, services, leases, ledger)
	if err != nil {
		return err
	}
	fair := float64(w.total) / float64(cfg.nodes)
	label := fmt.Sprintf("probes: %d services, %d nodes, %s interval", cfg.volumes, cfg.nodes, cfg.interval)
	rep.add(
		newRow(label+": probes per interval (fewest)", "probes", float64(w.lo), float64(cfg.volumes), goal{kind: ratioAtLeast, value: 0.99},
			fmt.Sprintf("most %d over %d intervals; peer: one probe per service", w.hi, cfg.intervals)),
		newRow(label+": probes per interval (most)", "probes", float64(w.hi), float64(cfg.volumes), goal{kind: ratioAtMost, value: 1.01}, "peer: one probe per service"),
		newRow(label+": busiest node's share", "probes", float64(w.most), fair, goal{kind: ratioAtMost, value: 1.1},
			fmt.Sprintf("quietest node %d; peer: an even split", w.least)),
		newRow(label+": services probed twice in one interval", "probes", float64(w.twice), math.NaN(), goal{kind: atMost, value: 0, unit: "probes"}, ""),
		newRow(label+": CPU per probe", "µs", float64(w.cpu.Microseconds())/float64(max(w.total, 1)), math.NaN(), goal{},
			"this process: schedule, leases, TCP connect to a local listener (both ends), result published to JETMETRICS_OBS"),
	)
	return nil
}

// startProber makes one node's lease holder and probe observer over nc.
func startProber(ctx context.Context, nc *nats.Conn, name string, services []string, addr string, cfg observeConfig, obs streams.ObsConfig, ledger *pollLedger, e *env) (*observer.Leases, *observer.Observer, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	if err := streams.ProvisionObs(ctx, js, obs); err != nil {
		return nil, nil, err
	}
	kv, err := streams.ProvisionLeases(ctx, js, obs)
	if err != nil {
		return nil, nil, err
	}
	probers := make(map[string]pp.Prober, len(services))
	for _, s := range services {
		tcp, err := pprobes.NewTCP(addr)
		if err != nil {
			return nil, nil, err
		}
		probers[s] = countingProber{service: s, node: name, ledger: ledger, pr: tcp}
	}
	log := e.log.With().Str("observer", name).Logger()
	poller, err := pp.New(pp.Config{Node: name, Subjects: obs.Subjects(), Probers: probers}, js, nil)
	if err != nil {
		return nil, nil, err
	}
	l, err := observer.NewLeases(observer.LeaseConfig{Observer: "probe", Node: name, Targets: services}, kv, log, nil)
	if err != nil {
		return nil, nil, err
	}
	o, err := observer.New(observer.Config{Name: "probe", Node: name, Targets: services, Interval: cfg.interval, Timeout: min(5*time.Second, cfg.interval/2)}, l, poller, log, nil)
	if err != nil {
		return nil, nil, err
	}
	return l, o, nil
}

// foldBacklog publishes cfg.backlog results of cfg.schedule.volumes
// services (one in ten a failure) to an observation stream of its own,
// then runs one latency state writer into a fresh redis-server and
// measures how fast it folds them all.
func foldBacklog(ctx context.Context, e *env, ns *natsserver.Server, cfg probesConfig, rep *report) error {
	nc, err := ns.Connect()
	if err != nil {
		return err
	}
	e.onClose(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	obs := streams.ObsConfig{Prefix: "fold", HistoryDepth: int64(cfg.backlog/cfg.schedule.volumes + 1)}
	if err := streams.ProvisionObs(ctx, js, obs); err != nil {
		return err
	}
	services := make([]string, cfg.schedule.volumes)
	for i := range services {
		services[i] = fmt.Sprintf("svc-%04d", i)
	}
	subjects := obs.Subjects()
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := 0; i < cfg.backlog; {
		for end := min(i+1000, cfg.backlog); i < end; i++ {
			s := services[i%len(services)]
			r := streams.ProbeResult{Service: s, ObservedAt: at.Add(time.Duration(i/len(services)) * time.Second),
				Node: "n0", LeaseRevision: 1, Duration: time.Millisecond}
			if i%10 == 9 {
				r.Reason, r.Error = "refused", "connection refused"
			} else {
				r.Success, r.Latency = true, time.Duration(200+i%5000)*time.Microsecond
			}
			data, err := streams.EncodeProbeResult(r)
			if err != nil {
				return err
			}
			subj, err := subjects.Observation(streams.ObsKindProbe, s)
			if err != nil {
				return err
			}
			if _, err := js.PublishAsync(subj, data); err != nil {
				return err
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Minute):
			return errors.New("publishing the fold backlog: no acks within a minute")
		}
	}

	_, rdb, err := e.redis(ctx, "fold")
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	resets, err := latency.NewResets(reg, e.log)
	if err != nil {
		return err
	}
	w, err := cl.New(cl.Config{Node: "n0", Streams: obs, Services: services}, js, cl.NewStore(rdb, aggregate.DefaultKeyPrefix), resets, e.log, reg)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	cpu0, start := selfCPU(), time.Now()
	go func() {
		defer close(done)
		_ = w.Run(runCtx)
	}()
	err = poll(ctx, 10*time.Minute, func() error {
		n, err := counterValue(reg, "jetmetrics_latency_state_results_total")
		if err != nil {
			return err
		}
		if n < float64(cfg.backlog) {
			return fmt.Errorf("%v of %d results folded", n, cfg.backlog)
		}
		return nil
	})
	took, cpu := time.Since(start), selfCPU()-cpu0
	if err != nil {
		return err
	}
	label := fmt.Sprintf("probes: latency state fold of a %d-result backlog, %d services", cfg.backlog, cfg.schedule.volumes)
	rep.add(
		newRow(label+": throughput", "results/s", float64(cfg.backlog)/took.Seconds(), math.NaN(), goal{},
			fmt.Sprintf("one writer, redis-server on a unix socket; %s", took.Round(time.Millisecond))),
		newRow(label+": CPU per result", "µs", float64(cpu.Microseconds())/float64(cfg.backlog), math.NaN(), goal{},
			"this process (the writer; redis-server not counted)"),
	)
	return nil
}
