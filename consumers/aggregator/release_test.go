package aggregator

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
)

// The session loop releases each decoded message once folded, and the
// next decode writes its keys over the same bytes. Whatever the aggregate
// keeps of a message (series keys, metric names, labels, metadata) must be
// its own copy; and the successor hint must never hand an entry another
// series' cell. Messages of equal-length keys in changing orders, folded
// and released one after another, must leave exactly their sums.
func TestFoldedMessagesReleased(t *testing.T) {
	const node = "n1"
	a := &Aggregator{cfg: Config{Node: node}.withDefaults()}
	var err error
	if a.m, err = newMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	st, err := newSession(&aggregate.Dump{Node: node})
	if err != nil {
		t.Fatal(err)
	}
	entry := func(name, label, value string, delta int) string {
		return fmt.Sprintf(`{"name":%q,"type":"counter","help":"H.","labels":{%q:%q},"value":%d}`, name, label, value, delta)
	}
	batches := [][]string{
		{entry("aa_total", "x", "1", 1), entry("aa_total", "x", "2", 2)},
		{entry("bb_total", "y", "3", 4), entry("bb_total", "y", "4", 8)},
		{entry("aa_total", "x", "2", 16), entry("aa_total", "x", "1", 32)},
		{entry("aa_total", "x", "1", 64), entry("bb_total", "y", "4", 128), entry("aa_total", "x", "2", 256)},
		{entry("aa_total", "x", "1", 512), entry("aa_total", "x", "2", 1024)},
	}
	for i, entries := range batches {
		seq := uint64(i + 1)
		raw := fmt.Appendf(nil, `{"v":1,"node":"n1","producer":"p","seq":%d,"metrics":[%s]}`, seq, strings.Join(entries, ","))
		in := decodeItem(a, seq, raw)
		if in.reject != nil {
			t.Fatalf("batch %d rejected: %v", seq, in.reject)
		}
		st.letters = st.letters[:0]
		st.add(a, in)
		if len(st.letters) > 0 {
			t.Fatalf("batch %d: rejected entries %v", seq, st.letters[0].rej)
		}
		in.dec.Release()
		g := newGroup()
		st.seal(g, seq)
		st.live.commit(g)
	}
	want := map[string]float64{
		`aa_total{x="1"}`: 1 + 32 + 64 + 512,
		`aa_total{x="2"}`: 2 + 16 + 256 + 1024,
		`bb_total{y="3"}`: 4,
		`bb_total{y="4"}`: 8 + 128,
	}
	got := map[string]float64{}
	s := st.live.State()
	for _, f := range s.Families {
		for _, sr := range f.Series {
			got[sr.Key] = sr.Value
			if len(sr.Labels) != 1 || fmt.Sprintf(`%s{%s=%q}`, f.Name, sr.Labels[0].Name, sr.Labels[0].Value) != sr.Key {
				t.Errorf("series %s of %s has labels %v", sr.Key, f.Name, sr.Labels)
			}
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("aggregate %v, want %v", got, want)
	}
	if names := slices.Sorted(maps.Keys(st.metas)); !slices.Equal(names, []string{"aa_total", "bb_total"}) {
		t.Errorf("metadata for %q", names)
	}
	for _, name := range []string{"aa_total", "bb_total"} {
		if st.exposed[name] != name || st.perMetric[name] != 2 {
			t.Errorf("%s: exposed by %q, %d series counted", name, st.exposed[name], st.perMetric[name])
		}
	}
}
