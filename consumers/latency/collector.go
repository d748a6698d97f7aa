package latency

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/latency"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Leads reports whether this node leads (probes) a service now.
type Leads func(service string) bool

// Collector exposes the stored latency states of the services this node
// leads, all {service}: the gauges jetmetrics_service_latency_mean_seconds,
// _ewma_seconds, _min_seconds, _max_seconds and the summary
// _window_seconds (its quantiles, _sum and _count over the window of
// recent samples), once the service has a latency sample;
// jetmetrics_service_up (1 if the
// last result succeeded) and jetmetrics_service_last_success_timestamp_seconds
// (once it has succeeded).
//
// Every node folds every service's state, but only the leader exposes a
// service, so scraping every node yields each service once. A service
// without a usable state has no gauges. Collect reads Redis once per
// scrape; it is safe for concurrent use.
type Collector struct {
	store *Store
	// mu guards services and tokens, which SetServices changes.
	mu       sync.Mutex
	services []string
	tokens   []string
	leads    Leads
	timeout  time.Duration
	log      zerolog.Logger
	mean     *prometheus.Desc
	ewma     *prometheus.Desc
	window   *prometheus.Desc
	min, max *prometheus.Desc
	up       *prometheus.Desc
	success  *prometheus.Desc
	// nodeLabel adds node="<the node whose probe was folded last>".
	nodeLabel bool
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns the collector of the led services' states from
// store; timeout bounds the Redis read of one scrape (default 2 s).
func NewCollector(store *Store, services []string, leads Leads, timeout time.Duration, log zerolog.Logger) (*Collector, error) {
	return newCollector(store, services, leads, timeout, log, false)
}

// NewClusterCollector returns the collector of a cluster view: every
// service's gauges from this node's store, whoever leads it, each labelled
// node="<the node that probed the last result folded>". Every node folds
// every service, so one node's view holds each service once.
func NewClusterCollector(store *Store, services []string, timeout time.Duration, log zerolog.Logger) (*Collector, error) {
	return newCollector(store, services, func(string) bool { return true }, timeout, log, true)
}

func newCollector(store *Store, services []string, leads Leads, timeout time.Duration, log zerolog.Logger, nodeLabel bool) (*Collector, error) {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	c := &Collector{store: store, services: services, leads: leads, timeout: timeout, log: log, nodeLabel: nodeLabel}
	for _, s := range services {
		tok, err := streams.TargetToken(s)
		if err != nil {
			return nil, fmt.Errorf("new service latency collector: %w", err)
		}
		c.tokens = append(c.tokens, tok)
	}
	labels := []string{"service"}
	if nodeLabel {
		labels = append(labels, "node")
	}
	desc := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string{}, labels...), extra...), nil)
	}
	c.mean = desc("jetmetrics_service_latency_mean_seconds", "Running mean of the service's probe latencies, in seconds.")
	c.ewma = desc("jetmetrics_service_latency_ewma_seconds", "Time-decayed mean (EWMA) of the service's probe latencies, in seconds.")
	// A summary, not gauges with a quantile label: promlint (and
	// Prometheus' conventions) keep the quantile label for summaries. Its
	// _sum and _count are the window's, not all time's.
	c.window = desc("jetmetrics_service_latency_window_seconds", "Percentiles of the service's recent probe latencies (the window), in seconds; _sum and _count are the window's.")
	c.min = desc("jetmetrics_service_latency_min_seconds", "Smallest probe latency of the service, in seconds.")
	c.max = desc("jetmetrics_service_latency_max_seconds", "Largest probe latency of the service, in seconds.")
	c.up = desc("jetmetrics_service_up", "1 if the service's last probe succeeded, 0 if it failed.")
	c.success = desc("jetmetrics_service_last_success_timestamp_seconds", "When the service's last successful probe was observed, in Unix seconds.")
	return c, nil
}

// Describe sends the gauges' descriptions.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.mean, c.ewma, c.window, c.min, c.max, c.up, c.success} {
		ch <- d
	}
}

// Collect sends the gauges of the led services with a usable state. A
// Redis error leaves the gauges out of this scrape and is logged.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var led, tokens []string
	c.mu.Lock()
	names, all := c.services, c.tokens
	c.mu.Unlock()
	for i, s := range names {
		if c.leads(s) {
			led = append(led, s)
			tokens = append(tokens, all[i])
		}
	}
	if len(led) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	entries, err := c.store.GetMany(ctx, tokens)
	if err != nil {
		c.log.Warn().Err(err).Msg("service latency gauges left out of the scrape")
		return
	}
	for i, s := range led {
		e := entries[tokens[i]]
		if e.Type != "hash" {
			continue
		}
		t, err := latency.Decode(e.State)
		if err != nil {
			continue
		}
		snap := t.Snapshot()
		if snap.Successes+snap.Failures == 0 {
			continue
		}
		labels := []string{s}
		if c.nodeLabel {
			labels = append(labels, e.Node)
		}
		gauge := func(d *prometheus.Desc, v float64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(append([]string{}, labels...), extra...)...)
		}
		up := 0.0
		if snap.ConsecutiveFailures == 0 {
			up = 1
		}
		gauge(c.up, up)
		if snap.Count == 0 {
			continue
		}
		gauge(c.mean, snap.MeanSeconds)
		gauge(c.ewma, snap.EWMASeconds)
		gauge(c.min, snap.MinSeconds)
		gauge(c.max, snap.MaxSeconds)
		var sum float64
		for _, v := range snap.SamplesSeconds {
			sum += v
		}
		ch <- prometheus.MustNewConstSummary(c.window, uint64(len(snap.SamplesSeconds)), sum,
			map[float64]float64{0.5: snap.P50Seconds, 0.9: snap.P90Seconds, 0.99: snap.P99Seconds}, labels...)
		gauge(c.success, float64(snap.LastSuccess.UnixNano())/1e9)
	}
}

// SetServices changes the services exposed, for a configuration reload: the
// next scrape shows the new list. An invalid name changes nothing.
func (c *Collector) SetServices(services []string) error {
	tokens := make([]string, len(services))
	for i, n := range services {
		tok, err := streams.TargetToken(n)
		if err != nil {
			return fmt.Errorf("service latency collector: %w", err)
		}
		tokens[i] = tok
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.services, c.tokens = slices.Clone(services), tokens
	return nil
}
