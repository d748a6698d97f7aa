package streams

import (
	"encoding/json"

	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// wireMetric mirrors Metric with a pointer value so a missing value is told
// apart from zero.
type wireMetric struct {
	Name    string            `json:"name"`
	Type    Kind              `json:"type"`
	Help    string            `json:"help"`
	Labels  map[string]string `json:"labels"`
	Value   *float64          `json:"value"`
	Buckets []float64         `json:"buckets"`
	Counts  []uint64          `json:"counts"`
	Sum     float64           `json:"sum"`
}

type wireBatch struct {
	Version  *int         `json:"v"`
	Node     string       `json:"node"`
	Producer string       `json:"producer"`
	Seq      uint64       `json:"seq"`
	Time     int64        `json:"time"`
	Metrics  []wireMetric `json:"metrics"`
}

// decodeReference is Decode written with encoding/json. It is the
// definition of Decode's outcome for every input: the scanner in
// decode_scan.go only decides messages it is certain it reads the same way,
// and hands everything else to this function.
func decodeReference(data []byte, node string, limits series.Limits) (*Decoded, error) {
	var w wireBatch
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, reject(ReasonUndecodable, "decode batch: %w", err)
	}
	if err := checkEnvelope(&w, node); err != nil {
		return nil, err
	}
	d := &Decoded{Node: w.Node, Producer: w.Producer, Seq: w.Seq, Time: w.Time, Entries: make([]Entry, len(w.Metrics))}
	var labels []series.Label
	for i := range w.Metrics {
		labels = checkEntry(&d.Entries[i], &w.Metrics[i], limits, labels[:0])
	}
	return d, nil
}

func checkEntry(e *Entry, m *wireMetric, limits series.Limits, labels []series.Label) []series.Label {
	e.Metric = Metric{Name: m.Name, Type: m.Type, Help: m.Help, Buckets: m.Buckets, Counts: m.Counts, Sum: m.Sum}
	if m.Value != nil {
		e.Value = *m.Value
	}
	for k, v := range m.Labels {
		labels = append(labels, series.Label{Name: k, Value: v})
	}
	series.SortLabels(labels)
	if e.Reject = checkMetric(&e.Metric, m.Value != nil, labels, limits); e.Reject != nil {
		return labels
	}
	e.Key = series.Key(m.Name, labels)
	return labels
}
