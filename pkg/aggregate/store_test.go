package aggregate_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

func TestApplyLoad(t *testing.T) {
	ctx := context.Background()
	rdb := harness.RedisClient(t, harness.Redis(t))
	s := aggregate.NewStore(rdb, "", "n1")

	u := aggregate.NewUpdate()
	u.Expect, u.Mark = 0, 5
	u.ProducerMark("p-1", 3)
	u.Describe("req_total", aggregate.Meta{Kind: aggregate.Counter, Help: "requests"})
	u.Describe("temp", aggregate.Meta{Kind: aggregate.Gauge})
	u.Describe("lat", aggregate.Meta{Kind: aggregate.Histogram, Buckets: []float64{0.1, 1}})
	key := series.Key("req_total", []series.Label{{Name: "code", Value: "200"}})
	hkey := series.Key("lat", []series.Label{{Name: "op", Value: `a"|b1}`}})
	u.SetValue(key, 2.5)
	u.SetValue("temp", -3.25)
	u.SetBucket(hkey, 0, 2)
	u.SetBucket(hkey, 2, 1)
	u.SetSum(hkey, 4.5)
	u.SetRejected("invalid_value", 2)
	if err := s.Apply(ctx, u); err != nil {
		t.Fatal(err)
	}

	// A second apply at a stale position changes nothing.
	u.Reset()
	u.Expect, u.Mark = 0, 9
	u.SetValue(key, 100)
	if err := s.Apply(ctx, u); !errors.Is(err, aggregate.ErrConflict) {
		t.Fatalf("stale apply: %v, want ErrConflict", err)
	}

	m, err := s.Marks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Stream != 5 || m.Producers["p-1"] != 3 {
		t.Fatalf("marks = %+v", m)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mark != 5 || len(st.Families) != 3 {
		t.Fatalf("state mark %d families %+v", st.Mark, st.Families)
	}
	lat, req, temp := st.Families[0], st.Families[1], st.Families[2]
	if req.Name != "req_total" || req.Kind != aggregate.Counter || req.Help != "requests" || req.Series[0].Value != 2.5 || req.Series[0].Labels[0].Value != "200" {
		t.Errorf("counter family = %+v", req)
	}
	if temp.Name != "temp" || temp.Series[0].Value != -3.25 {
		t.Errorf("gauge family = %+v", temp)
	}
	h := lat.Series[0]
	if lat.Name != "lat" || h.Labels[0].Value != `a"|b1}` || h.Sum != 4.5 || h.Count() != 3 || h.Counts[0] != 2 || h.Counts[1] != 0 || h.Counts[2] != 1 {
		t.Errorf("histogram family = %+v", lat)
	}
	rej, err := s.Rejected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rej["invalid_value"] != 2 {
		t.Errorf("rejected = %v", rej)
	}
}

// A stored value past float64's range (an earlier version added in
// Redis, in long double) reads as +Inf, and the rest of the aggregate still
// loads: one runaway counter cannot break a scrape.
func TestLoadOutOfRange(t *testing.T) {
	ctx := context.Background()
	rdb := harness.RedisClient(t, harness.Redis(t))
	s := aggregate.NewStore(rdb, "", "n1")
	u := aggregate.NewUpdate()
	u.Describe("big", aggregate.Meta{Kind: aggregate.Counter})
	u.Describe("ok", aggregate.Meta{Kind: aggregate.Counter})
	u.Expect, u.Mark = 0, 1
	u.SetValue("big", 1)
	u.SetValue("ok", 1)
	if err := s.Apply(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, "jetmetrics:{n1}:series", "big", "3e308").Err(); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mark != 1 || !math.IsInf(st.Families[0].Series[0].Value, 1) || st.Families[1].Series[0].Value != 1 {
		t.Fatalf("mark %d families %+v", st.Mark, st.Families)
	}
}

// A guard left behind (Redis loaded only part of an apply) marks the
// aggregate torn; an apply or restore that completes leaves none; Reset
// clears the aggregate.
func TestTornGuard(t *testing.T) {
	ctx := context.Background()
	rdb := harness.RedisClient(t, harness.Redis(t))
	s := aggregate.NewStore(rdb, "", "n1")
	u := aggregate.NewUpdate()
	u.Expect, u.Mark = 0, 3
	u.Describe("c_total", aggregate.Meta{Kind: aggregate.Counter})
	u.SetValue("c_total", 1)
	if err := s.Apply(ctx, u); err != nil {
		t.Fatal(err)
	}
	d, err := s.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Marks(ctx); m.Torn || d.Torn() {
		t.Fatalf("a whole apply left a guard: %v", d.Marks)
	}
	// What a fragment of an apply leaves: its guard, without its end.
	if err := rdb.HSet(ctx, "jetmetrics:{n1}:mark", "open:abc", "9").Err(); err != nil {
		t.Fatal(err)
	}
	m, err := s.Marks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ = s.Dump(ctx); !m.Torn || !d.Torn() || m.Stream != 3 {
		t.Fatalf("marks %+v torn dump %v: want torn at 3", m, d.Torn())
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ = s.Marks(ctx); m.Torn || m.Stream != 0 {
		t.Fatalf("after Reset: %+v", m)
	}
	// A restore that completes leaves no guard either.
	clean := &aggregate.Dump{Node: "n1", Marks: map[string]string{"stream": "3"}, Meta: map[string]string{}, Series: map[string]string{}}
	if err := s.Restore(ctx, clean); err != nil {
		t.Fatal(err)
	}
	if m, _ = s.Marks(ctx); m.Torn || m.Stream != 3 {
		t.Fatalf("after Restore: %+v", m)
	}
}

// A guard is a torn apply or restore only while the stored mark has not
// passed what it was writing: Redis 7.0 can load the fragment of an apply
// it once repaired from the middle of its AOF, behind the complete replay
// of the same apply, and that leftover must not make the aggregate look
// torn (or be reset and rebuilt for nothing).
func TestTornGuards(t *testing.T) {
	for _, tc := range []struct {
		name  string
		marks map[string]string
		torn  bool
	}{
		{"no guard", map[string]string{"stream": "46"}, false},
		{"apply ahead of the mark", map[string]string{"stream": "42", "open:a": "46"}, true},
		{"apply at the mark, its guard not yet deleted", map[string]string{"stream": "46", "open:a": "46"}, false},
		{"leftover behind the mark", map[string]string{"stream": "50", "open:a": "46"}, false},
		{"restore", map[string]string{"stream": "46", "open:r": "0"}, true},
		{"restore before its marks", map[string]string{"open:r": "0"}, true},
		{"unreadable guard", map[string]string{"stream": "46", "open:a": "x"}, true},
		{"one leftover, one torn", map[string]string{"stream": "46", "open:a": "40", "open:b": "47"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &aggregate.Dump{Node: "n1", Marks: tc.marks}
			if got := d.Torn(); got != tc.torn {
				t.Errorf("Torn() = %v, want %v", got, tc.torn)
			}
		})
	}
}
