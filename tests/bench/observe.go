package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/pkg/volumes"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	pv "github.com/jetmetrics/jetmetrics/producers/volumes"
	"github.com/jetmetrics/jetmetrics/streams"
)

// observeConfig is the observe figure: volumes polled by nodes sharing
// the targets through the lease bucket, at interval, measured over
// intervals whole intervals once every target is led.
type observeConfig struct {
	volumes   int
	nodes     int
	interval  time.Duration
	intervals int
	leaseTTL  time.Duration
}

// pollLedger counts the backend calls per slot (one interval of one
// target's schedule) and per node.
type pollLedger struct {
	mu       sync.Mutex
	observer string // whose schedule the slots follow: "volume", "probe"
	interval time.Duration
	from, to time.Time // calls scheduled outside are not counted
	slots    map[int64]int
	byNode   map[string]int
	twice    int
	seen     map[string]int64 // volume → last slot polled
}

func (l *pollLedger) call(volume, node string, at time.Time) {
	phase := observer.Phase(l.observer, volume, l.interval)
	slot := (at.UnixNano() - int64(phase)) / int64(l.interval)
	l.mu.Lock()
	defer l.mu.Unlock()
	if at.Before(l.from) || !at.Before(l.to) {
		return
	}
	if last, ok := l.seen[volume]; ok && last == slot {
		l.twice++
	}
	l.seen[volume] = slot
	// Slots are counted by the interval the call falls in, so each
	// window's count is "polls started in that interval".
	l.slots[(at.UnixNano()-l.from.UnixNano())/int64(l.interval)]++
	l.byNode[node]++
}

// countingBackend answers at once with fixed figures and records the call.
type countingBackend struct {
	volume, node string
	ledger       *pollLedger
}

func (b countingBackend) PerformanceMetric(context.Context) (volumes.Metric, error) {
	b.ledger.call(b.volume, b.node, time.Now())
	return volumes.Metric{IOPSRead: 100, IOPSWrite: 50, BytesReadPerSec: 1 << 20, BytesWritePerSec: 1 << 19, LatencyUsecRead: 250, LatencyUsecWrite: 400}, nil
}

// observeFigure runs cfg.nodes observers in this process, each on its own
// NATS connection with its own lease holder and poller, over one embedded
// nats-server, and reports the polls per interval (the bound: the
// number of volumes, each polled once), how evenly the nodes share them,
// double polls (must be 0) and the CPU this process spent per poll
// (scheduling, leases, publishing each result to JETMETRICS_OBS).
func observeFigure(ctx context.Context, e *env, cfg observeConfig, rep *report) error {
	ns, err := natsserver.Start(natsserver.Config{Name: "obs", StoreDir: filepath.Join(e.subdir("nats-observe"), "nats"), DontListen: true})
	if err != nil {
		return err
	}
	e.onClose(ns.Shutdown)
	targets := make([]string, cfg.volumes)
	for i := range targets {
		targets[i] = fmt.Sprintf("svm%d/vol_%04d", i%7, i)
	}
	ledger := &pollLedger{observer: "volume", interval: cfg.interval, slots: map[int64]int{}, byNode: map[string]int{}, seen: map[string]int64{}, to: time.Now().Add(24 * time.Hour)}
	ledger.from = ledger.to // count nothing until the leases have settled
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
		l, o, err := startObserver(ctx, nc, name, targets, cfg, obs, ledger, e)
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
	w, err := observeWindow(ctx, e, cfg, targets, leases, ledger)
	if err != nil {
		return err
	}
	lo, hi, total, most, least, cpu := w.lo, w.hi, w.total, w.most, w.least, w.cpu
	fair := float64(total) / float64(cfg.nodes)
	label := fmt.Sprintf("observe: %d volumes, %d nodes, %s interval", cfg.volumes, cfg.nodes, cfg.interval)
	rep.add(
		newRow(label+": polls per interval (fewest)", "polls", float64(lo), float64(cfg.volumes), goal{kind: ratioAtLeast, value: 0.99},
			fmt.Sprintf("most %d over %d intervals; peer: one poll per volume", hi, cfg.intervals)),
		newRow(label+": polls per interval (most)", "polls", float64(hi), float64(cfg.volumes), goal{kind: ratioAtMost, value: 1.01}, "peer: one poll per volume"),
		newRow(label+": busiest node's share", "polls", float64(most), fair, goal{kind: ratioAtMost, value: 1.1},
			fmt.Sprintf("quietest node %d; peer: an even split", least)),
		newRow(label+": volumes polled twice in one interval", "polls", float64(w.twice), math.NaN(), goal{kind: atMost, value: 0, unit: "polls"}, ""),
		newRow(label+": CPU per poll", "µs", float64(cpu.Microseconds())/float64(max(total, 1)), math.NaN(), goal{},
			"this process: schedule, leases, backend stub, result published to JETMETRICS_OBS"),
	)
	return nil
}

