package streams

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"unsafe"

	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// Reason names why input was rejected. It is a subject token of the
// dead-letter stream and the reason label of jetmetrics_rejected_total.
type Reason string

// Rejection reasons. Each rejection is decided from the message and the
// aggregate's state at its stream position alone, so a replay decides the
// same.
const (
	ReasonUndecodable    Reason = "undecodable"
	ReasonVersion        Reason = "unknown_version"
	ReasonEnvelope       Reason = "bad_envelope"
	ReasonMetricName     Reason = "invalid_metric_name"
	ReasonLabelName      Reason = "invalid_label_name"
	ReasonReservedLabel  Reason = "reserved_label"
	ReasonTooManyLabels  Reason = "too_many_labels"
	ReasonEntry          Reason = "invalid_entry"
	ReasonLabelValue     Reason = "invalid_label_value"
	ReasonLongLabelValue Reason = "label_value_too_long"
	ReasonValue          Reason = "invalid_value"
	ReasonTypeConflict   Reason = "type_conflict"
	ReasonLayoutConflict Reason = "layout_conflict"
	ReasonCardinality    Reason = "cardinality_limit"
	ReasonOversize       Reason = "oversize"
	// ReasonOverflow is decided by the aggregator: the update would take a
	// counter's total or a histogram's sum past float64's range, or a
	// histogram's count (the sum of its buckets) past uint64's. The decoder
	// decides it too for a histogram whose own counts add up past uint64's.
	ReasonOverflow Reason = "overflow"
	// ReasonSeqJump is decided by the aggregator: the batch's seq is more
	// than the bound above its producer's last applied batch
	// (docs/wire-format.md), and applying it would make that producer's
	// next batches duplicates.
	ReasonSeqJump Reason = "seq_jump"
	// ReasonProducerLimit is decided by the aggregator: the batch is the
	// first of a producer id the node holds no mark of, and the node holds
	// the most producer marks it may (--limits.max-producers).
	ReasonProducerLimit Reason = "producer_limit"
)

// Reasons lists every reason, for pre-creating metric series.
var Reasons = []Reason{
	ReasonUndecodable, ReasonVersion, ReasonEnvelope, ReasonEntry, ReasonMetricName, ReasonLabelName,
	ReasonReservedLabel, ReasonTooManyLabels, ReasonLabelValue, ReasonLongLabelValue,
	ReasonValue, ReasonTypeConflict, ReasonLayoutConflict, ReasonCardinality, ReasonOversize,
	ReasonOverflow, ReasonSeqJump, ReasonProducerLimit,
}

// RejectError is a rejection with its reason.
type RejectError struct {
	Reason Reason
	Err    error
}

func (e *RejectError) Error() string { return string(e.Reason) + ": " + e.Err.Error() }
func (e *RejectError) Unwrap() error { return e.Err }

func reject(r Reason, format string, args ...any) *RejectError {
	return &RejectError{Reason: r, Err: fmt.Errorf(format, args...)}
}

// ReservedPrefix starts the names of jetmetrics's own metrics; producers
// may not publish under it, so their series never collide with the node's.
const ReservedPrefix = "jetmetrics_"

// ReservedPrefixes start the names of the metrics a node's /metrics serves
// of its own process: jetmetrics's, and the Go runtime's, the process's and
// promhttp's that client_golang registers. Producers may not publish under
// them.
var ReservedPrefixes = []string{ReservedPrefix, "go_", "process_", "promhttp_"}

// CheckReservedName returns an error when a producer may not publish a
// metric called name because a node serves metrics of its own under its
// prefix. The service latency families (ServiceLatencyName,
// ServiceChecksName) are under the prefix too: only the SDK's latency
// handle publishes them, and the decoder accepts them in their fixed shape.
func CheckReservedName(name string) error {
	if name == "" || (name[0] != 'j' && name[0] != 'g' && name[0] != 'p') {
		return nil // what nearly every name is: decided per entry, so cheaply
	}
	for _, p := range ReservedPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("metric name %q: the prefix %s is reserved for the node's own metrics", name, p)
		}
	}
	return nil
}

