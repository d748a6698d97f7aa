package exposition

import (
	"sort"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// NodeLabel is the label that names a series' node in cluster views.
const NodeLabel = "node"

// Families converts aggregates into metric families sorted by name. With
// nodeLabel, every series gets node="<state's node>", and families of the
// same name from several nodes are merged (their kinds must agree: a family
// whose kind differs from the first node's is left out for that node).
func Families(states []*aggregate.State, nodeLabel bool) []*dto.MetricFamily {
	byName := map[string]*dto.MetricFamily{}
	kinds := map[string]aggregate.Kind{}
	for _, st := range states {
		for i := range st.Families {
			f := &st.Families[i]
			mf := byName[f.Name]
			if mf == nil {
				mf = &dto.MetricFamily{Name: proto.String(f.Name), Type: metricType(f.Kind)}
				if f.Help != "" {
					mf.Help = proto.String(f.Help)
				}
				byName[f.Name] = mf
				kinds[f.Name] = f.Kind
			} else if kinds[f.Name] != f.Kind {
				continue
			}
			for j := range f.Series {
				mf.Metric = append(mf.Metric, metric(f, &f.Series[j], st.Node, nodeLabel))
			}
		}
	}
	if rej := rejectedFamily(states, nodeLabel); rej != nil {
		byName[rej.GetName()] = rej
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		out = append(out, mf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
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

func metric(f *aggregate.Family, s *aggregate.Series, node string, nodeLabel bool) *dto.Metric {
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

func rejectedFamily(states []*aggregate.State, nodeLabel bool) *dto.MetricFamily {
	mf := &dto.MetricFamily{
		Name: proto.String(RejectedName),
		Help: proto.String("Updates rejected by the aggregator, by reason, counted exactly once with the aggregate."),
		Type: dto.MetricType_COUNTER.Enum(),
	}
	for _, st := range states {
		reasons := make([]string, 0, len(st.Rejected))
		for r := range st.Rejected {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
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
