package aggregator

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/streams"
)

// seedBatch describes metrics before every fuzzed batch, so conflicts with
// existing types and layouts are reachable.
const seedBatch = `{"v":1,"node":"%s","producer":"seed","seq":1,"metrics":[
 {"name":"c_total","type":"counter","labels":{"a":"1"},"value":2},
 {"name":"g","type":"gauge","value":5},
 {"name":"h","type":"histogram","buckets":[1,2],"counts":[1,0,1],"sum":3.5}]}`

var fuzzNode atomic.Int64

// FuzzApply sends any batch through the apply path (decode, fold, the Lua
// script on a real redis-server) after a seed batch, and checks the stored
// aggregate against an oracle computed from the decoded entries: counters
// sum the accepted deltas, a gauge holds its last accepted value, a
// histogram's buckets sum its accepted counts, rejections are counted once,
// and the same batch delivered again changes nothing.
func FuzzApply(f *testing.F) {
	rdb := fuzzRedis(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		// One node name, so inputs can name it; a key prefix per run keeps
		// the runs apart in Redis.
		const node = "NODE"
		a := &Aggregator{cfg: Config{Node: node, MaxSeriesPerMetric: 20, MaxSeries: 40}.withDefaults()}
		var err error
		if a.m, err = newMetrics(prometheus.NewRegistry()); err != nil {
			t.Fatal(err)
		}
		store := aggregate.NewStore(rdb, fmt.Sprintf("fz%d", fuzzNode.Add(1)), node)
		st, err := newSession(&aggregate.Dump{Node: node})
		if err != nil {
			t.Fatal(err)
		}
		apply := func(seq uint64, raw []byte) item {
			in := decodeItem(a, seq, raw)
			st.letters = st.letters[:0]
			st.add(a, in)
			g := newGroup()
			st.seal(g, seq)
			if err := store.Apply(ctx, g.u); err != nil {
				t.Fatalf("apply seq %d: %v", seq, err)
			}
			st.live.commit(g)
			return in
		}
		apply(1, fmt.Appendf(nil, seedBatch, node))
		want := oracle{counters: map[string]float64{`c_total{a="1"}`: 2}, gauges: map[string]float64{"g": 5},
			hist: map[string][]uint64{"h": {1, 0, 1}}, rejected: map[string]uint64{}}
		in := apply(2, data)
		want.fold(in, st.letters)

		check := func() {
			t.Helper()
			s, err := store.Load(ctx)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			want.check(t, s)
			// What the aggregator holds in memory is what Redis holds.
			if diff := sameState(st.live.State(), s); diff != "" {
				t.Fatalf("in memory and in Redis differ: %s", diff)
			}
			// And what a new session loads from Redis is the same again.
			d, err := store.Dump(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The snapshot built from memory is what Redis holds.
			if diff := sameDump(st.live.Held().Dump(), d); diff != "" {
				t.Fatalf("dump from memory and from Redis differ: %s", diff)
			}
			again, err := newSession(d)
			if err != nil {
				t.Fatal(err)
			}
			if diff := sameState(again.live.State(), s); diff != "" {
				t.Fatalf("reloaded: %s", diff)
			}
		}
		check()
		// Delivered again (a retry beyond the broker's window): no change,
		// but for a message rejected whole, which has no producer mark to
		// stop it and is a new rejection at its new stream position.
		if again := apply(3, data); again.reject != nil {
			want.rejected[string(again.reject.Reason)]++
		}
		check()
	})
}

func decodeItem(a *Aggregator, seq uint64, raw []byte) item {
	in := item{seq: seq, subject: "jetmetrics.delta." + a.cfg.Node + ".p", data: raw}
	dec, err := streams.Decode(raw, a.cfg.Node, a.cfg.Limits)
	switch {
	case err != nil:
		in.reject = err.(*streams.RejectError)
	default:
		in.dec = dec
	}
	return in
}

// oracle is what the aggregate must hold.
type oracle struct {
	counters, gauges map[string]float64
	hist             map[string][]uint64
	rejected         map[string]uint64
}

func (o *oracle) fold(in item, letters []deadLetter) {
	if in.reject != nil {
		o.rejected[string(in.reject.Reason)]++
		return
	}
	bad := map[int]bool{}
	for _, l := range letters {
		for _, i := range l.entries {
			bad[i] = true
		}
	}
	for i, e := range in.dec.Entries {
		if e.Reject != nil || bad[i] {
			continue
		}
		switch e.Type {
		case streams.KindCounter:
			o.counters[e.Key] += e.Value
		case streams.KindGauge:
			o.gauges[e.Key] = e.Value
		case streams.KindHistogram:
			h := o.hist[e.Key]
			if h == nil {
				h = make([]uint64, len(e.Counts))
			}
			for j, c := range e.Counts {
				h[j] += c
			}
			o.hist[e.Key] = h
		}
	}
	for i, e := range in.dec.Entries {
		if e.Reject != nil {
			o.rejected[string(e.Reject.Reason)]++
		} else if bad[i] {
			o.rejected["?"]++ // decided against the state; reason checked by total
		}
	}
}

