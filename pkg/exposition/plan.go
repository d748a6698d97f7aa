package exposition

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// ConflictsName is the family that counts, per metric (and node, in the
// cluster view), the series a view leaves out because the metric's exposed
// names collide with another family's.
const ConflictsName = "jetmetrics_exposition_conflicts"

// maxConflictSeries bounds the series of ConflictsName in one response;
// the conflicts past it are summed into one series with metric="(others)".
const maxConflictSeries = 100

// Conflict is one node's family that a view leaves out: the name it would
// expose is taken by another family the view serves.
type Conflict struct {
	// Node and Metric name the family left out; Kind and Series describe it.
	Node   string
	Metric string
	Kind   aggregate.Kind
	Series int
	// Exposed is the name both would take; With is the family that keeps
	// it (Metric itself when the nodes disagree on its type or layout),
	// WithKind its type.
	Exposed, With, WithKind string

	fam *aggregate.Family
}

func (c *Conflict) key() string {
	return c.Node + "\x00" + c.Metric + "\x00" + string(c.Kind) + "\x00" + c.With + "\x00" + c.WithKind
}

func (c *Conflict) String() string {
	if c.With == c.Metric {
		return fmt.Sprintf("%s %s of node %s left out of the view (%d series): the metric is a %s on the nodes kept, which outnumber or precede it",
			c.Kind, c.Metric, c.Node, c.Series, c.WithKind)
	}
	return fmt.Sprintf("%s %s of node %s left out of the view (%d series): the name %s it exposes is %s %s's",
		c.Kind, c.Metric, c.Node, c.Series, c.Exposed, c.WithKind, c.With)
}

// variant is one way a family name is held: by the nodes whose families of
// that name agree on kind and bucket layout.
type variant struct {
	of outFamily
	// rank orders variants: held by more nodes first, then the one whose
	// lowest node sorts first, then by name.
	nodes int
	first string
}

// reservedNames maps the exposed names of families served beside the
// aggregates' to their owner and its type.
type reservedNames map[string]reservedOwner

type reservedOwner struct{ name, kind string }

func (r reservedNames) addDTO(mf *dto.MetricFamily) {
	name := mf.GetName()
	owner := reservedOwner{name, strings.ToLower(mf.GetType().String())}
	var names []string
	switch mf.GetType() {
	case dto.MetricType_COUNTER:
		names = aggregate.ExposedNames(nil, name, aggregate.Counter)
	case dto.MetricType_HISTOGRAM:
		names = aggregate.ExposedNames(nil, name, aggregate.Histogram)
	case dto.MetricType_GAUGE_HISTOGRAM:
		names = append(aggregate.ExposedNames(nil, name, aggregate.Histogram), name+"_gcount", name+"_gsum")
	case dto.MetricType_SUMMARY:
		names = []string{name, name + "_count", name + "_sum"}
	default:
		names = []string{name}
	}
	for _, s := range names {
		if _, ok := r[s]; !ok {
			r[s] = owner
		}
	}
}

// viewReserved are the names of the families every view serves beside the
// aggregates'.
func viewReserved() reservedNames {
	r := reservedNames{}
	r.addDTO(&dto.MetricFamily{Name: proto.String(RejectedName), Type: dto.MetricType_COUNTER.Enum()})
	r.addDTO(&dto.MetricFamily{Name: proto.String(ConflictsName), Type: dto.MetricType_GAUGE.Enum()})
	return r
}

// keep is f as resolve takes it: nil to keep all; a name of "" asks about
// the node alone.
func (f Filter) keep() func(node, name string) bool {
	if len(f.Nodes) == 0 && len(f.Names) == 0 {
		return nil
	}
	return func(node, name string) bool {
		return (len(f.Nodes) == 0 || slices.Contains(f.Nodes, node)) && (name == "" || len(f.Names) == 0 || slices.Contains(f.Names, name))
	}
}

