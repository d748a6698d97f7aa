package producers

import "errors"

// Errors a caller may branch on. Name and label validation errors wrap the
// sentinels of package series instead (series.ErrMetricName,
// series.ErrReservedLabel, series.ErrLongValue, ...).
var (
	// ErrClosed is returned by Flush once Close has been called.
	ErrClosed = errors.New("producer closed")
	// ErrConflict is returned when a metric name is registered again with
	// another kind, other label names or other buckets.
	ErrConflict = errors.New("metric registered differently")
	// ErrLabelCount is returned by With when the number of label values
	// differs from the number of label names.
	ErrLabelCount = errors.New("wrong number of label values")
	// ErrBuckets is returned for histogram buckets that are not finite and
	// strictly ascending.
	ErrBuckets = errors.New("invalid histogram buckets")
	// ErrReservedName is returned for a metric name under one of the
	// prefixes a node serves its own metrics under (streams.ReservedPrefixes:
	// jetmetrics_, go_, process_, promhttp_); the node would reject it.
	ErrReservedName = errors.New("reserved metric name")
	// ErrServiceName is returned by Latency for a service name that is
	// not a valid label value: empty, too long or not UTF-8.
	ErrServiceName = errors.New("invalid service name")
	// ErrStreamFull wraps a publish attempt's error when JetStream refused
	// the batch because the delta stream is at its byte or message bound
	// (discard new: "maximum bytes exceeded"). Flush's error wraps it
	// while that batch is retried. The producer keeps the batch and keeps
	// counting; the fix is the node operator's: raise the stream's bound
	// (docs/operations.md, "Stream bounds").
	ErrStreamFull = errors.New("delta stream full")
)
