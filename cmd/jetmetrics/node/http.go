package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/streams"
)

// routes is the node's HTTP API.
func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	reasons := make([]string, len(streams.Reasons))
	for i, r := range streams.Reasons {
		reasons[i] = string(r)
	}
	n.localExpo = mustHandler(exposition.HandlerConfig{Gatherer: n.reg, StateGauges: servedGauges, Reasons: reasons,
		EnableOpenMetrics: true, ErrorLog: promLogger{n}})
	n.clusterExpo = mustHandler(exposition.HandlerConfig{NodeLabel: true, Reasons: reasons, EnableOpenMetrics: true, ErrorLog: promLogger{n}})
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(n.reg, http.HandlerFunc(n.serveMetrics)))
	cluster := &clusterView{n: n}
	mux.HandleFunc("GET /metrics/cluster", cluster.serveCluster)
	mux.HandleFunc("GET /api/v1/nodes", n.serveNodes)
	mux.HandleFunc("DELETE /api/v1/nodes/{name}", n.forgetNode)
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "jetmetrics is healthy.")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := n.Ready(ctx); err != nil {
			http.Error(w, "jetmetrics is not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "jetmetrics is ready.")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<html><head><title>jetmetrics</title></head><body><h1>jetmetrics node %s</h1>
<ul><li><a href="/metrics">/metrics</a>: this node's aggregate and the process's own metrics</li>
<li><a href="/metrics/cluster">/metrics/cluster</a>: every live node, each series with node="…" (?node=, ?name=, ?format=json)</li>
<li><a href="/-/healthy">/-/healthy</a></li><li><a href="/-/ready">/-/ready</a></li></ul></body></html>`, n.cfg.Name)
	})
	return mux
}

// serveMetrics serves /metrics: this node's aggregate (no node label, so
// Prometheus scraping every node sees no duplicates) and the process's own
// metrics.
func (n *Node) serveMetrics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	st, err := n.loadLocal(ctx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	n.localExpo.Serve(w, r, []*aggregate.State{st})
}

// loadLocal returns this node's aggregate for exposition: the aggregator's,
// from memory, while it is consuming, and otherwise read from Redis. It
// refuses an aggregate older than one this node, in this or an earlier
// incarnation, may have exposed (see highWater), so exposed counters never
// go backwards while the aggregator replays after a crash, a Redis restore
// or a rollback; and it refuses everything until that bound is known.
func (n *Node) loadLocal(ctx context.Context) (*aggregate.State, error) {
	if !n.seeded.Load() {
		return nil, errors.New("aggregate unavailable: starting, reading how far the delta stream goes")
	}
	var st *aggregate.State
	caughtUp := false
	if a := n.agg.Load(); a != nil {
		st = a.State()
		caughtUp = st != nil && a.CaughtUp()
	}
	if st == nil {
		var err error
		if st, err = n.loadLocalFromRedis(ctx); err != nil {
			return nil, fmt.Errorf("aggregate unavailable: %w", err)
		}
	}
	// An aggregator that has caught up with the stream holds everything
	// ever served, even if the stream's last message was deleted since the
	// high-water mark was seeded from it.
	if hw := n.highWater.Load(); st.Mark < hw && !caughtUp {
		return nil, fmt.Errorf("aggregate is at stream seq %d, behind seq %d it may already have exposed: catching up after a restart, a Redis restore or a rollback", st.Mark, hw)
	}
	raiseTo(&n.highWater, st.Mark)
	return st, nil
}

// loadLocalFromRedis reads this node's aggregate from Redis, reusing the
// last one read while the stream mark has not moved.
func (n *Node) loadLocalFromRedis(ctx context.Context) (*aggregate.State, error) {
	rdb := n.rdb.Load()
	if rdb == nil {
		return nil, fmt.Errorf("redis not connected")
	}
	store := aggregate.NewStore(rdb, n.cfg.RedisKeyPrefix, n.cfg.Name)
	mark, err := store.StreamMark(ctx)
	if err != nil {
		return nil, err
	}
	if st := n.lastLocal.Load(); st != nil && mark != 0 && st.Mark == mark {
		return st, nil
	}
	st, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	n.lastLocal.Store(st)
	return st, nil
}

// servedGauges are the process's gauges that describe the aggregate,
// taken from the aggregate /metrics serves so that one response is one
// cut: the aggregator sets its own before a group is visible.
func servedGauges(states []*aggregate.State) map[string]float64 {
	if len(states) != 1 {
		return nil
	}
	st := states[0]
	return map[string]float64{
		"jetmetrics_aggregator_applied_sequence": float64(st.Mark),
		"jetmetrics_aggregator_series":           float64(st.SeriesCount()),
	}
}

// promLogger sends promhttp's errors to the node's log.
type promLogger struct{ n *Node }

func (l promLogger) Println(v ...any) { l.n.log.Warn().Msg(fmt.Sprint(v...)) }

// mustHandler builds an exposition handler from a configuration that is a
// constant of this file.
func mustHandler(cfg exposition.HandlerConfig) *exposition.Handler {
	h, err := exposition.NewHandler(cfg)
	if err != nil {
		panic(err)
	}
	return h
}
