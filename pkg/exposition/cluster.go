package exposition

import (
	"encoding/json"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
)

// Filter selects nodes and metric names; an empty list selects all.
type Filter struct {
	Nodes []string
	Names []string
}

// Apply returns the states and families the filter selects. The input is
// not modified.
func (f Filter) Apply(states []*aggregate.State) []*aggregate.State {
	if len(f.Nodes) == 0 && len(f.Names) == 0 {
		return states
	}
	out := make([]*aggregate.State, 0, len(states))
	for _, st := range states {
		if len(f.Nodes) > 0 && !slices.Contains(f.Nodes, st.Node) {
			continue
		}
		if len(f.Names) == 0 {
			out = append(out, st)
			continue
		}
		cp := *st
		cp.Families = nil
		for _, fam := range st.Families {
			if slices.Contains(f.Names, fam.Name) {
				cp.Families = append(cp.Families, fam)
			}
		}
		out = append(out, &cp)
	}
	return out
}

// Related returns the metric names, among those of kinds (each a node's
// metrics and their kinds), that a view filtered by f's names depends on:
// the names f selects and every metric linked to one by a shared exposed
// name (aggregate.ExposedNames), directly or through others. Which of two
// colliding families a view serves depends on both (see resolve), so a
// view built from these families alone serves of f's names what the
// whole view does. It is nil when f selects every name.
func (f Filter) Related(kinds ...map[string]aggregate.Kind) map[string]bool {
	if len(f.Names) == 0 {
		return nil
	}
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		p, ok := parent[x]
		if !ok || p == x {
			return x
		}
		r := find(p)
		parent[x] = r
		return r
	}
	union := func(a, b string) {
		if ra, rb := find(a), find(b); ra != rb {
			parent[ra] = rb
		}
	}
	var exposed []string
	for _, m := range kinds {
		for name, k := range m {
			exposed = aggregate.ExposedNames(exposed[:0], name, k)
			for _, e := range exposed {
				union(name, e)
			}
		}
	}
	roots := map[string]bool{}
	for _, n := range f.Names {
		roots[find(n)] = true
	}
	out := map[string]bool{}
	for _, n := range f.Names {
		out[n] = true
	}
	for _, m := range kinds {
		for name := range m {
			if roots[find(name)] {
				out[name] = true
			}
		}
	}
	return out
}

// StaticGatherer gathers families computed beforehand, for one request.
type StaticGatherer []*dto.MetricFamily

var _ prometheus.Gatherer = StaticGatherer(nil)

// Gather implements prometheus.Gatherer.
func (g StaticGatherer) Gather() ([]*dto.MetricFamily, error) { return g, nil }

// NodeInfo describes one node of a cluster view.
type NodeInfo struct {
	Node       string    `json:"node"`
	Version    uint64    `json:"version"`
	Generated  time.Time `json:"generated_at"`
	AgeSeconds float64   `json:"age_seconds"`
	Local      bool      `json:"local"`
}

type jsonView struct {
	Nodes   []NodeInfo   `json:"nodes"`
	Metrics []jsonFamily `json:"metrics"`
	// Conflicts are the nodes' families the view leaves out, each whole.
	Conflicts []jsonConflict `json:"conflicts"`
	// Rejected are jetmetrics_rejected_total's series: per node and reason.
	Rejected []jsonRejected `json:"rejected"`
}

type jsonRejected struct {
	Node   string `json:"node"`
	Reason string `json:"reason"`
	Value  uint64 `json:"value"`
}

type jsonFamily struct {
	Name    string       `json:"name"`
	Type    string       `json:"type"`
	Help    string       `json:"help,omitempty"`
	Buckets []jsonFloat  `json:"buckets,omitempty"`
	Series  []jsonSeries `json:"series"`
}

// jsonConflict is one node's family left out, and why.
type jsonConflict struct {
	Node   string `json:"node"`
	Metric string `json:"metric"`
	// Exposed is the name the family would take, which With (of type
	// WithType) keeps.
	Exposed  string     `json:"exposed_name"`
	With     string     `json:"with"`
	WithType string     `json:"with_type"`
	Family   jsonFamily `json:"family"`
}

type jsonSeries struct {
	Node   string            `json:"node"`
	Labels map[string]string `json:"labels"`
	Value  *jsonFloat        `json:"value,omitempty"`
	// Counts are per bucket, not cumulative, the last one for +Inf.
	Counts []uint64   `json:"counts,omitempty"`
	Count  *uint64    `json:"count,omitempty"`
	Sum    *jsonFloat `json:"sum,omitempty"`
}

// jsonFloat writes ±Inf and NaN as strings, as Prometheus's own API does.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	}
	return json.Marshal(v)
}

// WriteJSON writes the nodes and names of states that f selects as one
// JSON document that keeps every node, family, series and label: the
// families a Handler serves for states, merged by name across nodes, each
// series naming its node, and under "conflicts" every node's family the
// view leaves out (see resolve), whole.
func WriteJSON(w io.Writer, nodes []NodeInfo, states []*aggregate.State, f Filter) error {
	_, err := writeJSON(w, nodes, states, f, nil, nil)
	return err
}

