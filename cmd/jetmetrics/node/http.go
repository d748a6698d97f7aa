package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
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
	n.localExpo = mustHandler(exposition.HandlerConfig{Gatherer: prometheus.Gatherers{n.reg, n.observerGatherer()}, StateGauges: servedGauges, Reasons: reasons,
		EnableOpenMetrics: true, ErrorLog: promLogger{n}})
	n.clusterExpo = mustHandler(exposition.HandlerConfig{NodeLabel: true, Gatherer: n.clusterVolumeGatherer(), Reasons: reasons, EnableOpenMetrics: true, ErrorLog: promLogger{n}})
	rejected := n.rejectedRequests()
	metrics := newLimiter("metrics", "web.max-requests.metrics", n.cfg.WebMaxMetricsRequests, rejected)
	mux.Handle("GET /metrics", metrics.wrap(promhttp.InstrumentMetricHandler(n.reg, http.HandlerFunc(n.serveMetrics))))
	cluster := newClusterView(n)
	clusterLimit := newLimiter("cluster", "web.max-requests.cluster", n.cfg.WebMaxClusterRequests, rejected)
	mux.Handle("GET /metrics/cluster", clusterLimit.wrap(http.HandlerFunc(cluster.serveCluster)))
	// HEAD answers what GET would, status and headers, without rendering
	// or reading an aggregate: a "GET" pattern would also take HEAD and
	// do all the work for a body nobody receives.
	mux.HandleFunc("HEAD /metrics", n.headMetrics)
	mux.HandleFunc("HEAD /metrics/cluster", cluster.headCluster)
	mux.HandleFunc("HEAD /api/v1/nodes", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
	})
	mux.HandleFunc("GET /api/v1/nodes", n.serveNodes)
	mux.HandleFunc("GET /api/v1/status", (&statusAPI{n: n}).serve)
	mux.HandleFunc("DELETE /api/v1/nodes/{name}", n.forgetNode)
	n.volumeRoutes(mux)
	n.serviceRoutes(mux)
	mux.HandleFunc("POST /-/reload", n.serveReload)
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "jetmetrics is healthy.")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		report, err := n.Readiness(ctx)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "jetmetrics is not ready: %v\n\n%s", err, report)
			return
		}
		fmt.Fprintf(w, "jetmetrics is ready.\n\n%s", report)
	})
	n.statusRoutes(mux)
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
		return nil, errNotSeeded
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
	if err := n.behind(st.Mark, caughtUp); err != nil {
		return nil, err
	}
	raiseTo(&n.highWater, st.Mark)
	return st, nil
}

var errNotSeeded = errors.New("aggregate unavailable: starting, reading how far the delta stream goes")

// behind refuses an aggregate at mark older than one this node may have
// exposed, unless the aggregator holding it has caught up (see loadLocal).
func (n *Node) behind(mark uint64, caughtUp bool) error {
	if hw := n.highWater.Load(); mark < hw && !caughtUp {
		return fmt.Errorf("aggregate is at stream seq %d, behind seq %d it may already have exposed: catching up after a restart, a Redis restore or a rollback", mark, hw)
	}
	return nil
}

// servable is loadLocal's verdict without loading the aggregate: the
// aggregator's mark from memory, or only the mark stored in Redis.
func (n *Node) servable(ctx context.Context) error {
	if !n.seeded.Load() {
		return errNotSeeded
	}
	if a := n.agg.Load(); a != nil {
		if st := a.State(); st != nil {
			return n.behind(st.Mark, a.CaughtUp())
		}
	}
	rdb := n.rdb.Load()
	if rdb == nil {
		return errors.New("aggregate unavailable: redis not connected")
	}
	mark, err := aggregate.NewStore(rdb, n.cfg.RedisKeyPrefix, n.cfg.Name).StreamMark(ctx)
	if err != nil {
		return fmt.Errorf("aggregate unavailable: %w", err)
	}
	return n.behind(mark, false)
}

// applying is the part of readiness that /metrics can be served and the
// aggregator is applying this node's deltas: its mark has not stood still
// for ReadyStallAfter while the stream holds deltas after it. The stream
// is asked only once the mark has stood still that long.
func (n *Node) applying(ctx context.Context) error {
	a := n.agg.Load()
	if a == nil {
		return errors.New("not consuming yet")
	}
	mark := a.Mark()
	if still := n.stall.still(mark, time.Now()); still >= n.cfg.ReadyStallAfter {
		nc := n.nc.Load()
		js, err := jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("delta stream: %w", err)
		}
		last, err := n.lastDeltaSeq(ctx, js)
		if err != nil {
			return fmt.Errorf("delta stream: read this node's last sequence: %w", err)
		}
		if last > mark {
			return fmt.Errorf("not applying deltas: applied up to stream seq %d for %s while the stream holds this node's deltas up to seq %d", mark, still.Round(time.Second), last)
		}
	}
	if err := n.servable(ctx); err != nil {
		return fmt.Errorf("/metrics: %w", err)
	}
	return nil
}

// headMetrics answers HEAD /metrics: the status and headers GET would
// send, without rendering.
func (n *Node) headMetrics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := n.servable(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	n.localExpo.Head(w, r)
}

// rejectedRequests counts the requests the limiters turned away.
func (n *Node) rejectedRequests() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jetmetrics_web_requests_rejected_total",
		Help: "Requests answered 503 because the most of their class (metrics or cluster) were being served at once.",
	}, []string{"class"})
	if err := n.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector.(*prometheus.CounterVec)
		}
		panic(err)
	}
	for _, class := range []string{"metrics", "cluster"} {
		c.WithLabelValues(class)
	}
	return c
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

// headCluster answers HEAD /metrics/cluster: the status and headers GET
// would send, without reading peers' snapshots or rendering.
func (v *clusterView) headCluster(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := v.n.servable(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if b := v.n.broadcast.Load(); b == nil || !b.CaughtUp() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Query().Get("format") {
	case "json":
		w.Header().Set("Content-Type", "application/json")
	case "":
		v.n.clusterExpo.Head(w, r)
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
}
