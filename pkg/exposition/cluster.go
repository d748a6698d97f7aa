package exposition

import (
	"encoding/json"
	"io"
	"math"
	"slices"
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
}

type jsonFamily struct {
	Name    string       `json:"name"`
	Type    string       `json:"type"`
	Help    string       `json:"help,omitempty"`
	Buckets []jsonFloat  `json:"buckets,omitempty"`
	Series  []jsonSeries `json:"series"`
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

// WriteJSON writes states as one JSON document that keeps every node,
// family, series and label: families merged by name across nodes, each
// series naming its node.
func WriteJSON(w io.Writer, nodes []NodeInfo, states []*aggregate.State) error {
	view := jsonView{Nodes: nodes, Metrics: []jsonFamily{}}
	index := map[string]int{}
	for _, st := range states {
		for _, fam := range st.Families {
			i, ok := index[fam.Name]
			if !ok {
				jf := jsonFamily{Name: fam.Name, Type: string(fam.Kind), Help: fam.Help}
				for _, b := range fam.Buckets {
					jf.Buckets = append(jf.Buckets, jsonFloat(b))
				}
				view.Metrics = append(view.Metrics, jf)
				i = len(view.Metrics) - 1
				index[fam.Name] = i
			}
			jf := &view.Metrics[i]
			for _, s := range fam.Series {
				js := jsonSeries{Node: st.Node, Labels: make(map[string]string, len(s.Labels))}
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
	}
	slices.SortFunc(view.Metrics, func(a, b jsonFamily) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	enc := json.NewEncoder(w)
	return enc.Encode(view)
}
