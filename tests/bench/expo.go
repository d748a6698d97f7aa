package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
)

// expoConfig sizes the exposition figure.
type expoConfig struct {
	series  int
	scrapes int
}

// workloadPrefix starts the workload's metric names; the series the
// harness counts in a scrape are those.
const workloadPrefix = "bench_"

// peerNode is a peer's aggregate kept in a scratch Redis, published to the
// node under test as snapshots, as its broadcast consumer would store them.
type peerNode struct {
	name  string
	store *aggregate.Store
	mark  uint64
	bytes int // last snapshot's size on the wire
}

// publish stores the peer's current aggregate as its snapshot in peers.
func (p *peerNode) publish(ctx context.Context, peers *aggregate.Peers, snapshotsTo string) error {
	d, err := p.store.Dump(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	msg, err := streams.SnapshotMsg(snapshotsTo, d, now, time.Hour)
	if err != nil {
		return err
	}
	p.bytes = len(msg.Data)
	_, err = peers.Put(ctx, aggregate.Snapshot{Node: p.name, Version: d.Mark(), Generated: now, Expires: now.Add(time.Hour), Data: msg.Data})
	return err
}

// bump changes one series of the peer, a new version of its aggregate.
func (p *peerNode) bump(ctx context.Context, i int) error {
	u := aggregate.NewUpdate()
	u.Expect, u.Mark = p.mark, p.mark+1
	u.Describe("harness_bump", aggregate.Meta{Kind: aggregate.Gauge})
	u.SetValue("harness_bump", float64(i))
	if err := p.store.Apply(ctx, u); err != nil {
		return fmt.Errorf("bump %s: %w", p.name, err)
	}
	p.mark++
	return nil
}

// localBumper moves the node under test to a new version the way traffic
// does: one gauge set, published through the SDK and applied by the
// node's aggregator.
type localBumper struct {
	rn *runningNode
	p  *producers.Producer
	g  *producers.FloatGauge
	i  int
}

func newLocalBumper(rn *runningNode, nc *nats.Conn) (*localBumper, error) {
	p, err := producers.New(producers.Config{Node: rn.Name(), Name: "harness-bump", FlushInterval: time.Hour}, nc)
	if err != nil {
		return nil, err
	}
	g, err := p.NewFloatGauge(producers.Opts{Name: "harness_bump", Help: "Moves the aggregate to a new version."})
	if err != nil {
		return nil, err
	}
	return &localBumper{rn: rn, p: p, g: g}, nil
}

func (b *localBumper) bump(ctx context.Context) error {
	before, err := counterValue(b.rn.reg, "jetmetrics_aggregator_applied_sequence")
	if err != nil {
		return err
	}
	b.i++
	b.g.Set(float64(b.i))
	if err := b.p.Flush(ctx); err != nil {
		return err
	}
	return poll(ctx, 30*time.Second, func() error {
		v, err := counterValue(b.rn.reg, "jetmetrics_aggregator_applied_sequence")
		if err != nil {
			return err
		}
		if v <= before {
			return fmt.Errorf("aggregator still at seq %v", v)
		}
		return nil
	})
}

// memoryView serves the node's states from memory, as a node that kept
// its aggregate beside Redis would: /memory/metrics and
// /memory/metrics/cluster cost exposition.Handler alone. It loads the
// states as the node does (its own aggregate from Redis, each peer's
// snapshot decoded), once, and serves them at a new version on every
// request, so each is rendered afresh.
type memoryView struct {
	store          *aggregate.Store
	peers          *aggregate.Peers
	local, cluster *exposition.Handler
	mu             sync.Mutex
	version        uint64
	states         []*aggregate.State
}

func newMemoryView(rdb redis.UniversalClient, nodeName string, reg prometheus.Gatherer) (*memoryView, error) {
	local, err := exposition.NewHandler(exposition.HandlerConfig{Gatherer: reg, EnableOpenMetrics: true})
	if err != nil {
		return nil, err
	}
	cluster, err := exposition.NewHandler(exposition.HandlerConfig{NodeLabel: true, EnableOpenMetrics: true})
	if err != nil {
		return nil, err
	}
	return &memoryView{store: aggregate.NewStore(rdb, "", nodeName), peers: aggregate.NewPeers(rdb, ""), local: local, cluster: cluster}, nil
}

func (v *memoryView) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /memory/metrics", func(w http.ResponseWriter, r *http.Request) {
		v.local.Serve(w, r, v.next()[:1])
	})
	mux.HandleFunc("GET /memory/metrics/cluster", func(w http.ResponseWriter, r *http.Request) {
		v.cluster.Serve(w, r, v.next())
	})
	return mux
}

