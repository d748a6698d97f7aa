package node

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// streamCollector exports the delta and dead-letter streams' size and
// byte bound, read from JetStream on each scrape, so an alert fires
// before a full delta stream refuses publishes.
type streamCollector struct {
	n              *Node
	bytes, maxSize *prometheus.Desc
}

func newStreamCollector(n *Node) *streamCollector {
	return &streamCollector{
		n:       n,
		bytes:   prometheus.NewDesc("jetmetrics_stream_bytes", "Bytes the stream holds.", []string{"stream"}, nil),
		maxSize: prometheus.NewDesc("jetmetrics_stream_max_bytes", "The stream's byte bound (--streams.delta-max-bytes, --streams.dlq-max-bytes); absent when unlimited. A delta stream at its bound refuses publishes.", []string{"stream"}, nil),
	}
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytes
	ch <- c.maxSize
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	nc := c.n.nc.Load()
	if nc == nil || !c.n.provisioned.Load() {
		return
	}
	js, err := jetstream.New(nc)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.bytes, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, name := range []string{c.n.cfg.Streams.DeltaStream(), c.n.cfg.Streams.DeadLetterStream()} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			continue // between leaders, or deleted: the node's own checks say so
		}
		info := s.CachedInfo()
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(info.State.Bytes), name)
		if info.Config.MaxBytes > 0 {
			ch <- prometheus.MustNewConstMetric(c.maxSize, prometheus.GaugeValue, float64(info.Config.MaxBytes), name)
		}
	}
}
