package streams_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// A snapshot written straight from an aggregate held in memory decodes to
// the dump Redis would hold for it, label values that need escaping
// included, with the headers SnapshotMsg writes.
func TestSnapshotMsgOf(t *testing.T) {
	values := []string{"plain", `quo"te`, `back\slash`, "new\nline", "tab\tand\x01ctl", "ünï©ødé", "<&>", "\u2028", "a|b1}"}
	var counters, hists []aggregate.Series
	for i, v := range values {
		labels := []series.Label{{Name: "v", Value: v}}
		counters = append(counters, aggregate.Series{Key: series.Key("c_total", labels), Labels: labels, Value: float64(i) + 0.1})
		hists = append(hists, aggregate.Series{Key: series.Key("h", labels), Labels: labels, Counts: []uint64{uint64(i), 0, 3}, Sum: 1e300 / float64(i+1)})
	}
	st := &aggregate.State{Node: "n-1", Mark: 42, Rejected: map[string]uint64{"invalid_value": 3},
		Families: []aggregate.Family{
			{Name: "c_total", Meta: aggregate.Meta{Kind: aggregate.Counter, Help: `help "quoted" \ here`}, Series: counters},
			{Name: "g", Meta: aggregate.Meta{Kind: aggregate.Gauge}, Series: []aggregate.Series{{Key: "g", Value: -0.5}}},
			{Name: "h", Meta: aggregate.Meta{Kind: aggregate.Histogram, Buckets: []float64{0.5, 1}}, Series: hists},
		}}
	h := aggregate.Held{State: st, Producers: map[string]uint64{"p-1": 7, "p\"2": 9},
		Metas: map[string]aggregate.Meta{"c_total": st.Families[0].Meta, "g": st.Families[1].Meta, "h": st.Families[2].Meta, "described_only": {Kind: aggregate.Gauge}}}

	gen := time.UnixMilli(1_700_000_000_123)
	msg, fields, err := streams.SnapshotMsgOf("jetmetrics.snap.n-1", h, gen, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := h.Dump()
	if fields != len(want.Series) {
		t.Errorf("fields = %d, want %d", fields, len(want.Series))
	}
	got, err := streams.DecodeSnapshot(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Node != want.Node || !maps.Equal(got.Marks, want.Marks) || !maps.Equal(got.Meta, want.Meta) ||
		!maps.Equal(got.Series, want.Series) || !maps.Equal(got.Rejected, want.Rejected) {
		t.Fatalf("decoded %+v\nwant %+v", got, want)
	}
	ref, err := streams.SnapshotMsg("jetmetrics.snap.n-1", want, gen, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for k := range ref.Header {
		if msg.Header.Get(k) != ref.Header.Get(k) {
			t.Errorf("header %s = %q, want %q", k, msg.Header.Get(k), ref.Header.Get(k))
		}
	}
	// The state it decodes to is the one held.
	back, err := got.State()
	if err != nil {
		t.Fatal(err)
	}
	if back.Mark != st.Mark || len(back.Families) != len(st.Families) || back.SeriesCount() != st.SeriesCount() {
		t.Fatalf("state back: mark %d, %d families, %d series", back.Mark, len(back.Families), back.SeriesCount())
	}
	for _, s := range back.Families[2].Series {
		if s.Count() != uint64(3+slices.Index(values, s.Labels[0].Value)) {
			t.Errorf("histogram %s counts %v", s.Key, s.Counts)
		}
	}
}
