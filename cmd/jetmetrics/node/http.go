package node

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
)

// routes is the node's HTTP API.
func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	local := exposition.NewNodeGatherer(loaderFunc(n.loadLocal), 10*time.Second)
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(n.reg, promhttp.HandlerFor(
		prometheus.Gatherers{n.reg, local},
		promhttp.HandlerOpts{
			ErrorHandling:     promhttp.ContinueOnError,
			ErrorLog:          promLogger{n},
			EnableOpenMetrics: true,
			Registry:          n.reg,
			Timeout:           30 * time.Second,
		})))
	cluster := &clusterView{n: n}
	mux.HandleFunc("GET /metrics/cluster", cluster.serveCluster)
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

type loaderFunc func(ctx context.Context) (*aggregate.State, error)

func (f loaderFunc) Load(ctx context.Context) (*aggregate.State, error) { return f(ctx) }

func (n *Node) loadLocal(ctx context.Context) (*aggregate.State, error) {
	rdb := n.rdb.Load()
	if rdb == nil {
		return nil, fmt.Errorf("redis: not connected")
	}
	return aggregate.NewStore(rdb, n.cfg.RedisKeyPrefix, n.cfg.Name).Load(ctx)
}

// promLogger sends promhttp's errors to the node's log.
type promLogger struct{ n *Node }

func (l promLogger) Println(v ...any) { l.n.log.Warn().Msg(fmt.Sprint(v...)) }
