package volumecache

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/obscache"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Leads reports whether this node leads (polls) a volume now.
type Leads func(volume string) bool

// Collector exposes the cached performance of the volumes this node leads
// as gauges: jetmetrics_volume_{iops,throughput_bytes,latency_usec}_{read,
// write}{volume} and jetmetrics_volume_metric_last_updated_timestamp_seconds.
//
// Every node caches every volume, but only the leader exposes a volume, so
// scraping every node yields each volume once. A volume's gauges exist only
// while its newest result is cached and succeeded: they disappear when the
// entry expires (TTL after the observation), when a poll fails, and when
// the volume leaves the configuration, and never show an older value.
//
// Collect reads Redis once per scrape; it is safe for concurrent use.
type Collector struct {
	cache *obscache.Cache
	// mu guards volumes and tokens, which SetVolumes changes.
	mu      sync.Mutex
	volumes []string
	tokens  []string
	leads   Leads
	timeout time.Duration
	log     zerolog.Logger
	descs   [7]*prometheus.Desc
	// nodeLabel adds node="<the node that polled>" (NewClusterCollector).
	nodeLabel bool
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns the collector of volumes from cache; timeout bounds
// the Redis read of one scrape (default 2 s).
func NewCollector(cache *obscache.Cache, volumes []string, leads Leads, timeout time.Duration, log zerolog.Logger) (*Collector, error) {
	return newCollector(cache, volumes, leads, timeout, log, false)
}

// NewClusterCollector returns the collector of a cluster view: every
// volume's gauges from this node's cache, whoever leads it, each labelled
// node="<the node whose poll the result is>". Every node caches every
// volume, so one node's view holds each volume once.
func NewClusterCollector(cache *obscache.Cache, volumes []string, timeout time.Duration, log zerolog.Logger) (*Collector, error) {
	return newCollector(cache, volumes, func(string) bool { return true }, timeout, log, true)
}

func newCollector(cache *obscache.Cache, volumes []string, leads Leads, timeout time.Duration, log zerolog.Logger, nodeLabel bool) (*Collector, error) {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	c := &Collector{cache: cache, volumes: volumes, leads: leads, timeout: timeout, log: log, nodeLabel: nodeLabel}
	labels := []string{"volume"}
	if nodeLabel {
		labels = append(labels, "node")
	}
	for _, v := range volumes {
		tok, err := streams.TargetToken(v)
		if err != nil {
			return nil, fmt.Errorf("new volume collector: %w", err)
		}
		c.tokens = append(c.tokens, tok)
	}
	for i, n := range []struct{ name, help string }{
		{"jetmetrics_volume_iops_read", "Read operations per second of the volume, as last observed."},
		{"jetmetrics_volume_iops_write", "Write operations per second of the volume, as last observed."},
		{"jetmetrics_volume_throughput_bytes_read", "Bytes read per second from the volume, as last observed."},
		{"jetmetrics_volume_throughput_bytes_write", "Bytes written per second to the volume, as last observed."},
		{"jetmetrics_volume_latency_usec_read", "Mean latency of a read from the volume in microseconds, as last observed."},
		{"jetmetrics_volume_latency_usec_write", "Mean latency of a write to the volume in microseconds, as last observed."},
		{"jetmetrics_volume_metric_last_updated_timestamp_seconds", "When the volume's exposed figures were observed, in Unix seconds."},
	} {
		c.descs[i] = prometheus.NewDesc(n.name, n.help, labels, nil)
	}
	return c, nil
}

// Describe sends the gauges' descriptions.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect sends the gauges of the led volumes with a cached successful
// result. A Redis error leaves the gauges out of this scrape and is logged.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var led, tokens []string
	c.mu.Lock()
	names, all := c.volumes, c.tokens
	c.mu.Unlock()
	for i, v := range names {
		if c.leads(v) {
			led = append(led, v)
			tokens = append(tokens, all[i])
		}
	}
	if len(led) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	entries, err := c.cache.GetMany(ctx, tokens)
	if err != nil {
		c.log.Warn().Err(err).Msg("volume gauges left out of the scrape")
		return
	}
	for i, v := range led {
		e, ok := entries[tokens[i]]
		if !ok {
			continue
		}
		o, err := streams.DecodeObservation(e.Data)
		if err != nil || o.Status != streams.ObsStatusOK {
			continue
		}
		m := o.Metric
		labels := []string{v}
		if c.nodeLabel {
			labels = append(labels, o.Node)
		}
		for j, x := range []float64{m.IOPSRead, m.IOPSWrite, m.ThroughputBytesRead, m.ThroughputBytesWrite, m.LatencyUsecRead, m.LatencyUsecWrite,
			float64(o.ObservedAt.UnixNano()) / 1e9} {
			ch <- prometheus.MustNewConstMetric(c.descs[j], prometheus.GaugeValue, x, labels...)
		}
	}
}

// SetVolumes changes the volumes exposed, for a configuration reload: the
// next scrape shows the new list. An invalid name changes nothing.
func (c *Collector) SetVolumes(volumes []string) error {
	tokens := make([]string, len(volumes))
	for i, n := range volumes {
		tok, err := streams.TargetToken(n)
		if err != nil {
			return fmt.Errorf("volume collector: %w", err)
		}
		tokens[i] = tok
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.volumes, c.tokens = slices.Clone(volumes), tokens
	return nil
}
