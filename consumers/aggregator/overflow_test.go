package aggregator

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
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

// folder applies batches to a fresh aggregate on a real redis-server, as
// the aggregator does, and returns the dead letters of each.
type folder struct {
	t     *testing.T
	a     *Aggregator
	st    *sessionState
	store *aggregate.Store
}

func newFolder(t *testing.T) *folder {
	rdb := fuzzRedis(t)
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
	return &folder{t: t, a: a, st: st, store: aggregate.NewStore(rdb, "", node)}
}

func (f *folder) batch(seq int, entries ...string) []deadLetter {
	f.t.Helper()
	raw := fmt.Appendf(nil, `{"v":1,"node":"n1","producer":"p","seq":%d,"metrics":[%s]}`, seq, strings.Join(entries, ","))
	f.st.letters = f.st.letters[:0]
	f.st.add(f.a, decodeItem(f.a, uint64(seq), raw))
	g := newGroup()
	f.st.seal(g, uint64(seq))
	if err := f.store.Apply(context.Background(), g.u); err != nil {
		f.t.Fatal(err)
	}
	f.st.live.commit(g)
	return slices.Clone(f.st.letters)
}

// A histogram's count is the sum of its buckets: an update that would
// take it past 2^64-1 is overflow, whether the entry's own counts add up
// past it or they do with what the aggregate holds, though no single
// bucket overflows. _count never wraps.
func TestHistogramCountOverflow(t *testing.T) {
	f := newFolder(t)
	const max = "18446744073709551615"
	hist := func(counts string) string {
		return `{"name":"h","type":"histogram","buckets":[1],"counts":[` + counts + `],"sum":1}`
	}
	const ok = `{"name":"ok_total","type":"counter","value":1}`
	for _, tc := range []struct {
		name    string
		entries []string
		bad     []int
	}{
		{"one entry adds up past", []string{ok, hist(max + ",1")}, []int{1}},
		{"up to the largest count", []string{hist("18446744073709551613,1"), ok}, nil},
		{"with the aggregate, no bucket past", []string{ok, hist("0,2"), hist("1,1")}, []int{1, 2}},
		{"with the aggregate, to the largest", []string{hist("0,1"), ok}, nil},
		{"with the aggregate, one past", []string{hist("1,0")}, []int{0}},
	} {
		letters := f.batch(int(f.st.marks.Stream)+1, tc.entries...)
		var bad []int
		for _, l := range letters {
			if l.rej.Reason != streams.ReasonOverflow {
				t.Errorf("%s: dead letter %s, want overflow", tc.name, l.rej)
			}
			bad = append(bad, l.entries...)
		}
		if !slices.Equal(bad, tc.bad) {
			t.Errorf("%s: entries %v rejected, want %v", tc.name, bad, tc.bad)
		}
	}
	got, err := f.store.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := sameState(f.st.live.State(), got); diff != "" {
		t.Fatalf("in memory and in Redis differ: %s", diff)
	}
	for _, fam := range got.Families {
		if fam.Name == "h" {
			if c := fam.Series[0].Count(); c != math.MaxUint64 {
				t.Errorf("h count %d, want %d", c, uint64(math.MaxUint64))
			}
		}
	}
	if got.Rejected["overflow"] != 4 || got.Rejected["invalid_value"] != 0 {
		t.Errorf("rejected %v, want 4 overflow", got.Rejected)
	}
}