// WriteJSON is the package's WriteJSON, logging each conflict once as the
// handler's other views do.
//
// With NodeLabel, it adds the gatherer's counter, gauge and untyped
// families whose series carry a node label (such as the volume gauges of
// the node that polled each), the label as the series' node, as the
// Prometheus formats serve them.
func (h *Handler) WriteJSON(w io.Writer, nodes []NodeInfo, states []*aggregate.State, f Filter) error {
	var gathered []*dto.MetricFamily
	if h.cfg.Gatherer != nil && h.cfg.NodeLabel {
		var err error
		if gathered, err = h.cfg.Gatherer.Gather(); err != nil {
			h.logf("error gathering metrics: %v", err)
		}
	}
	conflicts, err := writeJSON(w, nodes, states, f, h.cfg.Reasons, gathered)
	h.logConflicts(conflicts, f.keep() == nil)
	return err
}

func writeJSON(w io.Writer, nodes []NodeInfo, states []*aggregate.State, f Filter, reasons []string, gathered []*dto.MetricFamily) ([]Conflict, error) {
	keep := f.keep()
	reserved := viewReserved()
	for _, mf := range gathered {
		reserved.addDTO(mf)
	}
	fams, conflicts := resolve(states, reserved, keep)
	view := jsonView{Nodes: nodes, Metrics: make([]jsonFamily, 0, len(fams)), Conflicts: []jsonConflict{}}
	for _, of := range fams {
		jf := newJSONFamily(of.name, &of.members[0].fam.Meta)
		for _, m := range of.members {
			jf.addSeries(m.state.Node, m.fam)
		}
		view.Metrics = append(view.Metrics, jf)
	}
	for _, mf := range gathered {
		if jf, ok := gatheredJSON(mf, keep); ok {
			view.Metrics = append(view.Metrics, jf)
		}
	}
	slices.SortStableFunc(view.Metrics, func(a, b jsonFamily) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range conflicts {
		if keep != nil && !keep(c.Node, c.Metric) {
			continue
		}
		jf := newJSONFamily(c.Metric, &c.fam.Meta)
		jf.addSeries(c.Node, c.fam)
		view.Conflicts = append(view.Conflicts, jsonConflict{Node: c.Node, Metric: c.Metric, Exposed: c.Exposed, With: c.With, WithType: c.WithKind, Family: jf})
	}
	view.Rejected = []jsonRejected{}
	if len(f.Names) == 0 || slices.Contains(f.Names, RejectedName) {
		for _, st := range states {
			if keep != nil && !keep(st.Node, "") {
				continue
			}
			for _, r := range rejectionReasons(st, reasons) {
				view.Rejected = append(view.Rejected, jsonRejected{Node: st.Node, Reason: r, Value: st.Rejected[r]})
			}
		}
		slices.SortStableFunc(view.Rejected, func(a, b jsonRejected) int { return strings.Compare(a.Node, b.Node) })
	}
	return conflicts, json.NewEncoder(w).Encode(view)
}

func newJSONFamily(name string, m *aggregate.Meta) jsonFamily {
	jf := jsonFamily{Name: name, Type: string(m.Kind), Help: m.Help, Series: []jsonSeries{}}
	for _, b := range m.Buckets {
		jf.Buckets = append(jf.Buckets, jsonFloat(b))
	}
	return jf
}

func (jf *jsonFamily) addSeries(node string, fam *aggregate.Family) {
	for _, s := range fam.Series {
		js := jsonSeries{Node: node, Labels: make(map[string]string, len(s.Labels))}
		for _, l := range s.Labels {
			js.Labels[l.Name] = l.Value
		}
		if fam.Kind == aggregate.Histogram {
			count, sum := s.Count(), jsonFloat(s.Sum)
			js.Counts, js.Count, js.Sum = s.Counts, &count, &sum
		} else {
			v := jsonFloat(s.Value)
			js.Value = &v
		}
		jf.Series = append(jf.Series, js)
	}
}

// gatheredJSON is the JSON family of a gathered counter, gauge or untyped
// family's series that carry a node label and that keep selects.
func gatheredJSON(mf *dto.MetricFamily, keep func(node, name string) bool) (jsonFamily, bool) {
	kind := map[dto.MetricType]string{dto.MetricType_COUNTER: "counter", dto.MetricType_GAUGE: "gauge", dto.MetricType_UNTYPED: "untyped"}[mf.GetType()]
	if kind == "" {
		return jsonFamily{}, false
	}
	jf := jsonFamily{Name: mf.GetName(), Type: kind, Help: mf.GetHelp(), Series: []jsonSeries{}}
	for _, m := range mf.GetMetric() {
		js := jsonSeries{Labels: map[string]string{}}
		for _, l := range m.GetLabel() {
			if l.GetName() == "node" {
				js.Node = l.GetValue()
				continue
			}
			js.Labels[l.GetName()] = l.GetValue()
		}
		if js.Node == "" || (keep != nil && !keep(js.Node, jf.Name)) {
			continue
		}
		v := jsonFloat(m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue())
		js.Value = &v
		jf.Series = append(jf.Series, js)
	}
	return jf, len(jf.Series) > 0
}
