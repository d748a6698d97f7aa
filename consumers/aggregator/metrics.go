package aggregator

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/streams"
)

// metrics are the aggregator's own, about this process's work. The exactly
// once counts of rejections live in Redis with the aggregate.
type metrics struct {
	messages *prometheus.CounterVec
	// The messages counter per result, resolved once: it is hit per message.
	applied, duplicate, rejected, partlyRejected prometheus.Counter
	entries                                      prometheus.Counter
	rejectedEntries                              *prometheus.CounterVec
	applies                                      prometheus.Counter
	applySeconds                                 prometheus.Histogram
	groupMessages                                prometheus.Histogram
	restarts                                     prometheus.Counter
	restores                                     prometheus.Counter
	tornResets                                   prometheus.Counter
	checkpointsRefused                           prometheus.Counter
	mark                                         prometheus.Gauge
	pending                                      prometheus.Gauge
	series                                       prometheus.Gauge
	producers                                    prometheus.Gauge
	producersPruned                              prometheus.Counter
	lettersDropped                               *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_messages_total",
			Help: "Delta batch messages read by this process's aggregator, by result (applied, duplicate, rejected, partly_rejected).",
		}, []string{"result"}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_series_updates_total",
			Help: "Series updates (deltas and gauge sets) applied by this process's aggregator.",
		}),
		rejectedEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_rejected_updates_total",
			Help: "Series updates this process's aggregator rejected, by reason.",
		}, []string{"reason"}),
		applies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_applies_total",
			Help: "Atomic Redis applies (each one or more messages).",
		}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jetmetrics_aggregator_apply_duration_seconds",
			Help:    "Time one atomic Redis apply takes.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
		groupMessages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jetmetrics_aggregator_apply_messages",
			Help:    "Messages applied per atomic Redis apply.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 6),
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_resumes_total",
			Help: "Times the aggregator resumed from the mark stored in Redis after an error.",
		}),
		restores: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_checkpoint_restores_total",
			Help: "Times the aggregate was found empty and restored from the node's checkpoint.",
		}),
		checkpointsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_checkpoints_refused_total",
			Help: "Checkpoints not restored because the delta stream refutes them (a mark beyond the stream, an absurd producer mark); the aggregate was rebuilt from the stream instead.",
		}),
		tornResets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_torn_resets_total",
			Help: "Times Redis was found holding part of an apply (a torn AOF transaction) and the aggregate was rebuilt from the checkpoint.",
		}),
		mark: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmetrics_aggregator_applied_sequence",
			Help: "Last delta stream sequence applied to this node's aggregate.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmetrics_aggregator_pending_messages",
			Help: "Delta messages for this node in the stream not yet applied (the aggregator's lag).",
		}),
		series: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmetrics_aggregator_series",
			Help: "Series in this node's aggregate.",
		}),
		producers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmetrics_aggregator_producers",
			Help: "Producer ids whose batch marks this node's aggregate holds (capped by --limits.max-producers).",
		}),
		producersPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_producers_pruned_total",
			Help: "Producer batch marks forgotten because their producer applied nothing for longer than the replay horizon.",
		}),
		lettersDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmetrics_aggregator_dead_letters_dropped_total",
			Help: "Dead letters the dead-letter stream refused for good (full under discard new, the server out of JetStream resources, the letter too large for it), by rejection reason: dropped, the rejection still counted and the original still in the delta stream (docs/operations.md, \"A full dead-letter stream\").",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.messages, m.entries, m.rejectedEntries, m.applies, m.applySeconds, m.groupMessages, m.restarts, m.restores, m.checkpointsRefused, m.tornResets, m.mark, m.pending, m.series, m.producers, m.producersPruned, m.lettersDropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.applied = m.messages.WithLabelValues("applied")
	m.duplicate = m.messages.WithLabelValues("duplicate")
	m.rejected = m.messages.WithLabelValues("rejected")
	m.partlyRejected = m.messages.WithLabelValues("partly_rejected")
	for _, r := range streams.Reasons {
		m.rejectedEntries.WithLabelValues(string(r))
		m.lettersDropped.WithLabelValues(string(r))
	}
	return m, nil
}
