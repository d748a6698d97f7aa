package producers_test

import (
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
)

// An empty label value is no label, as on the node and in Prometheus: the
// SDK sends the series without it, so one producer's With("GET", "") and
// another's metric without the env label are one series.
func TestEmptyLabelValueIsNoLabel(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	v, err := p.NewCounterVec(producers.Opts{Name: "req_total"}, "method", "env")
	if err != nil {
		t.Fatal(err)
	}
	v.MustWith("GET", "").Add(2)
	v.MustWith("GET", "prod").Inc()
	v.MustWith("", "").Add(5)
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	msgs := readAll(t, e.stream)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	got := map[string]float64{}
	for _, m := range msgs[0].batch.Metrics {
		for name, value := range m.Labels {
			if value == "" {
				t.Errorf("entry %+v sends label %s with an empty value", m, name)
			}
		}
		labels := make([]series.Label, 0, len(m.Labels))
		for name, value := range m.Labels {
			labels = append(labels, series.Label{Name: name, Value: value})
		}
		series.SortLabels(labels)
		got[series.Key(m.Name, labels)] += m.Value
	}
	want := map[string]float64{`req_total{method="GET"}`: 2, `req_total{env="prod",method="GET"}`: 1, "req_total": 5}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v (sent %v)", k, got[k], w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("sent %v, want %v", got, want)
	}
	// The node reads the message into the same series.
	stored := e.rawMessage(t, msgs[0].streamSeq)
	d, err := streams.Decode(stored, "node1", series.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range d.Entries {
		if _, ok := want[en.Key]; !ok || en.Reject != nil {
			t.Errorf("node decodes series %q (%v), want one of %v", en.Key, en.Reject, want)
		}
	}
}

// rawMessage is the body of the stream's message at seq.
func (e *env) rawMessage(t *testing.T, seq uint64) []byte {
	t.Helper()
	m, err := e.stream.GetMsg(testCtx(t), seq)
	if err != nil {
		t.Fatalf("get message %d: %v", seq, err)
	}
	return m.Data
}
