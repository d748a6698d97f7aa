package producers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is the producer's own state, for health checks and its Collector.
type Stats struct {
	// Published counts messages acknowledged by JetStream, duplicates
	// included.
	Published uint64
	// Duplicates counts acknowledgements flagged duplicate: an earlier
	// attempt of the same message had been stored and its ack was lost.
	Duplicates uint64
	// Retries counts publish attempts that failed and were retried.
	Retries uint64
	// Unacknowledged is the number of messages cut and not yet
	// acknowledged: 1 while a message is in flight, else 0.
	Unacknowledged int
	// PendingUpdates is the number of series updates swapped out of the
	// live metrics and not yet acknowledged.
	PendingUpdates int
	// OldestUnsent bounds the age of the oldest delta not yet acknowledged:
	// the time since the last cut whose messages were all acknowledged. It
	// stays below FlushInterval plus publish latency while JetStream keeps
	// up and grows through an outage.
	OldestUnsent time.Duration
	// Series is the number of series registered.
	Series int
	// Dropped counts series updates that could never be sent (alone larger
	// than the batch limit, or non-finite after overflow) and were dropped.
	Dropped uint64
	// Rejected counts updates ignored for their value: negative, NaN or
	// infinite counter additions, NaN or infinite gauge values and
	// observations.
	Rejected uint64
	// Seq is the sequence of the last message cut; 0 before the first.
	Seq uint64
	// PublishError is the last failed publish attempt's error while a
	// message is unacknowledged, nil once it is acknowledged. It wraps
	// ErrStreamFull when the delta stream refuses the message for its
	// bound.
	PublishError error
}

// Stats returns the producer's current state.
func (p *Producer) Stats() Stats {
	return Stats{
		Published:      p.published.Load(),
		Duplicates:     p.duplicates.Load(),
		Retries:        p.retries.Load(),
		Unacknowledged: int(p.inFlight.Load()),
		PendingUpdates: int(p.pending.Load()),
		OldestUnsent:   time.Since(time.Unix(0, p.lastCut.Load())),
		Series:         int(p.seriesCount.Load()),
		Dropped:        p.dropped.Load(),
		Rejected:       p.rejected.Load(),
		Seq:            p.seq.Load(),
		PublishError:   p.publishError(),
	}
}

func (p *Producer) publishError() error {
	if err := p.publishErr.Load(); err != nil {
		return *err
	}
	return nil
}

// Collector exports Stats as jetmetrics_producer_* metrics with a constant
// producer label, for the process's own Prometheus registry.
func (p *Producer) Collector() prometheus.Collector {
	return newStatsCollector(p)
}

type statsCollector struct {
	p                                                 *Producer
	published, duplicates, retries, dropped, rejected *prometheus.Desc
	unacked, pending, oldest, series, seq             *prometheus.Desc
}

var _ prometheus.Collector = (*statsCollector)(nil)

func newStatsCollector(p *Producer) *statsCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("jetmetrics_producer_"+name, help, nil, prometheus.Labels{"producer": p.id})
	}
	return &statsCollector{
		p:          p,
		published:  desc("batches_published_total", "Delta batches acknowledged by JetStream, duplicates included."),
		duplicates: desc("batches_duplicate_total", "Acknowledgements flagged duplicate: an earlier attempt had been stored."),
		retries:    desc("publish_retries_total", "Batch publish attempts that failed and were retried."),
		dropped:    desc("updates_dropped_total", "Series updates that could never be sent and were dropped."),
		rejected:   desc("updates_rejected_total", "Updates ignored for a negative, NaN or infinite value."),
		unacked:    desc("batches_unacknowledged", "Batches cut and not yet acknowledged."),
		pending:    desc("updates_pending", "Series updates cut and not yet acknowledged."),
		oldest:     desc("oldest_unsent_seconds", "Upper bound of the age of the oldest delta not yet acknowledged."),
		series:     desc("series", "Series registered."),
		seq:        desc("batch_sequence", "Sequence of the last batch cut."),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.published, c.duplicates, c.retries, c.dropped, c.rejected, c.unacked, c.pending, c.oldest, c.series, c.seq} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(c.published, s.Published)
	counter(c.duplicates, s.Duplicates)
	counter(c.retries, s.Retries)
	counter(c.dropped, s.Dropped)
	counter(c.rejected, s.Rejected)
	gauge(c.unacked, float64(s.Unacknowledged))
	gauge(c.pending, float64(s.PendingUpdates))
	gauge(c.oldest, s.OldestUnsent.Seconds())
	gauge(c.series, float64(s.Series))
	gauge(c.seq, float64(s.Seq))
}