// startObserver makes one node's lease holder and observer over nc.
func startObserver(ctx context.Context, nc *nats.Conn, name string, targets []string, cfg observeConfig, obs streams.ObsConfig, ledger *pollLedger, e *env) (*observer.Leases, *observer.Observer, error) {
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
	backends := make(map[string]pv.Backend, len(targets))
	for _, t := range targets {
		backends[t] = countingBackend{volume: t, node: name, ledger: ledger}
	}
	log := e.log.With().Str("observer", name).Logger()
	poller, err := pv.New(pv.Config{Node: name, Backends: backends}, js, nil)
	if err != nil {
		return nil, nil, err
	}
	l, err := observer.NewLeases(observer.LeaseConfig{Observer: "volume", Node: name, Targets: targets}, kv, log, nil)
	if err != nil {
		return nil, nil, err
	}
	o, err := observer.New(observer.Config{Name: "volume", Node: name, Targets: targets, Interval: cfg.interval}, l, poller, log, nil)
	if err != nil {
		return nil, nil, err
	}
	return l, o, nil
}

// observed is what observeWindow counted: polls per interval (fewest,
// most, total), per node (most, least), targets polled twice in one
// interval, and this process's CPU over the window.
type observed struct {
	lo, hi, total, most, least, twice int
	cpu                               time.Duration
}

// observeWindow waits until the leases have settled (every target led by
// one node, no node over its share), then counts the ledger's polls over
// cfg.intervals whole intervals.
func observeWindow(ctx context.Context, e *env, cfg observeConfig, targets []string, leases []*observer.Leases, ledger *pollLedger) (observed, error) {
	// Settled: every target led by one node, and no node leading more
	// than its share (the spread's cap): the start's hand-overs are done.
	share := (len(targets) + cfg.nodes - 1) / cfg.nodes
	err := poll(ctx, 3*cfg.leaseTTL+time.Minute, func() error {
		led := 0
		for _, t := range targets {
			holders := 0
			for _, l := range leases {
				if lease, ok := l.Lease(t); ok && lease.Node != "" {
					holders++
				}
			}
			if holders > 1 {
				return fmt.Errorf("%s leased by %d nodes", t, holders)
			}
			led += holders
		}
		if led < len(targets) {
			return fmt.Errorf("%d of %d targets led", led, len(targets))
		}
		for i, l := range leases {
			held := 0
			for _, t := range targets {
				if _, ok := l.Lease(t); ok {
					held++
				}
			}
			if held > share {
				return fmt.Errorf("n%d leads %d targets, more than its share %d", i, held, share)
			}
		}
		return nil
	})
	if err != nil {
		return observed{}, fmt.Errorf("leases never settled: %w", err)
	}
	// Start the window on an interval boundary after a whole interval, so
	// every poll in flight before it has finished.
	start := time.Now().Add(cfg.interval).Truncate(cfg.interval)
	end := start.Add(time.Duration(cfg.intervals) * cfg.interval)
	ledger.mu.Lock()
	ledger.from, ledger.to = start, end
	ledger.mu.Unlock()
	timer := time.NewTimer(time.Until(start))
	select {
	case <-timer.C:
	case <-ctx.Done():
		return observed{}, ctx.Err()
	}
	cpu0 := selfCPU()
	timer.Reset(time.Until(end))
	select {
	case <-timer.C:
	case <-ctx.Done():
		return observed{}, ctx.Err()
	}
	cpu := selfCPU() - cpu0

	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	w := observed{cpu: cpu, twice: ledger.twice}
	lo, hi, total := math.MaxInt, 0, 0
	for w := range int64(cfg.intervals) {
		n := ledger.slots[w]
		lo, hi, total = min(lo, n), max(hi, n), total+n
		e.log.Info().Int64("interval", w).Int("polls", n).Msg("observe window")
	}
	most, least := 0, math.MaxInt
	for i := range cfg.nodes {
		n := ledger.byNode[fmt.Sprintf("n%d", i)]
		most, least = max(most, n), min(least, n)
	}
	w.lo, w.hi, w.total, w.most, w.least = lo, hi, total, most, least
	return w, nil
}