// load reads the node's aggregate and its peers' snapshots now.
func (v *memoryView) load(ctx context.Context) error {
	local, err := v.store.Load(ctx)
	if err != nil {
		return err
	}
	snaps, err := v.peers.List(ctx, true)
	if err != nil {
		return err
	}
	states := []*aggregate.State{local}
	for _, s := range snaps {
		if s.Node == local.Node {
			continue
		}
		d, err := streams.DecodeSnapshot(s.Data)
		if err != nil {
			return err
		}
		st, err := d.State()
		if err != nil {
			return err
		}
		states = append(states, st)
	}
	v.mu.Lock()
	v.states = states
	v.mu.Unlock()
	return nil
}

// next returns the states loaded, at a new version.
func (v *memoryView) next() []*aggregate.State {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.version++
	out := make([]*aggregate.State, len(v.states))
	for i, st := range v.states {
		cp := *st
		cp.Mark = 1<<40 + v.version
		out[i] = &cp
	}
	return out
}

// expositionFigure measures a node's /metrics (its own series) and
// /metrics/cluster (three nodes') against client_golang's registry and
// promhttp serving the same series, text and gzip: after every node's
// aggregate changed (the usual scrape), again at the same version (a
// second scraper), and exposition.Handler alone on states in memory (what
// is left once the node need not read Redis). It checks that every format
// parses back with every series.
func expositionFigure(ctx context.Context, e *env, cfg expoConfig, rep *report) error {
	w := newWorkload(cfg.series)
	_, rdb, err := e.redis(ctx, "expo")
	if err != nil {
		return err
	}
	_, scratch, err := e.redis(ctx, "peers")
	if err != nil {
		return err
	}
	// The node's own series go in at mark 0, so its aggregator starts at
	// the head of a fresh stream.
	start := time.Now()
	if _, err := w.fillAt(ctx, aggregate.NewStore(rdb, "", "n1"), 0, 0); err != nil {
		return err
	}
	peerStore := aggregate.NewPeers(rdb, "")
	subjects := streams.Config{}.Subjects()
	peers := []*peerNode{{name: "n2"}, {name: "n3"}}
	for i, p := range peers {
		p.store = aggregate.NewStore(scratch, "", p.name)
		if p.mark, err = w.fill(ctx, p.store, i+1, 0); err != nil {
			return err
		}
		if err := p.publish(ctx, peerStore, subjects.Snapshot(p.name)); err != nil {
			return err
		}
	}
	e.log.Info().Dur("took", time.Since(start)).Int("series", w.seriesCount()).Msg("exposition: aggregates filled")

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rn, err := e.startNode(ctx, node.Config{Name: "n1", RedisURL: "unix://" + rdb.Options().Addr,
		SnapshotInterval: time.Hour, SnapshotTTL: 3 * time.Hour, Registry: reg})
	if err != nil {
		return err
	}
	// The node publishes its snapshot once at start; let that pass.
	if err := poll(ctx, time.Minute, func() error {
		v, err := counterValue(reg, "jetmetrics_snapshot_published_total")
		if err == nil && v < 1 {
			err = fmt.Errorf("no snapshot published yet")
		}
		return err
	}); err != nil {
		return err
	}
	nc, err := nats.Connect(rn.NATSURL())
	if err != nil {
		return fmt.Errorf("connect to the node's nats: %w", err)
	}
	e.onClose(nc.Close)
	bumper, err := newLocalBumper(rn, nc)
	if err != nil {
		return err
	}
	e.onClose(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = bumper.p.Close(cctx)
	})

	mv, err := newMemoryView(rdb, "n1", reg)
	if err != nil {
		return err
	}
	memoryURL, err := e.serveHTTP(mv.routes())
	if err != nil {
		return err
	}
	start = time.Now()
	peerOne, err := w.registry(nil)
	if err != nil {
		return err
	}
	peerThree, err := w.registry([]string{"n1", "n2", "n3"})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(peerOne, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.Handle("/metrics/cluster", promhttp.HandlerFor(peerThree, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	peerURL, err := e.serveHTTP(mux)
	if err != nil {
		return err
	}
	e.log.Info().Dur("took", time.Since(start)).Msg("exposition: client_golang registries built")

	n := w.seriesCount()
	endpoints := []struct {
		path, label string
		want        map[string]int
		scrapes     int
	}{
		{"/metrics", fmt.Sprintf("/metrics %dk", n/1000), map[string]int{"": n}, cfg.scrapes},
		{"/metrics/cluster", fmt.Sprintf("/metrics/cluster 3×%dk", n/1000), map[string]int{"n1": n, "n2": n, "n3": n}, max(2, cfg.scrapes-1)},
	}
	check := func(what string, s scraped, want map[string]int) {
		got, err := s.countSeries(workloadPrefix)
		if err != nil {
			rep.fail("exposition: %s: %v", what, err)
			return
		}
		if !maps.Equal(got, want) {
			rep.fail("exposition: %s: series by node %v, want %v", what, got, want)
		}
	}
	for _, ep := range endpoints {
		for _, gz := range []bool{false, true} {
			enc := "text"
			if gz {
				enc = "gzip"
			}
			if err := mv.load(ctx); err != nil {
				return err
			}
			var fresh, repeat, memory, peer []scraped
			for i := range ep.scrapes {
				if err := bumper.bump(ctx); err != nil {
					return err
				}
				if ep.path == "/metrics/cluster" {
					for _, p := range peers {
						if err := p.bump(ctx, i); err != nil {
							return err
						}
						if err := p.publish(ctx, peerStore, subjects.Snapshot(p.name)); err != nil {
							return err
						}
					}
				}
				for _, m := range []struct {
					url string
					to  *[]scraped
				}{
					{rn.url, &fresh}, {rn.url, &repeat}, {memoryURL + "/memory", &memory}, {peerURL, &peer},
				} {
					// Each scrape starts from a collected heap, so none pays
					// for the garbage of the one before.
					runtime.GC()
					s, err := timeScrape(ctx, m.url+ep.path, acceptText, gz)
					if err != nil {
						return err
					}
					*m.to = append(*m.to, s)
				}
			}
			fig := "exposition " + ep.label + " " + enc
			note := fmt.Sprintf("%.2f MB on the wire (peer %.2f MB)", float64(fresh[0].wire)/1e6, float64(peer[0].wire)/1e6)
			peerMs := medianDur(peer)
			what := "this node's aggregate changed"
			if ep.path == "/metrics/cluster" {
				what = "every node's changed"
			}
			rep.add(
				newRow(fig+": node, new version", "ms", medianDur(fresh), peerMs, goal{kind: ratioAtMost, value: 0.25}, what+" since the last scrape; "+note),
				newRow(fig+": node, same version again", "ms", medianDur(repeat), peerMs, goal{}, "a second scraper"),
				newRow(fig+": exposition.Handler alone, new version", "ms", medianDur(memory), peerMs, goal{}, "states in memory, no Redis read"),
				newRow(fig+": node, allocated per scrape, new version", "MB", medianAlloc(fresh), medianAlloc(peer), goal{}, "server and client, one process"),
				newRow(fig+": exposition.Handler alone, allocated per scrape", "MB", medianAlloc(memory), medianAlloc(peer), goal{}, ""),
			)
		}
	}
	// Parse every format back: the node's, plain and gzipped, and the
	// peer's text as the reference count.
	formats := []struct{ name, accept string }{{"text", acceptText}, {"openmetrics", acceptOpenMetrics}, {"protobuf", acceptProto}}
	for _, ep := range endpoints {
		for _, f := range formats {
			for _, c := range []struct {
				server, url string
				gz          bool
			}{
				{"node", rn.url, false}, {"node", rn.url, true}, {"client_golang", peerURL, true},
			} {
				if c.server == "client_golang" && f.name != "text" {
					continue
				}
				s, err := scrape(ctx, c.url+ep.path, f.accept, c.gz)
				if err != nil {
					return err
				}
				check(fmt.Sprintf("%s %s %s (gzip %v)", c.server, ep.path, f.name, c.gz), s, ep.want)
			}
		}
	}
	return nil
}

func medianDur(s []scraped) float64 {
	v := make([]float64, len(s))
	for i, x := range s {
		v[i] = x.dur.Seconds() * 1000
	}
	return median(v)
}

func medianAlloc(s []scraped) float64 {
	v := make([]float64, len(s))
	for i, x := range s {
		v[i] = float64(x.alloc) / 1e6
	}
	return median(v)
}
