package aggregator

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// An update that would take a counter's total or a histogram's sum past
// float64's range is rejected alone, as overflow, and dead-lettered with
// its entry index; the rest of its batch applies, and what Redis holds is
// what the aggregator holds.
func TestOverflowRejected(t *testing.T) {
	ctx := context.Background()
	rdb := fuzzRedis(t)
	const node = "n1"
	a := &Aggregator{cfg: Config{Node: node}.withDefaults()}
	var err error
	if a.m, err = newMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	store := aggregate.NewStore(rdb, "", node)
	st, err := newSession(&aggregate.Dump{Node: node})
	if err != nil {
		t.Fatal(err)
	}
	batch := func(seq int, entries string) {
		t.Helper()
		raw := fmt.Appendf(nil, `{"v":1,"node":"n1","producer":"p","seq":%d,"metrics":[%s]}`, seq, entries)
		st.letters = st.letters[:0]
		st.add(a, decodeItem(a, uint64(seq), raw))
		g := newGroup()
		st.seal(g, uint64(seq))
		if err := store.Apply(ctx, g.u); err != nil {
			t.Fatal(err)
		}
		st.live.commit(g)
	}
	const big = `{"name":"big_total","type":"counter","value":1e308}`
	const hist = `{"name":"h","type":"histogram","buckets":[1],"counts":[0,1],"sum":1e308}`
	const ok = `{"name":"ok_total","type":"counter","value":1}`
	batch(1, big+","+hist)
	batch(2, big+","+ok+","+hist+","+big)

	if len(st.letters) != 1 || st.letters[0].rej.Reason != streams.ReasonOverflow || !slices.Equal(st.letters[0].entries, []int{0, 2, 3}) {
		t.Fatalf("dead letters %+v, want one overflow letter for entries 0, 2, 3", st.letters)
	}
	got, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := sameState(st.live.State(), got); diff != "" {
		t.Fatalf("in memory and in Redis differ: %s", diff)
	}
	d, err := store.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := sameDump(st.live.Held().Dump(), d); diff != "" {
		t.Fatalf("dump from memory and from Redis differ: %s", diff)
	}
	want := map[string]float64{"big_total": 1e308, "h": 1e308, "ok_total": 1}
	for _, f := range got.Families {
		s := f.Series[0]
		v := s.Value
		if f.Kind == aggregate.Histogram {
			v = s.Sum
			if s.Count() != 1 {
				t.Errorf("histogram %s counts %v, want the first batch's only", f.Name, s.Counts)
			}
		}
		if v != want[f.Name] {
			t.Errorf("%s = %v, want %v", f.Name, v, want[f.Name])
		}
	}
	if got.Rejected["overflow"] != 3 {
		t.Errorf("rejected %v, want 3 overflow", got.Rejected)
	}
}