// resolve decides which families of states a view serves, whatever the
// states hold, so that no two families served share an exposed name
// (aggregate.ExposedNames) and every node serves the same families for the
// same states, in whatever order they come:
//
//   - the families served beside the aggregates' (reserved: the process's
//     own, the rejections, the conflicts) keep their names;
//   - the nodes' families of one name are grouped into variants by kind and
//     bucket layout; variants are taken held by most nodes first, ties to
//     the one whose lowest node name sorts first, then by name;
//   - a variant whose name, or any name it exposes, is taken already is
//     left out, each of its nodes' families a Conflict.
//
// keep, when not nil, selects the nodes and names served; it applies after
// the decision, so a filtered view serves what the whole view serves of
// them. Members of a family come in node order; families and conflicts are
// sorted by name, conflicts then by node.
func resolve(states []*aggregate.State, reserved reservedNames, keep func(node, name string) bool) ([]outFamily, []Conflict) {
	sorted := slices.Clone(states)
	slices.SortStableFunc(sorted, func(a, b *aggregate.State) int { return strings.Compare(a.Node, b.Node) })
	byName := map[string][]*variant{}
	var all []*variant
	for _, st := range sorted {
		for i := range st.Families {
			fam := &st.Families[i]
			if len(fam.Series) == 0 {
				continue
			}
			var v *variant
			for _, c := range byName[fam.Name] {
				if c.of.members[0].fam.Compatible(fam.Meta) == nil {
					v = c
					break
				}
			}
			if v == nil {
				v = &variant{of: outFamily{name: fam.Name}, first: st.Node}
				byName[fam.Name] = append(byName[fam.Name], v)
				all = append(all, v)
			}
			v.of.members = append(v.of.members, member{state: st, fam: fam})
			v.nodes++
		}
	}
	slices.SortFunc(all, func(a, b *variant) int {
		return cmp.Or(cmp.Compare(b.nodes, a.nodes), strings.Compare(a.first, b.first), strings.Compare(a.of.name, b.of.name))
	})
	taken := make(map[string]int, 4*len(all)) // exposed name -> index in all
	var out []outFamily
	var conflicts []Conflict
	var buf []string
	for i, v := range all {
		m0 := v.of.members[0].fam
		buf = aggregate.ExposedNames(buf[:0], v.of.name, m0.Kind)
		var exposed, with, withKind string
		for _, s := range buf {
			if o, ok := reserved[s]; ok {
				exposed, with, withKind = s, o.name, o.kind
				break
			}
			if j, ok := taken[s]; ok {
				w := all[j]
				exposed, with, withKind = s, w.of.name, string(w.of.members[0].fam.Kind)
				if w.of.name == v.of.name && m0.Kind == w.of.members[0].fam.Kind {
					withKind += " of other buckets"
				}
				break
			}
		}
		if with == "" {
			for _, s := range buf {
				taken[s] = i
			}
			members := v.of.members[:0:0]
			for _, m := range v.of.members {
				if keep == nil || keep(m.state.Node, v.of.name) {
					members = append(members, m)
				}
			}
			if len(members) > 0 {
				out = append(out, outFamily{name: v.of.name, members: members})
			}
			continue
		}
		for _, m := range v.of.members {
			if keep != nil && !keep(m.state.Node, "") {
				continue
			}
			conflicts = append(conflicts, Conflict{Node: m.state.Node, Metric: v.of.name, Kind: m.fam.Kind, Series: len(m.fam.Series),
				Exposed: exposed, With: with, WithKind: withKind, fam: m.fam})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	slices.SortFunc(conflicts, func(a, b Conflict) int {
		return cmp.Or(strings.Compare(a.Metric, b.Metric), strings.Compare(a.Node, b.Node), strings.Compare(string(a.Kind), string(b.Kind)))
	})
	return out, conflicts
}

// conflictsFamily counts the series conflicts leave out, per metric and,
// with nodeLabel, node; nil when there are none.
func conflictsFamily(conflicts []Conflict, nodeLabel bool) *dto.MetricFamily {
	if len(conflicts) == 0 {
		return nil
	}
	type key struct{ node, metric string }
	counts := map[key]int{}
	var keys []key
	for _, c := range conflicts {
		k := key{metric: c.Metric}
		if nodeLabel {
			k.node = c.Node
		}
		if _, ok := counts[k]; !ok {
			keys = append(keys, k)
		}
		counts[k] += c.Series
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(strings.Compare(a.metric, b.metric), strings.Compare(a.node, b.node))
	})
	mf := &dto.MetricFamily{
		Name: proto.String(ConflictsName),
		Help: proto.String("Series of a metric left out of this view because a name it exposes is another family's, or the nodes disagree on its type or buckets (docs/design.md)."),
		Type: dto.MetricType_GAUGE.Enum(),
	}
	others := map[string]int{}
	var otherNodes []string
	for i, k := range keys {
		if i >= maxConflictSeries-1 && len(keys) > maxConflictSeries {
			if _, ok := others[k.node]; !ok {
				otherNodes = append(otherNodes, k.node)
			}
			others[k.node] += counts[k]
			continue
		}
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label: labelPairs([]series.Label{{Name: "metric", Value: k.metric}}, k.node, nodeLabel),
			Gauge: &dto.Gauge{Value: proto.Float64(float64(counts[k]))},
		})
	}
	slices.Sort(otherNodes)
	for _, node := range otherNodes {
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label: labelPairs([]series.Label{{Name: "metric", Value: "(others)"}}, node, nodeLabel),
			Gauge: &dto.Gauge{Value: proto.Float64(float64(others[node]))},
		})
	}
	return mf
}
