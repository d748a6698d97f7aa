package aggregator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jetmetrics/jetmetrics/streams"
)

// batchAt folds, seals and applies one batch of producer at stream
// sequence stream and stream time at (Unix ms), adding 1 to c_total.
func (f *folder) batchAt(stream uint64, at uint64, producer string, seq uint64) []deadLetter {
	f.t.Helper()
	raw := fmt.Appendf(nil, `{"v":1,"node":"n1","producer":%q,"seq":%d,"metrics":[{"name":"c_total","type":"counter","value":1}]}`, producer, seq)
	in := decodeItem(f.a, stream, raw)
	in.at = at
	f.st.letters = f.st.letters[:0]
	f.st.add(f.a, in)
	g := newGroup()
	f.st.seal(g, stream)
	if err := f.store.Apply(context.Background(), g.u); err != nil {
		f.t.Fatal(err)
	}
	f.st.live.commit(g)
	return f.st.letters
}

// The batch mark of a producer whose last applied message is older than
// the mark horizon, in stream time, is forgotten, in Redis, in memory and
// in what a snapshot carries, at the first minute boundary after; a
// producer still applying keeps its mark, and within the horizon a stale
// copy of an applied batch is still a duplicate.
func TestProducerMarksPruned(t *testing.T) {
	f := newFolder(t)
	f.a.cfg.MarkHorizon = 10 * time.Minute
	ctx := context.Background()
	const t0 = 1_700_000_000_000 // ms, on a minute boundary
	minute := uint64(time.Minute.Milliseconds())
	f.batchAt(1, t0, "idle", 1)
	f.batchAt(2, t0, "busy", 1)
	f.batchAt(3, t0+5*minute, "idle", 1)    // a stale copy: dropped
	f.batchAt(4, t0+10*minute, "busy", 2)   // a new minute: idle is 10 min old, not beyond
	f.batchAt(5, t0+10*minute+1, "busy", 3) // beyond, but within the minute already checked
	m, err := f.store.Marks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Producers["idle"] != 1 {
		t.Fatalf("idle's mark %d before its horizon passed a minute boundary, want 1", m.Producers["idle"])
	}
	f.batchAt(6, t0+11*minute, "busy", 4)
	m, err = f.store.Marks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Producers["idle"]; ok {
		t.Errorf("idle's mark %d kept 11 min after its last batch, horizon 10 min", m.Producers["idle"])
	}
	if _, ok := m.Applied["idle"]; ok {
		t.Errorf("idle's time kept after its mark was pruned")
	}
	if m.Producers["busy"] != 4 || m.Applied["busy"] != t0+11*minute || m.Clock != t0+11*minute {
		t.Errorf("busy's mark %d at %d, clock %d; want 4 at %d", m.Producers["busy"], m.Applied["busy"], m.Clock, t0+11*minute)
	}
	h := f.st.live.Held()
	if _, ok := h.Producers["idle"]; ok || h.Producers["busy"] != 4 {
		t.Errorf("held producer marks %v, want busy only", h.Producers)
	}
	if got := h.Dump().Marks; got["t:busy"] == "" || got["p:idle"] != "" {
		t.Errorf("snapshot marks %v, want busy's time and no idle", got)
	}
	if got := testutil.ToFloat64(f.a.m.producers); got != 1 {
		t.Errorf("jetmetrics_aggregator_producers = %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.a.m.producersPruned); got != 1 {
		t.Errorf("jetmetrics_aggregator_producers_pruned_total = %v, want 1", got)
	}
	st, err := f.store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Families[0].Series[0].Value; got != 5 {
		t.Errorf("c_total = %g, want 5 (the stale copy dropped)", got)
	}
}

// A producer pruned and back within one group keeps its new mark: the
// group's delete does not undo its write.
func TestProducerPrunedAndBack(t *testing.T) {
	f := newFolder(t)
	f.a.cfg.MarkHorizon = time.Minute
	ctx := context.Background()
	const t0 = 1_700_000_000_000
	f.batchAt(1, t0, "p", 1)
	raw := []byte(`{"v":1,"node":"n1","producer":"p","seq":2,"metrics":[{"name":"c_total","type":"counter","value":1}]}`)
	in := decodeItem(f.a, 2, raw)
	in.at = t0 + 3*60_000
	f.st.add(f.a, in)
	g := newGroup()
	f.st.seal(g, 2)
	if err := f.store.Apply(ctx, g.u); err != nil {
		t.Fatal(err)
	}
	m, err := f.store.Marks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Producers["p"] != 2 || m.Applied["p"] != t0+3*60_000 {
		t.Errorf("p's mark %d at %d, want 2 at %d", m.Producers["p"], m.Applied["p"], t0+3*60_000)
	}
}

// Once the node holds MaxProducers marks, the first batch of one more
// producer id is dead-lettered as producer_limit and counted; producers
// it holds keep applying.
func TestProducerLimit(t *testing.T) {
	f := newFolder(t)
	lim := f.a.Limits()
	lim.MaxProducers = 2
	f.a.SetLimits(lim)
	ctx := context.Background()
	steps := []struct {
		producer string
		seq      uint64
		refused  bool
	}{
		{"p1", 1, false},
		{"p2", 1, false},
		{"p3", 1, true},
		{"p1", 2, false},
		{"p4", 1, true},
	}
	for i, s := range steps {
		letters := f.batchAt(uint64(i+1), 0, s.producer, s.seq)
		refused := len(letters) == 1 && letters[0].rej.Reason == streams.ReasonProducerLimit
		if refused != s.refused || (!s.refused && len(letters) > 0) {
			t.Fatalf("step %d (%s seq %d): %d letters, producer_limit %v, want %v", i, s.producer, s.seq, len(letters), refused, s.refused)
		}
	}
	st, err := f.store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Rejected[string(streams.ReasonProducerLimit)]; got != 2 {
		t.Errorf("rejected{producer_limit} = %d, want 2", got)
	}
	if got := st.Families[0].Series[0].Value; got != 3 {
		t.Errorf("c_total = %g, want 3", got)
	}
	m, err := f.store.Marks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Producers) != 2 {
		t.Errorf("marks of %v, want p1 and p2", m.Producers)
	}
	if got := testutil.ToFloat64(f.a.m.producers); got != 2 {
		t.Errorf("jetmetrics_aggregator_producers = %v, want 2", got)
	}

	// A raised limit (a reload) takes effect from the next message, with
	// the aggregator running on.
	lim.MaxProducers = 3
	f.a.SetLimits(lim)
	if letters := f.batchAt(uint64(len(steps)+1), 0, "p5", 1); len(letters) != 0 {
		t.Fatalf("p5 after raising the limit to 3: %d letters (%v), want none", len(letters), letters[0].rej)
	}
	if got := f.a.Limits().MaxProducers; got != 3 {
		t.Errorf("Limits().MaxProducers = %d, want 3", got)
	}
}
