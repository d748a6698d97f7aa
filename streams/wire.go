package streams

// WireVersion is the delta-batch format this build writes and reads.
const WireVersion = 1

// Kind is what a metric is. A counter's value is a delta added to the
// aggregate; a gauge's value replaces it (last write in stream order wins); a
// histogram carries per-bucket count deltas and a sum delta.
type Kind string

// The metric kinds. AWX's IntM and FloatM are counters, SetIntM and
// SetFloatM gauges, HistogramM a histogram.
const (
	KindCounter   Kind = "counter"
	KindGauge     Kind = "gauge"
	KindHistogram Kind = "histogram"
)

// Batch is one delta-batch message: everything one producer accumulated in
// one flush interval (or one part of it, when a flush is split to fit the
// stream's maximum message size).
type Batch struct {
	// Version is the wire version; WireVersion.
	Version int `json:"v"`
	// Node is the node whose aggregate the batch is for. It matches the
	// node token of the subject.
	Node string `json:"node"`
	// Producer is the producer id: one per process incarnation.
	Producer string `json:"producer"`
	// Seq is the batch sequence within the producer, starting at 1 and
	// growing by one per message.
	Seq uint64 `json:"seq"`
	// Time is when the batch was cut, in Unix milliseconds (informational).
	Time int64 `json:"time,omitempty"`
	// Metrics are the batch's series updates.
	Metrics []Metric `json:"metrics"`
}

// Metric is one series update within a batch.
type Metric struct {
	Name string `json:"name"`
	Type Kind   `json:"type"`
	// Help is the metric's help text; producers send it at least the first
	// time a metric appears, and the first one the aggregator sees sticks.
	Help   string            `json:"help,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Value is the counter delta or the gauge value.
	Value float64 `json:"value"`
	// Buckets are a histogram's upper bounds, strictly ascending, without
	// +Inf. The layout is fixed per metric on first sight.
	Buckets []float64 `json:"buckets,omitempty"`
	// Counts are per-bucket (not cumulative) observation counts, one per
	// bucket plus one for +Inf.
	Counts []uint64 `json:"counts,omitempty"`
	// Sum is the sum of the observations in Counts.
	Sum float64 `json:"sum,omitempty"`
}