// MaxBuckets bounds a histogram's bucket count.
const MaxBuckets = 64

// Entry is one validated series update of a decoded batch, or the reason it
// was rejected.
//
// Its Metric.Labels is left nil: the labels are in Key, sorted and escaped
// (series.ParseKey recovers them), and building a map per entry would cost
// as much as the rest of decoding.
type Entry struct {
	Metric
	// Key is the canonical series key (pkg/series) when Reject is nil.
	Key string
	// Reject is why the entry cannot be applied; nil when it can.
	Reject *RejectError
}

// Decoded is a batch whose envelope is valid. Its entries are validated one
// by one: a bad entry is rejected alone and the rest still apply.
type Decoded struct {
	Node     string
	Producer string
	Seq      uint64
	Time     int64
	Entries  []Entry

	reuse *reusable
}

// Size is about how many bytes d holds: its entries and their series keys,
// to bound what a consumer queues.
func (d *Decoded) Size() int {
	n := cap(d.Entries) * int(unsafe.Sizeof(Entry{}))
	if d.reuse != nil {
		return n + cap(d.reuse.keys.b)
	}
	for i := range d.Entries {
		n += len(d.Entries[i].Key)
	}
	return n
}

// Release hands d's memory to later Decode calls: its entries and the
// bytes of their series keys, whose names and labels are substrings. After
// Release, d and every string and slice taken from its entries must not be
// used: a caller that keeps a key or a name keeps a copy (strings.Clone).
// Calling Release is optional; without it the memory is left to the
// garbage collector. It saves a large allocation per message, and the
// page faults of touching it, on a consumer's hot path.
func (d *Decoded) Release() {
	r := d.reuse
	if r == nil {
		return
	}
	clear(d.Entries)
	r.entries = d.Entries[:0]
	*d = Decoded{}
	reusables.Put(r)
}

// Decode parses and validates one delta-batch message published on a
// subject of node. A *RejectError reports a message that cannot be applied
// at all: undecodable, of an unknown version, or with a bad envelope (node,
// producer, seq or metrics). Entry-level problems, wrong JSON types and
// nulls included, are reported per entry.
//
// A scanner written for the format decodes the messages producers write;
// whatever it cannot decide with certainty goes to decodeReference, which
// defines the outcome for every input. Both return the same Decoded or the
// same rejection.
func Decode(data []byte, node string, limits series.Limits) (*Decoded, error) {
	d := decoders.Get().(*decoder)
	dec, err := d.decode(unsafe.String(unsafe.SliceData(data), len(data)), node, limits)
	d.reset()
	decoders.Put(d)
	if err == errUndecided {
		return decodeReference(data, node, limits)
	}
	return dec, err
}

// checkEnvelope decides whether a batch can be applied on node at all. It
// ignores the entries.
func checkEnvelope(w *wireBatch, node string) error {
	switch {
	case !w.HasVersion:
		return reject(ReasonVersion, "batch has no version field \"v\"")
	case w.VersionText != "":
		return reject(ReasonVersion, "wire version is %s, this node reads the integer %d", w.VersionText, WireVersion)
	case w.Version != WireVersion:
		return reject(ReasonVersion, "wire version %d, this node reads %d", w.Version, WireVersion)
	case w.BadField != "":
		return reject(ReasonEnvelope, "batch field %q is %s, want %s", w.BadField, w.BadType, w.BadWant)
	case w.Node != node:
		return reject(ReasonEnvelope, "batch names node %q but was published for node %q", w.Node, node)
	}
	if err := CheckToken("producer", w.Producer); err != nil {
		return &RejectError{Reason: ReasonEnvelope, Err: err}
	}
	if w.Seq == 0 {
		return reject(ReasonEnvelope, "batch seq must start at 1")
	}
	if !w.HasMetrics {
		return reject(ReasonEnvelope, "batch has no \"metrics\" array")
	}
	return nil
}