func (o *oracle) check(t *testing.T, s *aggregate.State) {
	t.Helper()
	got := map[string]bool{}
	for _, f := range s.Families {
		for _, sr := range f.Series {
			got[sr.Key] = true
			switch f.Kind {
			case aggregate.Counter:
				if w := o.counters[sr.Key]; !approxEqual(w, sr.Value) {
					t.Fatalf("counter %s = %v, want %v", sr.Key, sr.Value, w)
				}
			case aggregate.Gauge:
				if w, ok := o.gauges[sr.Key]; !ok || w != sr.Value {
					t.Fatalf("gauge %s = %v, want %v", sr.Key, sr.Value, w)
				}
			case aggregate.Histogram:
				w := o.hist[sr.Key]
				if len(w) != len(sr.Counts) {
					t.Fatalf("histogram %s counts %v, want %v", sr.Key, sr.Counts, w)
				}
				for j := range w {
					if w[j] != sr.Counts[j] {
						t.Fatalf("histogram %s counts %v, want %v", sr.Key, sr.Counts, w)
					}
				}
			}
		}
	}
	for _, m := range []map[string]float64{o.counters, o.gauges} {
		for k := range m {
			if !got[k] {
				t.Fatalf("series %s missing from the aggregate", k)
			}
		}
	}
	var wantRej, gotRej uint64
	for _, n := range o.rejected {
		wantRej += n
	}
	for _, n := range s.Rejected {
		gotRej += n
	}
	if wantRej != gotRej {
		t.Fatalf("rejections counted %v (%d), want %d (%v)", s.Rejected, gotRej, wantRej, o.rejected)
	}
}

func approxEqual(want, got float64) bool {
	if want == got || (math.IsInf(got, 0) && math.Abs(want) > 1e300) {
		return true
	}
	return math.Abs(want-got) <= 1e-12*math.Max(math.Abs(want), math.Abs(got))
}

// fuzzRedis starts a redis-server for the fuzz target, stopped at cleanup.
func fuzzRedis(f testing.TB) *redis.Client {
	dir, err := os.MkdirTemp("", "jmfz")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := redisserver.Start(ctx, redisserver.Config{Dir: dir, Socket: dir + "/r.sock", AppendFsync: "no"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rs.Stop(ctx)
	})
	rdb := redis.NewClient(rs.Options())
	f.Cleanup(func() { rdb.Close() })
	return rdb
}

// sameState describes how a and b differ, or is empty.
func sameState(a, b *aggregate.State) string {
	if a.Node != b.Node || a.Mark != b.Mark || !maps.Equal(a.Rejected, b.Rejected) {
		return fmt.Sprintf("node %s/%s mark %d/%d rejected %v/%v", a.Node, b.Node, a.Mark, b.Mark, a.Rejected, b.Rejected)
	}
	if len(a.Families) != len(b.Families) {
		return fmt.Sprintf("%d families, %d", len(a.Families), len(b.Families))
	}
	for i := range a.Families {
		fa, fb := &a.Families[i], &b.Families[i]
		if fa.Name != fb.Name || fa.Kind != fb.Kind || fa.Help != fb.Help || !slices.Equal(fa.Buckets, fb.Buckets) || len(fa.Series) != len(fb.Series) {
			return fmt.Sprintf("family %+v, %+v", *fa, *fb)
		}
		for j := range fa.Series {
			sa, sb := &fa.Series[j], &fb.Series[j]
			if sa.Key != sb.Key || !slices.Equal(sa.Labels, sb.Labels) || math.Float64bits(sa.Value) != math.Float64bits(sb.Value) ||
				math.Float64bits(sa.Sum) != math.Float64bits(sb.Sum) || !slices.Equal(sa.Counts, sb.Counts) {
				return fmt.Sprintf("series %+v, %+v", *sa, *sb)
			}
		}
	}
	return ""
}

// sameDump describes how a and b differ, or is empty.
func sameDump(a, b *aggregate.Dump) string {
	for _, h := range []struct {
		name string
		a, b map[string]string
	}{{"marks", a.Marks, b.Marks}, {"meta", a.Meta, b.Meta}, {"series", a.Series, b.Series}, {"rejected", a.Rejected, b.Rejected}} {
		if !maps.Equal(h.a, h.b) {
			return fmt.Sprintf("%s: %v, %v", h.name, h.a, h.b)
		}
	}
	if a.Node != b.Node {
		return fmt.Sprintf("node %s, %s", a.Node, b.Node)
	}
	return ""
}
