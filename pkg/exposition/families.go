package exposition

import (
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// NodeLabel is the label that names a series' node in cluster views.
const NodeLabel = "node"

// Families converts aggregates into metric families sorted by name: the
// families a Handler without a gatherer serves for states. With nodeLabel,
// every series gets node="<state's node>", and families of the same name
// from several nodes are merged. Families that cannot be served beside the
// others (see resolve) are left out and counted in ConflictsName.
func Families(states []*aggregate.State, nodeLabel bool) []*dto.MetricFamily {
	reserved := viewReserved()
	fams, conflicts := resolve(states, reserved, nil)
	out := make([]*dto.MetricFamily, 0, len(fams)+2)
	for i := range fams {
		out = append(out, familyDTO(&fams[i], nodeLabel))
	}
	if rej := rejectedFamily(states, nodeLabel, nil); rej != nil {
		out = append(out, rej)
	}
	if cf := conflictsFamily(conflicts, nodeLabel); cf != nil {
		out = append(out, cf)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// familyDTO builds the family of the aggregate's members of of.
func familyDTO(of *outFamily, nodeLabel bool) *dto.MetricFamily {
	first := of.members[0].fam
	mf := &dto.MetricFamily{Name: proto.String(of.name), Type: metricType(first.Kind)}
	if first.Help != "" {
		mf.Help = proto.String(first.Help)
	}
	for _, m := range of.members {
		var native nativeLayout
		if m.fam.Kind == aggregate.Histogram {
			native = nativeLayoutOf(m.fam.Buckets)
		}
		for j := range m.fam.Series {
			mf.Metric = append(mf.Metric, metric(m.fam, &m.fam.Series[j], m.state.Node, nodeLabel, native))
		}
	}
	return mf
}

func metricType(k aggregate.Kind) *dto.MetricType {
	switch k {
	case aggregate.Counter:
		return dto.MetricType_COUNTER.Enum()
	case aggregate.Histogram:
		return dto.MetricType_HISTOGRAM.Enum()
	default:
		return dto.MetricType_GAUGE.Enum()
	}
}

// metric builds one series; native is a histogram family's native layout.
func metric(f *aggregate.Family, s *aggregate.Series, node string, nodeLabel bool, native nativeLayout) *dto.Metric {
	m := &dto.Metric{Label: labelPairs(s.Labels, node, nodeLabel)}
	switch f.Kind {
	case aggregate.Counter:
		m.Counter = &dto.Counter{Value: proto.Float64(s.Value)}
	case aggregate.Gauge:
		m.Gauge = &dto.Gauge{Value: proto.Float64(s.Value)}
	case aggregate.Histogram:
		h := &dto.Histogram{SampleSum: proto.Float64(s.Sum)}
		var cum uint64
		h.Bucket = make([]*dto.Bucket, 0, len(f.Buckets))
		for i, ub := range f.Buckets {
			if i < len(s.Counts) {
				cum += s.Counts[i]
			}
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(ub), CumulativeCount: proto.Uint64(cum)})
		}
		if n := len(f.Buckets); n < len(s.Counts) {
			cum += s.Counts[n]
		}
		// The +Inf bucket is implied by the count, as client_golang does.
		h.SampleCount = proto.Uint64(cum)
		if native.ok {
			var nb nativeBuckets
			nb.fill(native, s.Counts, len(f.Buckets))
			nb.setDTO(h, native)
		}
		m.Histogram = h
	}
	return m
}

func labelPairs(labels []series.Label, node string, nodeLabel bool) []*dto.LabelPair {
	n := len(labels)
	if nodeLabel {
		n++
	}
	out := make([]*dto.LabelPair, 0, n)
	added := !nodeLabel
	for _, l := range labels {
		if !added && l.Name > NodeLabel {
			out = append(out, &dto.LabelPair{Name: proto.String(NodeLabel), Value: proto.String(node)})
			added = true
		}
		out = append(out, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
	}
	if !added {
		out = append(out, &dto.LabelPair{Name: proto.String(NodeLabel), Value: proto.String(node)})
	}
	return out
}

// RejectedName is the family of rejected updates, counted exactly once in
// the aggregate.
const RejectedName = "jetmetrics_rejected_total"

// rejectedFamily counts each state's rejections by reason: every reason in
// reasons, at 0 before its first, and every other reason the state holds;
// states in node order, so every node serves the same family.
func rejectedFamily(states []*aggregate.State, nodeLabel bool, reasons []string) *dto.MetricFamily {
	mf := &dto.MetricFamily{
		Name: proto.String(RejectedName),
		Help: proto.String("Updates rejected by the aggregator, by reason, counted exactly once with the aggregate."),
		Type: dto.MetricType_COUNTER.Enum(),
	}
	states = slices.Clone(states)
	slices.SortStableFunc(states, func(a, b *aggregate.State) int { return strings.Compare(a.Node, b.Node) })
	for _, st := range states {
		for _, r := range rejectionReasons(st, reasons) {
			mf.Metric = append(mf.Metric, &dto.Metric{
				Label:   labelPairs([]series.Label{{Name: "reason", Value: r}}, st.Node, nodeLabel),
				Counter: &dto.Counter{Value: proto.Float64(float64(st.Rejected[r]))},
			})
		}
	}
	if len(mf.Metric) == 0 {
		return nil
	}
	return mf
}

// rejectionReasons are the reasons shown for st, sorted: every one of
// reasons and every other one st counts.
func rejectionReasons(st *aggregate.State, reasons []string) []string {
	all := slices.Clone(reasons)
	for r := range st.Rejected {
		if !slices.Contains(reasons, r) {
			all = append(all, r)
		}
	}
	sort.Strings(all)
	return all
}
