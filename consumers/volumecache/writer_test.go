package volumecache_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/jetmetrics/jetmetrics/consumers/volumecache"
	"github.com/jetmetrics/jetmetrics/pkg/obscache"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the tests' first observation time: now, since Redis expires
// entries by its own clock.
var t0 = time.Now().UTC().Truncate(time.Second)

const ttl = 30 * time.Second

type rig struct {
	t     *testing.T
	js    jetstream.JetStream
	redis *redisserver.Server
	rdb   *redis.Client
	cache *obscache.Cache
	now   atomic.Int64
}

func newRig(t *testing.T) *rig {
	s := harness.NATS(t)
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := streams.ProvisionObs(t.Context(), js, streams.ObsConfig{MemoryStorage: true}); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, js: js, redis: harness.Redis(t)}
	r.rdb = harness.RedisClient(t, r.redis)
	r.cache = obscache.New(r.rdb, "jetmetrics", "volume")
	r.now.Store(t0.Add(5 * time.Second).UnixNano())
	return r
}

func (r *rig) clock() time.Time { return time.Unix(0, r.now.Load()) }

func (r *rig) clockAt(t time.Time) { r.now.Store(t.UnixNano()) }

// writer runs a writer until the test ends (or stop), with its own
// registry.
type writer struct {
	reg  *prometheus.Registry
	stop func()
}

func (r *rig) start() *writer {
	reg := prometheus.NewRegistry()
	w, err := volumecache.New(volumecache.Config{Node: "n1", TTL: ttl, Now: r.clock, Streams: streams.ObsConfig{MemoryStorage: true}},
		r.js, r.cache, harness.Logger(r.t), reg)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// The writer starts from each volume's last result: wait until it
	// reads, so the tests' results all reach it.
	harness.Eventually(r.t, 10*time.Second, func() error {
		if !w.Ready() {
			return fmt.Errorf("writer not ready")
		}
		return nil
	})
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			r.t.Error(err)
		}
	}
	r.t.Cleanup(stop)
	return &writer{reg: reg, stop: stop}
}

// counts returns the writer's results by kind.
func (w *writer) counts(t *testing.T) map[string]float64 {
	fams, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" {
					out[lp.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// waitRead waits until the writer has read n results.
func (w *writer) waitRead(t *testing.T, n float64) map[string]float64 {
	t.Helper()
	var c map[string]float64
	harness.Eventually(t, 10*time.Second, func() error {
		c = w.counts(t)
		if got := c["stored"] + c["stale"] + c["expired"] + c["invalid"]; got != n {
			return fmt.Errorf("read %v results, want %v (%v)", got, n, c)
		}
		return nil
	})
	return c
}

func (r *rig) publish(volume string, at time.Time, rev uint64, node string) {
	r.t.Helper()
	b, err := streams.EncodeObservation(streams.Observation{Volume: volume, ObservedAt: at, Status: streams.ObsStatusOK, Node: node, LeaseRevision: rev,
		Metric: streams.VolumeMetric{IOPSRead: float64(rev)}})
	if err != nil {
		r.t.Fatal(err)
	}
	subj, err := streams.Subjects{}.Observation(streams.ObsKindVolume, volume)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.js.Publish(r.t.Context(), subj, b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) cached(volume string) (streams.Observation, bool) {
	r.t.Helper()
	o, ok, err := volumecache.Get(r.t.Context(), r.cache, volume)
	if err != nil {
		r.t.Fatal(err)
	}
	return o, ok
}

// A result replaces the cached one only if it is newer: by observation
// time, then by lease revision. A deposed leader's result (older, or at
// the same instant with a lower revision) never replaces the current
// leader's.
func TestNewestWins(t *testing.T) {
	r := newRig(t)
	w := r.start()
	type pub struct {
		at   time.Duration
		rev  uint64
		node string
	}
	for _, tc := range []struct {
		volume   string
		pubs     []pub
		wantNode string
	}{
		{"newer-replaces", []pub{{0, 5, "a"}, {time.Second, 6, "b"}}, "b"},
		{"older-ignored", []pub{{time.Second, 5, "a"}, {0, 9, "b"}}, "a"},
		{"fenced-same-instant", []pub{{0, 9, "new-leader"}, {0, 5, "deposed"}}, "new-leader"},
		{"higher-revision-same-instant", []pub{{0, 5, "deposed"}, {0, 9, "new-leader"}}, "new-leader"},
		{"svm1/vol_a", []pub{{0, 1, "a"}}, "a"},
	} {
		for _, p := range tc.pubs {
			r.publish(tc.volume, t0.Add(p.at), p.rev, p.node)
		}
		defer func() {
			if o, ok := r.cached(tc.volume); !ok || o.Node != tc.wantNode {
				t.Errorf("%s: cached %+v (%v), want the result of %s", tc.volume, o, ok, tc.wantNode)
			}
		}()
	}
	c := w.waitRead(t, 9)
	if c["stored"] != 7 || c["stale"] != 2 {
		t.Errorf("results %v, want 7 stored and 2 stale", c)
	}
	// The entry expires TTL after its observation, not after its write.
	pttl, err := r.rdb.PTTL(t.Context(), r.cache.Key("newer-replaces")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Until(t0.Add(time.Second + ttl)); pttl <= 0 || pttl > want+time.Second {
		t.Errorf("ttl %s, want at most %s (observation time plus %s)", pttl, want, ttl)
	}
}

// A writer started again (a node restart) reads the last result of every
// volume once more and changes nothing; an expired result is not written;
// an undecodable one is skipped.
func TestReplayChangesNothing(t *testing.T) {
	r := newRig(t)
	w := r.start()
	r.publish("a", t0, 3, "n1")
	r.publish("b", t0.Add(time.Second), 4, "n2")
	r.publish("old", t0.Add(-ttl), 1, "n1")
	if _, err := r.js.Publish(t.Context(), "jetmetrics.obs.volume.junk", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	c := w.waitRead(t, 4)
	if c["stored"] != 2 || c["expired"] != 1 || c["invalid"] != 1 {
		t.Errorf("results %v", c)
	}
	if _, ok := r.cached("old"); ok {
		t.Error("an expired result was cached")
	}
	before, err := r.rdb.HGetAll(t.Context(), r.cache.Key("a")).Result()
	if err != nil {
		t.Fatal(err)
	}
	w.stop()

	w2 := r.start()
	c = w2.waitRead(t, 4)
	if c["stored"] != 0 || c["stale"] != 2 {
		t.Errorf("replay: %v, want nothing stored and both results stale", c)
	}
	after, err := r.rdb.HGetAll(t.Context(), r.cache.Key("a")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("replay changed the entry:\n%v\n%v", before, after)
	}
}

// With Redis stopped the writer backs off; when Redis is back it writes the
// results published meanwhile.
func TestRedisOutage(t *testing.T) {
	r := newRig(t)
	w := r.start()
	r.publish("a", t0, 1, "n1")
	w.waitRead(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.redis.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	r.publish("a", t0.Add(time.Second), 2, "n2")
	harness.Eventually(t, 10*time.Second, func() error {
		if w.counts(t)["stored"] != 1 {
			return fmt.Errorf("stored during the outage")
		}
		return nil
	})
	if err := r.redis.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 15*time.Second, func() error {
		o, ok, err := volumecache.Get(t.Context(), r.cache, "a")
		if err != nil || !ok || o.Node != "n2" {
			return fmt.Errorf("cached %+v, %v, %v", o, ok, err)
		}
		return nil
	})
}
