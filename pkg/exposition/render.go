package exposition

import (
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// format is an exposition format rendered directly from an aggregate.
type format uint8

const (
	formatText        format = iota // text/plain; version=0.0.4
	formatOpenMetrics               // application/openmetrics-text; version=1.0.0
	formatProto                     // delimited protobuf MetricFamily messages
)

// The renderers below write, byte for byte, what expfmt's encoders write
// for the dto.MetricFamily that Families builds from the same aggregate:
// the same numbers (shortest 'g' formatting, OpenMetrics' ".0" and integer
// counts), the same escaping and, for protobuf, the fields in the order
// proto.Marshal writes them. They append to a buffer and allocate nothing
// per series. Metric and label names are valid legacy Prometheus names, as
// the aggregator accepts no others, so they are never quoted.

// familyHeader appends the HELP and TYPE lines of a text or OpenMetrics
// family.
func familyHeader(dst []byte, f format, name string, m *aggregate.Meta) []byte {
	typ := typeName(m.Kind)
	if f == formatOpenMetrics && m.Kind == aggregate.Counter {
		if trimmed, ok := strings.CutSuffix(name, "_total"); ok {
			name = trimmed
		} else {
			typ = "unknown"
		}
	}
	if m.Help != "" {
		dst = append(dst, "# HELP "...)
		dst = append(dst, name...)
		dst = append(dst, ' ')
		dst = appendEscaped(dst, m.Help, f == formatOpenMetrics)
		dst = append(dst, '\n')
	}
	dst = append(dst, "# TYPE "...)
	dst = append(dst, name...)
	dst = append(dst, ' ')
	dst = append(dst, typ...)
	return append(dst, '\n')
}

func typeName(k aggregate.Kind) string {
	switch k {
	case aggregate.Counter:
		return "counter"
	case aggregate.Histogram:
		return "histogram"
	default:
		return "gauge"
	}
}

// protoType is dto.MetricType's number for k.
func protoType(k aggregate.Kind) uint64 {
	switch k {
	case aggregate.Counter:
		return 0
	case aggregate.Histogram:
		return 4
	default:
		return 1
	}
}

// protoFamilyHeader appends the length prefix and the name, help and type
// fields of a MetricFamily message whose metric fields, bodyLen bytes,
// follow.
func protoFamilyHeader(dst []byte, name string, m *aggregate.Meta, bodyLen int) []byte {
	n := 1 + protowire.SizeBytes(len(name)) + 1 + 1 + bodyLen
	if m.Help != "" {
		n += 1 + protowire.SizeBytes(len(m.Help))
	}
	dst = protowire.AppendVarint(dst, uint64(n))
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendString(dst, name)
	if m.Help != "" {
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendString(dst, m.Help)
	}
	dst = protowire.AppendTag(dst, 3, protowire.VarintType)
	return protowire.AppendVarint(dst, protoType(m.Kind))
}

// familyRenderer renders the series of one family of one node.
type familyRenderer struct {
	format format
	fam    *aggregate.Family
	// node is the value of the node label; empty for none.
	node string
	// les are the rendered upper bounds of a histogram's buckets, +Inf
	// last, as the le label shows them.
	les []string
	// labels is scratch: one series' labels as written inside braces.
	labels []byte
	// native is a histogram's native layout, in protobuf; nb is scratch
	// for one series' native buckets.
	native nativeLayout
	nb     nativeBuckets
}

func newFamilyRenderer(f format, fam *aggregate.Family, node string) *familyRenderer {
	r := &familyRenderer{format: f, fam: fam, node: node}
	if fam.Kind == aggregate.Histogram && f != formatProto {
		r.les = make([]string, 0, len(fam.Buckets)+1)
		for _, b := range fam.Buckets {
			r.les = append(r.les, string(r.appendFloat(nil, b)))
		}
		r.les = append(r.les, "+Inf")
	}
	if fam.Kind == aggregate.Histogram && f == formatProto {
		r.native = nativeLayoutOf(fam.Buckets)
	}
	return r
}

// appendSeries appends series s[i:j] of the family.
func (r *familyRenderer) appendSeries(dst []byte, i, j int) []byte {
	for k := i; k < j; k++ {
		s := &r.fam.Series[k]
		if r.format == formatProto {
			dst = r.appendProtoMetric(dst, s)
			continue
		}
		r.labels = r.appendLabels(r.labels[:0], s)
		if r.fam.Kind == aggregate.Histogram {
			dst = r.appendHistogram(dst, s)
			continue
		}
		dst = r.appendName(dst, "")
		dst = append(dst, ' ')
		dst = r.appendFloat(dst, s.Value)
		dst = append(dst, '\n')
	}
	return dst
}

// appendLabels appends s's labels, node inserted in name order, as
// name="value" pairs separated by commas.
func (r *familyRenderer) appendLabels(dst []byte, s *aggregate.Series) []byte {
	if r.node == "" && s.Key != "" {
		// The series key is name{labels} with labels sorted and escaped
		// exactly as the text formats want them.
		if inner, ok := strings.CutPrefix(s.Key, r.fam.Name+"{"); ok {
			return append(dst, inner[:len(inner)-1]...)
		}
		return dst
	}
	// A series without a key (aggregate.Dump.PeerState) is rendered from
	// its labels, with the node's if there is one.
	added := r.node == ""
	for _, l := range s.Labels {
		if !added && l.Name > NodeLabel {
			dst = appendLabel(dst, NodeLabel, r.node)
			added = true
		}
		dst = appendLabel(dst, l.Name, l.Value)
	}
	if !added {
		dst = appendLabel(dst, NodeLabel, r.node)
	}
	return dst
}

func appendLabel(dst []byte, name, value string) []byte {
	if len(dst) > 0 {
		dst = append(dst, ',')
	}
	dst = append(dst, name...)
	dst = append(dst, '=', '"')
	dst = appendEscaped(dst, value, true)
	return append(dst, '"')
}

// appendName appends the sample name with suffix and the series' labels.
func (r *familyRenderer) appendName(dst []byte, suffix string) []byte {
	dst = append(dst, r.fam.Name...)
	dst = append(dst, suffix...)
	if len(r.labels) > 0 {
		dst = append(dst, '{')
		dst = append(dst, r.labels...)
		dst = append(dst, '}')
	}
	return dst
}

func (r *familyRenderer) appendHistogram(dst []byte, s *aggregate.Series) []byte {
	var cum uint64
	for i := range r.les {
		// The last count is +Inf's: the last bucket holds every
		// observation.
		if i < len(s.Counts) {
			cum += s.Counts[i]
		}
		dst = append(dst, r.fam.Name...)
		dst = append(dst, "_bucket{"...)
		if len(r.labels) > 0 {
			dst = append(dst, r.labels...)
			dst = append(dst, ',')
		}
		dst = append(dst, `le="`...)
		dst = append(dst, r.les[i]...)
		dst = append(dst, `"} `...)
		dst = r.appendCount(dst, cum)
		dst = append(dst, '\n')
	}
	dst = r.appendName(dst, "_sum")
	dst = append(dst, ' ')
	dst = r.appendFloat(dst, s.Sum)
	dst = append(dst, '\n')
	dst = r.appendName(dst, "_count")
	dst = append(dst, ' ')
	dst = r.appendCount(dst, cum)
	return append(dst, '\n')
}

// appendFloat writes a sample value or bucket bound as expfmt does.
func (r *familyRenderer) appendFloat(dst []byte, v float64) []byte {
	om := r.format == formatOpenMetrics
	switch {
	case v == 1:
		if om {
			return append(dst, "1.0"...)
		}
		return append(dst, '1')
	case v == 0:
		if om {
			return append(dst, "0.0"...)
		}
		return append(dst, '0')
	case v == -1:
		if om {
			return append(dst, "-1.0"...)
		}
		return append(dst, "-1"...)
	case math.IsNaN(v):
		return append(dst, "NaN"...)
	case math.IsInf(v, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-Inf"...)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
	if om && !containsAny(dst[start:], 'e', '.') {
		dst = append(dst, '.', '0')
	}
	return dst
}

// appendCount writes a histogram count: a float in the text format, an
// integer in OpenMetrics.
func (r *familyRenderer) appendCount(dst []byte, n uint64) []byte {
	if r.format == formatOpenMetrics {
		return strconv.AppendUint(dst, n, 10)
	}
	return r.appendFloat(dst, float64(n))
}

func containsAny(b []byte, c1, c2 byte) bool {
	for _, c := range b {
		if c == c1 || c == c2 {
			return true
		}
	}
	return false
}

// appendEscaped escapes backslash and newline, and with quote the double
// quote too, as the text formats require.
func appendEscaped(dst []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '"' && quote:
			dst = append(dst, '\\', '"')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// Protobuf field numbers of io.prometheus.client.Metric and its parts.
const (
	metricFieldLabel     = 1
	metricFieldGauge     = 2
	metricFieldCounter   = 3
	metricFieldHistogram = 7
	familyFieldMetric    = 4
)

// appendProtoMetric appends one metric field of a MetricFamily: the tag,
// the length and the Metric message.
func (r *familyRenderer) appendProtoMetric(dst []byte, s *aggregate.Series) []byte {
	n := r.protoLabelsSize(s)
	var hist int
	switch r.fam.Kind {
	case aggregate.Histogram:
		if r.native.ok {
			r.nb.fill(r.native, s.Counts, len(r.fam.Buckets))
		}
		hist = r.protoHistogramSize(s)
		n += 1 + protowire.SizeBytes(hist)
	default:
		n += 1 + protowire.SizeBytes(9) // counter or gauge: a double
	}
	dst = protowire.AppendTag(dst, familyFieldMetric, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(n))
	added := r.node == ""
	for _, l := range s.Labels {
		if !added && l.Name > NodeLabel {
			dst = appendProtoLabel(dst, NodeLabel, r.node)
			added = true
		}
		dst = appendProtoLabel(dst, l.Name, l.Value)
	}
	if !added {
		dst = appendProtoLabel(dst, NodeLabel, r.node)
	}
	switch r.fam.Kind {
	case aggregate.Counter, aggregate.Gauge:
		field := protowire.Number(metricFieldGauge)
		if r.fam.Kind == aggregate.Counter {
			field = metricFieldCounter
		}
		dst = protowire.AppendTag(dst, field, protowire.BytesType)
		dst = protowire.AppendVarint(dst, 9)
		dst = protowire.AppendTag(dst, 1, protowire.Fixed64Type)
		dst = protowire.AppendFixed64(dst, math.Float64bits(s.Value))
	case aggregate.Histogram:
		dst = protowire.AppendTag(dst, metricFieldHistogram, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(hist))
		dst = protowire.AppendTag(dst, 1, protowire.VarintType)
		dst = protowire.AppendVarint(dst, histogramCount(r.fam, s))
		dst = protowire.AppendTag(dst, 2, protowire.Fixed64Type)
		dst = protowire.AppendFixed64(dst, math.Float64bits(s.Sum))
		var cum uint64
		for i, ub := range r.fam.Buckets {
			if i < len(s.Counts) {
				cum += s.Counts[i]
			}
			dst = protowire.AppendTag(dst, 3, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(protoBucketSize(cum)))
			dst = protowire.AppendTag(dst, 1, protowire.VarintType)
			dst = protowire.AppendVarint(dst, cum)
			dst = protowire.AppendTag(dst, 2, protowire.Fixed64Type)
			dst = protowire.AppendFixed64(dst, math.Float64bits(ub))
		}
		if r.native.ok {
			dst = r.nb.appendProto(dst, r.native)
		}
	}
	return dst
}

func (r *familyRenderer) protoLabelsSize(s *aggregate.Series) int {
	n := 0
	for _, l := range s.Labels {
		n += protoLabelSize(l)
	}
	if r.node != "" {
		n += protoLabelSize(series.Label{Name: NodeLabel, Value: r.node})
	}
	return n
}

// protoLabelSize is the size of a label field of a Metric.
func protoLabelSize(l series.Label) int {
	m := 1 + protowire.SizeBytes(len(l.Name)) + 1 + protowire.SizeBytes(len(l.Value))
	return 1 + protowire.SizeBytes(m)
}

func appendProtoLabel(dst []byte, name, value string) []byte {
	m := 1 + protowire.SizeBytes(len(name)) + 1 + protowire.SizeBytes(len(value))
	dst = protowire.AppendTag(dst, metricFieldLabel, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(m))
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendString(dst, name)
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	return protowire.AppendString(dst, value)
}

// protoHistogramSize is the size of a Histogram message: count, sum,
// one bucket per finite bound (+Inf is implied by the count) and, for an
// aligned layout, the native-histogram fields of r.nb.
func (r *familyRenderer) protoHistogramSize(s *aggregate.Series) int {
	n := 1 + protowire.SizeVarint(histogramCount(r.fam, s)) + 1 + 8
	var cum uint64
	for i := range r.fam.Buckets {
		if i < len(s.Counts) {
			cum += s.Counts[i]
		}
		n += 1 + protowire.SizeBytes(protoBucketSize(cum))
	}
	if r.native.ok {
		n += r.nb.protoSize(r.native)
	}
	return n
}

// histogramCount is the observation count: the buckets' counts and
// +Inf's, the one past the last bucket.
func histogramCount(f *aggregate.Family, s *aggregate.Series) uint64 {
	var n uint64
	for _, c := range s.Counts[:min(len(f.Buckets)+1, len(s.Counts))] {
		n += c
	}
	return n
}

func protoBucketSize(cum uint64) int { return 1 + protowire.SizeVarint(cum) + 1 + 8 }
