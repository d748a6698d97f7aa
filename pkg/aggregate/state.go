package aggregate

import (
	"fmt"
	"slices"

	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// Kind is a metric's type.
type Kind string

// The kinds of metric an aggregate holds.
const (
	Counter   Kind = "counter"
	Gauge     Kind = "gauge"
	Histogram Kind = "histogram"
)

// Meta is what is fixed about a metric on first sight: its kind, help text
// and, for histograms, the bucket layout (upper bounds without +Inf).
type Meta struct {
	Kind    Kind      `json:"type"`
	Help    string    `json:"help,omitempty"`
	Buckets []float64 `json:"buckets,omitempty"`
}

// Compatible reports why m and other cannot describe the same metric, or
// nil. Help text may differ; the first one sticks.
func (m Meta) Compatible(other Meta) error {
	if m.Kind != other.Kind {
		return fmt.Errorf("metric is a %s, not a %s", m.Kind, other.Kind)
	}
	if m.Kind == Histogram && !slices.Equal(m.Buckets, other.Buckets) {
		return fmt.Errorf("histogram buckets %v differ from the metric's layout %v", other.Buckets, m.Buckets)
	}
	return nil
}

// State is a node's whole aggregate at one stream position.
type State struct {
	// Node is the node whose aggregate this is.
	Node string
	// Mark is the last applied stream sequence: the state's version.
	Mark uint64
	// Families are sorted by name; each family's series by key.
	Families []Family
	// Rejected counts rejected updates by reason, exactly once.
	Rejected map[string]uint64
}

// Family is one metric and its series.
type Family struct {
	Name string
	Meta
	Series []Series
}

// Series is one labelled series of a family.
type Series struct {
	// Key is the canonical series key (pkg/series).
	Key    string
	Labels []series.Label
	// Value is a counter's total or a gauge's value.
	Value float64
	// Counts are a histogram's per-bucket (not cumulative) counts, one per
	// bucket plus +Inf; their sum is the histogram's count.
	Counts []uint64
	// Sum is a histogram's sum of observations.
	Sum float64
}

// Count is a histogram series' observation count.
func (s *Series) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// SeriesCount is the number of series in the state.
func (st *State) SeriesCount() int {
	n := 0
	for i := range st.Families {
		n += len(st.Families[i].Series)
	}
	return n
}
