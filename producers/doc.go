// Package producers is the SDK an instrumented Go process uses to publish
// metric deltas to jetmetrics over NATS JetStream.
//
// A Producer is a registry of counters, gauges and histograms, with or
// without labels, shaped like client_golang's (the five AWX kinds: Counter
// and FloatCounter, Gauge and FloatGauge, Histogram), plus a goroutine that
// every Config.FlushInterval cuts the deltas recorded since the last cut
// into one batch message for the node's aggregator.
//
// # Concurrency
//
// Every method is safe for concurrent use. Updates on a series (Inc, Add,
// Set, Observe) are lock-free atomics that allocate nothing. Vec.With for
// an existing series is lock-free and allocates nothing once the series has
// been looked up a few times; only creating a series takes a lock. Keep the
// series With returns rather than calling With for every update when the
// labels are fixed.
//
// # Delivery
//
// Each process incarnation has a producer id (Config.Name plus a random
// suffix) and numbers its batches from 1. At most one batch is in flight: it
// is retried with the same bytes and the same Nats-Msg-Id ("<id>:<seq>"),
// with capped exponential backoff, until JetStream acknowledges it. The
// stream's duplicate window, and beyond it the aggregator's per-producer
// sequence mark, make the retries count once. While a batch waits, new
// updates keep accumulating in the live series, so an outage costs memory
// bounded by the number of series, not by its length. Flush waits until
// everything recorded before it is acknowledged; Close does a last Flush.
// Deltas still in memory when a process dies without Close are lost.
//
// A series is announced in the first batch after it is created, with a zero
// delta, so it exists in the aggregate from then on, as a client_golang
// series exists from its creation. A metric's help text travels with its
// first update of each incarnation. Gauges send their absolute value when
// set since the last cut.
//
// The NATS connection belongs to the caller, who must keep it reconnecting
// through outages: connect with nats.MaxReconnects(-1) and
// nats.RetryOnFailedConnect(true).
//
// Values the wire cannot carry are ignored and counted in Stats.Rejected:
// NaN and infinities, and negative additions to counters. Names, label
// names and label values are validated against Config.Limits when a metric
// or series is created; keep them no looser than the nodes' limits, whose
// aggregators dead-letter what breaks theirs. An empty label value is no
// label, as on the nodes and in Prometheus: With("GET", "") is the series
// without the second label. Names under jetmetrics_, go_, process_ and
// promhttp_ are refused (ErrReservedName): a node serves its own metrics
// there. The two service latency families below are the SDK's own and are
// refused too, except through Latency.
//
// A histogram whose buckets come from NativeBuckets (bounds 2^(k/2^schema)
// for consecutive k) is also exposed as a Prometheus native histogram when
// a scrape negotiates protobuf, with the same counts; any other layout is
// exposed as a classic histogram only.
//
// # Service latency
//
// Latency returns a handle for a process's calls to one other service,
// keyed by its name (a label value):
//
//	payments, err := p.Latency("payments-api")
//	...
//	err = payments.Time(func() error { return client.Charge(ctx, order) })
//	// or payments.Observe(elapsed) / payments.Fail(err)
//
// The handle keeps a latency.Tracker in memory (Snapshot: mean, EWMA,
// window percentiles, min, max, failures, last error; Config.Latency sets
// its window and half-life) and publishes each call as a delta, exactly
// once like every delta: a success's latency in the histogram
// jetmetrics_service_latency_seconds{service} with the fixed buckets of
// streams.ServiceLatencyBuckets (about 122 µs to 128 s, each bound sqrt 2
// times the one before: native-histogram buckets), and every call in
// jetmetrics_service_checks_total{service,result="success"|"failure"}. A
// failure never enters the histogram or the tracker's latency statistics.
// Errors are not classified into a label: the error's text stays in the
// process (the tracker's last error) and is never sent. Observe allocates
// nothing.
//
// The producer's own health is in Stats, and in Collector for the
// process's Prometheus registry (jetmetrics_producer_*): retries, the
// unacknowledged backlog and the age of the oldest unsent delta show an
// outage from the producer's side; Stats.PublishError says why the batch
// in flight is not acknowledged yet, and wraps ErrStreamFull when the node's
// delta stream is at its byte bound (an operator's fix, docs/operations.md).
package producers