// dropEmpty removes the labels whose value is empty, keeping the order of
// the others: an empty label value means no label, as in Prometheus, so
// {"env":""} and no env label are one series.
func dropEmpty(labels []series.Label) []series.Label {
	for i := range labels {
		if labels[i].Value == "" {
			// Rare: copy the rest down only then.
			out := labels[:i]
			for _, l := range labels[i+1:] {
				if l.Value != "" {
					out = append(out, l)
				}
			}
			return out
		}
	}
	return labels
}

// checkMetric decides whether an entry can be applied. hasValue tells a
// missing value from zero; labels are the entry's labels with an empty
// value dropped (dropEmpty), sorted by name; m.Labels is ignored.
func checkMetric(m *Metric, hasValue bool, labels []series.Label, limits series.Limits) *RejectError {
	if err := limits.CheckMetricName(m.Name); err != nil {
		return &RejectError{Reason: ReasonMetricName, Err: err}
	}
	service := isServiceFamily(m.Name)
	if !service {
		if err := CheckReservedName(m.Name); err != nil {
			return &RejectError{Reason: ReasonMetricName, Err: err}
		}
	}
	if err := limits.CheckLabels(labels); err != nil {
		return &RejectError{Reason: labelReason(err), Err: err}
	}
	if rej := checkValues(m, hasValue); rej != nil || !service {
		return rej
	}
	return checkServiceFamily(m, labels)
}

func labelReason(err error) Reason {
	switch {
	case errors.Is(err, series.ErrReservedLabel):
		return ReasonReservedLabel
	case errors.Is(err, series.ErrTooManyLabels):
		return ReasonTooManyLabels
	case errors.Is(err, series.ErrLongValue):
		return ReasonLongLabelValue
	case errors.Is(err, series.ErrLabelValue):
		return ReasonLabelValue
	default:
		return ReasonLabelName
	}
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func checkValues(m *Metric, hasValue bool) *RejectError {
	switch m.Type {
	case KindCounter, KindGauge:
		if !hasValue {
			return reject(ReasonValue, "%s %s has no value", m.Type, m.Name)
		}
		v := m.Value
		if !isFinite(v) {
			return reject(ReasonValue, "%s %s value %v is not finite", m.Type, m.Name, v)
		}
		if m.Type == KindCounter && v < 0 {
			return reject(ReasonValue, "counter %s delta %v is negative; counters only go up (use a gauge)", m.Name, v)
		}
		if len(m.Buckets) > 0 || len(m.Counts) > 0 {
			return reject(ReasonValue, "%s %s carries histogram buckets", m.Type, m.Name)
		}
	case KindHistogram:
		if len(m.Buckets) == 0 || len(m.Buckets) > MaxBuckets {
			return reject(ReasonValue, "histogram %s has %d buckets, want 1 to %d", m.Name, len(m.Buckets), MaxBuckets)
		}
		for i, b := range m.Buckets {
			if !isFinite(b) {
				return reject(ReasonValue, "histogram %s bucket %v is not finite (+Inf is implicit)", m.Name, b)
			}
			if i > 0 && b <= m.Buckets[i-1] {
				return reject(ReasonValue, "histogram %s buckets are not strictly ascending at %v", m.Name, b)
			}
		}
		if len(m.Counts) != len(m.Buckets)+1 {
			return reject(ReasonValue, "histogram %s has %d counts for %d buckets, want one per bucket plus +Inf", m.Name, len(m.Counts), len(m.Buckets))
		}
		if !isFinite(m.Sum) {
			return reject(ReasonValue, "histogram %s sum %v is not finite", m.Name, m.Sum)
		}
		var total, carry uint64
		for _, n := range m.Counts {
			if total, carry = bits.Add64(total, n, 0); carry != 0 {
				return reject(ReasonOverflow, "histogram %s counts add up past 2^64-1, which its count cannot hold", m.Name)
			}
		}
	default:
		return reject(ReasonValue, "metric %s has type %q, want counter, gauge or histogram", m.Name, m.Type)
	}
	return nil
}
