package broadcast_test

import (
	"context"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jetmetrics/jetmetrics/consumers/broadcast"
	"github.com/jetmetrics/jetmetrics/consumers/snapshot"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// dumpOf is node p1's aggregate at version with series fields.
func dumpOf(version uint64, fields map[string]string) *aggregate.Dump {
	return &aggregate.Dump{Node: "p1", Marks: map[string]string{"stream": strconv.FormatUint(version, 10)},
		Meta: map[string]string{"c_total": `{"type":"counter"}`}, Series: maps.Clone(fields)}
}

// chain is what the peer store holds of node: its snapshot with the
// deltas stored on it applied, and how many deltas.
func (r *rig) chain(node string) (*aggregate.Dump, uint64, int) {
	r.t.Helper()
	snaps, err := r.peers.List(context.Background(), true)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, s := range snaps {
		if s.Node == node {
			d, err := streams.DecodeSnapshotChain(s.Data, s.Deltas, streams.SnapshotLimits{})
			if err != nil {
				r.t.Fatal(err)
			}
			return d, s.Version, len(s.Deltas)
		}
	}
	r.t.Fatalf("%s not stored", node)
	return nil, 0, 0
}

func (r *rig) wantChain(node string, want *aggregate.Dump, deltas int) {
	r.t.Helper()
	got, version, n := r.chain(node)
	if version != want.Mark() || n != deltas || !maps.Equal(got.Series, want.Series) || !maps.Equal(got.Marks, want.Marks) {
		r.t.Fatalf("stored %s at version %d with %d deltas, series %v; want version %d with %d deltas, series %v",
			node, version, n, got.Series, want.Mark(), deltas, want.Series)
	}
}

// A publisher sends a full snapshot, then deltas of what changed (fields
// set and fields gone); the receiver applies each onto exactly its base.
// A delta whose base it does not hold (skipped, reordered, from another
// incarnation) is never applied: the peer is asked for a full snapshot
// and the stored one stays. An older delta is stale. The next full
// snapshot replaces the chain.
func TestIncrementalSnapshots(t *testing.T) {
	r := start(t, broadcast.Config{})
	ctx := context.Background()
	store := aggregate.NewStore(harness.RedisClient(t, harness.Redis(t)), "", "p1")
	reg := prometheus.NewRegistry()
	pub, err := snapshot.New(snapshot.Config{Node: "p1", Streams: r.sc, Interval: time.Minute, TTL: time.Minute, FullEvery: 4, Logger: harness.Logger(t)},
		r.js, store, reg)
	if err != nil {
		t.Fatal(err)
	}
	requests := make(chan struct{}, 8)
	sub, err := r.js.Conn().Subscribe(r.subj.SnapshotRequest("p1"), func(*nats.Msg) { requests <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	deltas := func() float64 {
		return testutil.ToFloat64(counterOf(t, reg, "jetmetrics_snapshot_deltas_total"))
	}
	publish := func(d *aggregate.Dump) {
		t.Helper()
		if err := store.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		if err := store.Restore(ctx, d); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}

	v1 := dumpOf(1, map[string]string{"c_total\x00a": "1", "c_total\x00b": "2", "c_total\x00c": "3"})
	publish(v1)
	r.waitCount(broadcast.ResultStored, 1)
	r.wantChain("p1", v1, 0)

	// b changes, c is gone (a tombstone), d is new.
	v2 := dumpOf(2, map[string]string{"c_total\x00a": "1", "c_total\x00b": "5", "c_total\x00d": "4"})
	publish(v2)
	r.waitCount(broadcast.ResultStored, 2)
	r.wantChain("p1", v2, 1)
	if got := deltas(); got != 1 {
		t.Fatalf("deltas published: %v, want 1", got)
	}
	// An idle interval: a delta of nothing, at the same version.
	publish(v2)
	r.waitCount(broadcast.ResultStored, 3)
	r.wantChain("p1", v2, 2)

	// A delta whose base the receiver never saw (the one before it was
	// lost): not applied, and a full snapshot asked for.
	lost, err := streams.SnapshotDeltaMsg(r.subj.Snapshot("p1"), "p1", 9,
		streams.DeltaBase{Version: 8, Generated: time.UnixMilli(time.Now().UnixMilli())},
		&streams.SnapshotDelta{Marks: map[string]string{"stream": "9"}, Series: map[string]string{"c_total\x00a": "100"}}, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r.publish(lost)
	r.waitCount(broadcast.ResultNoBase, 1)
	select {
	case <-requests:
	case <-time.After(10 * time.Second):
		t.Fatal("no full snapshot asked for")
	}
	r.wantChain("p1", v2, 2)

	// A delta older than what is stored (reordered): stale, not applied.
	old, err := streams.SnapshotDeltaMsg(r.subj.Snapshot("p1"), "p1", 1,
		streams.DeltaBase{Version: 1, Generated: time.UnixMilli(0)},
		&streams.SnapshotDelta{Marks: map[string]string{"stream": "1"}, Series: map[string]string{"c_total\x00a": "7"}}, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r.publish(old)
	r.waitCount(broadcast.ResultStale, 1)
	r.wantChain("p1", v2, 2)

	// The publisher answers the request with a full snapshot, which
	// replaces the chain: the peer recovers.
	pub.RequestFull()
	v3 := dumpOf(3, map[string]string{"c_total\x00a": "2", "c_total\x00d": "4"})
	publish(v3)
	r.waitCount(broadcast.ResultStored, 4)
	r.wantChain("p1", v3, 0)
	if got := deltas(); got != 2 {
		t.Fatalf("deltas published: %v, want 2 (the requested snapshot is full)", got)
	}
	// Deltas resume on the new full one.
	v4 := dumpOf(4, map[string]string{"c_total\x00a": "3"})
	publish(v4)
	r.waitCount(broadcast.ResultStored, 5)
	r.wantChain("p1", v4, 1)
}

// Checkpoints are always full: a snapshot is full whenever a checkpoint
// is due, so a Redis-loss restore never meets a delta; and a delta
// presented as a checkpoint is refused.
func TestCheckpointsStayFull(t *testing.T) {
	r := start(t, broadcast.Config{})
	ctx := context.Background()
	store := aggregate.NewStore(harness.RedisClient(t, harness.Redis(t)), "", "p1")
	reg := prometheus.NewRegistry()
	pub, err := snapshot.New(snapshot.Config{Node: "p1", Streams: r.sc, Interval: time.Minute, TTL: time.Minute,
		CheckpointInterval: time.Nanosecond, FullEvery: 100, Logger: harness.Logger(t)}, r.js, store, reg)
	if err != nil {
		t.Fatal(err)
	}
	var last *aggregate.Dump
	for v := uint64(1); v <= 4; v++ {
		last = dumpOf(v, map[string]string{"c_total\x00a": strconv.FormatUint(v, 10), "c_total\x00v" + strconv.FormatUint(v, 10): "1"})
		if err := store.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		if err := store.Restore(ctx, last); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(counterOf(t, reg, "jetmetrics_snapshot_deltas_total")); got != 0 {
		t.Fatalf("%v deltas published while a checkpoint was due each time, want none", got)
	}
	ckpt, err := snapshot.Checkpoints{JS: r.js, Streams: r.sc}.LatestCheckpoint(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if ckpt.Mark() != 4 || !maps.Equal(ckpt.Series, last.Series) {
		t.Fatalf("checkpoint at %d with %v, want the full aggregate at 4: %v", ckpt.Mark(), ckpt.Series, last.Series)
	}
	delta, err := streams.SnapshotDeltaMsg(r.subj.Checkpoint("p1"), "p1", 5, streams.DeltaBase{Version: 4},
		&streams.SnapshotDelta{Marks: map[string]string{"stream": "5"}}, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streams.CheckCheckpoint(delta.Header, delta.Data, "p1"); err == nil {
		t.Fatal("a delta was taken as a checkpoint")
	}
}

// counterOf is reg's collector of name, for testutil.ToFloat64.
func counterOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name}, func() float64 { return mf.GetMetric()[0].GetCounter().GetValue() })
		}
	}
	t.Fatalf("no %s", name)
	return nil
}

// heldMemory is a publisher's view of its aggregator: the aggregate held
// in memory, once there is one.
type heldMemory struct {
	mu sync.Mutex
	h  *aggregate.Held
}

func (m *heldMemory) Held() (aggregate.Held, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return aggregate.Held{}, false
	}
	return *m.h, true
}

// A publisher whose aggregator does not hold the aggregate yet publishes
// the dump it reads whole and does not track it (a tracker of a dump
// would keep copies of its keys): while the mark stays, deltas on it are
// empty; when the mark moves, it is whole again; once the aggregate is
// held, the next is whole and the ones after it deltas again.
func TestUntrackedDumpUntilHeld(t *testing.T) {
	r := start(t, broadcast.Config{})
	ctx := context.Background()
	store := aggregate.NewStore(harness.RedisClient(t, harness.Redis(t)), "", "p1")
	reg := prometheus.NewRegistry()
	mem := &heldMemory{}
	pub, err := snapshot.New(snapshot.Config{Node: "p1", Streams: r.sc, Interval: time.Minute, TTL: time.Minute, FullEvery: 4, Memory: mem, Logger: harness.Logger(t)},
		r.js, store, reg)
	if err != nil {
		t.Fatal(err)
	}
	count := func(name string) float64 { return testutil.ToFloat64(counterOf(t, reg, name)) }
	want := func(published, deltas float64) {
		t.Helper()
		if err := pub.Publish(ctx); err != nil {
			t.Fatal(err)
		}
		if p, d := count("jetmetrics_snapshot_published_total"), count("jetmetrics_snapshot_deltas_total"); p != published || d != deltas {
			t.Fatalf("published %v snapshots, %v of them deltas; want %v, %v", p, d, published, deltas)
		}
	}
	restore := func(d *aggregate.Dump) {
		t.Helper()
		if err := store.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		if err := store.Restore(ctx, d); err != nil {
			t.Fatal(err)
		}
	}

	v1 := dumpOf(1, map[string]string{`c_total{a="1"}`: "1", `c_total{a="2"}`: "2"})
	restore(v1)
	want(1, 0) // whole, from the dump
	r.waitCount(broadcast.ResultStored, 1)
	want(2, 1) // the mark stays: an empty delta
	r.waitCount(broadcast.ResultStored, 2)
	r.wantChain("p1", v1, 1)

	v2 := dumpOf(2, map[string]string{`c_total{a="1"}`: "3", `c_total{a="3"}`: "1"})
	restore(v2)
	want(3, 1) // the mark moved: whole again, never a delta of an untracked base
	r.waitCount(broadcast.ResultStored, 3)
	r.wantChain("p1", v2, 0)

	st, err := v2.State()
	if err != nil {
		t.Fatal(err)
	}
	metas, err := v2.Metas()
	if err != nil {
		t.Fatal(err)
	}
	mem.mu.Lock()
	mem.h = &aggregate.Held{State: st, Metas: metas}
	mem.mu.Unlock()
	want(4, 1) // held now: whole, tracked from the held aggregate
	want(5, 2) // and deltas on it
}
