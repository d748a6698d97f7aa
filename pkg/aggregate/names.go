package aggregate

import (
	"slices"
	"strings"
)

// ExposedNames appends to dst the names a metric of kind k called name
// takes in the exposition formats, family and sample names alike, in text,
// protobuf and OpenMetrics:
//
//   - a gauge g: g;
//   - a counter: its base b (the name without _total) and b_total, whichever
//     it is called: OpenMetrics names the family b and its samples b_total;
//   - a histogram h: h, h_bucket, h_count and h_sum.
//
// Two metrics that share one of these names cannot both be exposed:
// Prometheus would read the samples of one as the other's, or refuse the
// scrape. No _created names are taken, as no format is given a created
// timestamp.
func ExposedNames(dst []string, name string, k Kind) []string {
	switch k {
	case Histogram:
		return append(dst, name, name+"_bucket", name+"_count", name+"_sum")
	case Counter:
		if base, ok := strings.CutSuffix(name, "_total"); ok {
			return append(dst, name, base)
		}
		return append(dst, name, name+"_total")
	default:
		return append(dst, name)
	}
}

// NameIndex maps every exposed name (ExposedNames) of a set of metrics to
// the metric that takes it: one lookup per name decides whether a new
// metric can join the set.
type NameIndex map[string]string

// NewNameIndex indexes metas. Should two of them already collide (an
// aggregate written before collisions were refused), the name goes to the
// metric first in name order, so the index is the same however it is built.
func NewNameIndex(metas map[string]Meta) NameIndex {
	names := make([]string, 0, len(metas))
	for n := range metas {
		names = append(names, n)
	}
	slices.Sort(names)
	ix := make(NameIndex, 3*len(metas))
	var buf []string
	for _, n := range names {
		buf = ExposedNames(buf[:0], n, metas[n].Kind)
		for _, s := range buf {
			if _, taken := ix[s]; !taken {
				ix[s] = n
			}
		}
	}
	return ix
}

// Collision returns an exposed name of a metric of kind k called name
// that another metric of ix takes, and that metric; ok is false when there
// is none and the metric can be added.
func (ix NameIndex) Collision(name string, k Kind) (exposed, owner string, ok bool) {
	var buf [4]string
	for _, s := range ExposedNames(buf[:0], name, k) {
		if o, taken := ix[s]; taken && o != name {
			return s, o, true
		}
	}
	return "", "", false
}

// Add records the exposed names of a metric of kind k called name.
func (ix NameIndex) Add(name string, k Kind) {
	var buf [4]string
	for _, s := range ExposedNames(buf[:0], name, k) {
		if _, taken := ix[s]; !taken {
			ix[s] = name
		}
	}
}
