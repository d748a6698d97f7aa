package exposition

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a registry holding a process's own metrics, the Go
// runtime's and the process's, and extra, fit to serve beside an aggregate
// (a node registers its own metrics there too). The Go runtime's come from runtime/metrics (GC, memory,
// scheduler) instead of the MemStats set, whose gauge
// go_memstats_alloc_bytes and counter go_memstats_alloc_bytes_total take
// one OpenMetrics family name between them: a scraper that parses
// OpenMetrics strictly, as Prometheus asks for it first, could not read
// /metrics.
func NewRegistry(extra ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(
			collectors.WithGoCollectorMemStatsMetricsDisabled(),
			collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsGC, collectors.MetricsMemory, collectors.MetricsScheduler),
		),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	reg.MustRegister(extra...)
	return reg
}
