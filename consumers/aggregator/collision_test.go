package aggregator

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Two metrics whose exposed names (family or sample, in any format) meet
// cannot both exist: the one second in stream order is a type_conflict,
// decided the same in one batch or two, after the session is reloaded
// from Redis, and after the aggregate is restored from a dump (a
// checkpoint) into an empty Redis. Metrics whose names only look alike
// both apply.
func TestExposedNameCollisions(t *testing.T) {
	ctx := context.Background()
	rdb := fuzzRedis(t)
	entry := func(name, kind string) string {
		switch kind {
		case "histogram":
			return fmt.Sprintf(`{"name":%q,"type":"histogram","buckets":[1],"counts":[1,0],"sum":0.5}`, name)
		default:
			return fmt.Sprintf(`{"name":%q,"type":%q,"value":1}`, name, kind)
		}
	}
	type metric struct{ name, kind string }
	cases := []struct {
		first, second metric
		collide       bool
	}{
		{metric{"x", "counter"}, metric{"x_total", "gauge"}, true},
		{metric{"x_total", "gauge"}, metric{"x", "counter"}, true},
		{metric{"x", "gauge"}, metric{"x_total", "counter"}, true}, // OpenMetrics family x
		{metric{"x_total", "counter"}, metric{"x", "gauge"}, true},
		{metric{"a", "counter"}, metric{"a_total", "counter"}, true},
		{metric{"h", "histogram"}, metric{"h_count", "gauge"}, true},
		{metric{"h", "histogram"}, metric{"h_sum", "gauge"}, true},
		{metric{"h", "histogram"}, metric{"h_bucket", "gauge"}, true},
		{metric{"h", "histogram"}, metric{"h_count", "counter"}, true},
		{metric{"h_sum", "gauge"}, metric{"h", "histogram"}, true},
		{metric{"h_bucket_total", "counter"}, metric{"h", "histogram"}, true},
		{metric{"h", "histogram"}, metric{"h_bucket", "histogram"}, true},
		{metric{"h_count", "counter"}, metric{"h", "histogram"}, true},
		{metric{"x", "counter"}, metric{"x", "gauge"}, true},
		// Alike, but apart in every format.
		{metric{"x", "gauge"}, metric{"x_count", "gauge"}, false},
		{metric{"x_total", "counter"}, metric{"x_created", "gauge"}, false},
		{metric{"h", "histogram"}, metric{"h_created", "gauge"}, false},
		{metric{"h_bucket", "gauge"}, metric{"h_count", "gauge"}, false},
		{metric{"h", "histogram"}, metric{"hh", "histogram"}, false},
		{metric{"x_total", "gauge"}, metric{"x_total_total", "gauge"}, false},
	}
	for i, c := range cases {
		for _, oneBatch := range []bool{false, true} {
			name := fmt.Sprintf("%s %s then %s %s, one batch %v", c.first.kind, c.first.name, c.second.kind, c.second.name, oneBatch)
			t.Run(name, func(t *testing.T) {
				node := fmt.Sprintf("n%d-%v", i, oneBatch)
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
				seq := 0
				batch := func(st *sessionState, store *aggregate.Store, entries string) []deadLetter {
					t.Helper()
					seq++
					raw := fmt.Appendf(nil, `{"v":1,"node":%q,"producer":"p","seq":%d,"metrics":[%s]}`, node, seq, entries)
					st.letters = st.letters[:0]
					st.add(a, decodeItem(a, uint64(seq), raw))
					g := newGroup()
					st.seal(g, uint64(seq))
					if err := store.Apply(ctx, g.u); err != nil {
						t.Fatal(err)
					}
					st.live.commit(g)
					return st.letters
				}
				check := func(when string, letters []deadLetter, wantEntry int) {
					t.Helper()
					if !c.collide {
						if len(letters) != 0 {
							t.Fatalf("%s: rejected %v, want both metrics applied", when, letters[0].rej)
						}
						return
					}
					if len(letters) != 1 || letters[0].rej.Reason != streams.ReasonTypeConflict || len(letters[0].entries) != 1 || letters[0].entries[0] != wantEntry {
						t.Fatalf("%s: dead letters %+v, want entry %d rejected as type_conflict", when, letters, wantEntry)
					}
				}

				first, second := entry(c.first.name, c.first.kind), entry(c.second.name, c.second.kind)
				if oneBatch {
					check("applied", batch(st, store, first+","+second), 1)
				} else {
					if l := batch(st, store, first); len(l) != 0 {
						t.Fatalf("first metric rejected: %v", l[0].rej)
					}
					check("applied", batch(st, store, second), 0)
				}
				// A new session loads the index from what Redis holds.
				d, err := store.Dump(ctx)
				if err != nil {
					t.Fatal(err)
				}
				reloaded, err := newSession(d)
				if err != nil {
					t.Fatal(err)
				}
				seq = int(d.Mark())
				check("after a reload", batch(reloaded, store, second), 0)

				// And from what a checkpoint restores into an empty Redis.
				restoredStore := aggregate.NewStore(rdb, "restored:", node)
				if err := restoredStore.Restore(ctx, d); err != nil {
					t.Fatal(err)
				}
				rd, err := restoredStore.Dump(ctx)
				if err != nil {
					t.Fatal(err)
				}
				restored, err := newSession(rd)
				if err != nil {
					t.Fatal(err)
				}
				seq = int(rd.Mark())
				check("after a restore", batch(restored, restoredStore, second), 0)
			})
		}
	}
}
