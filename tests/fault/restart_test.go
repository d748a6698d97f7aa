package fault_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// TestNodeAndRedisKilledTogether (a machine crash): the node and its Redis
// are killed together under load, Redis comes back with the tail of its
// AOF gone (what appendfsync everysec allows on a power cut), and the node
// restarts on the same data directory. "Never backwards" means: every
// answer /metrics gives, from the first byte the restarted node serves,
// shows each watched counter, histogram count, sum and bucket at or above
// the highest value any earlier answer showed, and none vanishes; the node
// answers 503 while it replays instead. The same holds for
// /metrics/cluster. "Nothing lost, nothing counted
// twice" means: once the load stops, Redis and /metrics hold exactly what
// the producers' ledger says was acknowledged.
//
// The snapshot interval is left at its default (5 s), so a high-water mark
// seeded from the last snapshot, as nodes did before, is seconds older
// than what was served and the first answers after the restart step back.
func TestNodeAndRedisKilledTogether(t *testing.T) {
	dir := t.TempDir()
	rs := harness.RedisWith(t, redisserver.Config{Dir: dir, AppendFsync: "everysec"})
	p := harness.StartProcessNode(t, harness.ProcessNodeConfig{Name: nodeName, ExtraArgs: []string{"--redis.url=" + rs.URL()}})
	p.WaitReady(settleTimeout)
	store := aggregate.NewStore(harness.RedisClient(t, rs), "", nodeName)
	mark := func() uint64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := store.Marks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m.Stream
	}

	client := &http.Client{Timeout: 10 * time.Second}
	reader := func(path string) *scraper {
		return startReader(t, func() (map[string]*dto.MetricFamily, string, error) {
			fams, unavailable, err := scrape(client, p.URL+path)
			// While the node is dead nothing answers, and an answer the
			// kill cuts short ends early: that is no answer, not a wrong
			// one.
			if ue := (*url.Error)(nil); errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, "down: " + err.Error(), nil
			}
			return fams, unavailable, err
		}, watchNames("fault_requests_total", "fault_latency"), nil)
	}
	sc, cluster := reader("/metrics"), reader("/metrics/cluster")
	load := runSDKLoad(t, func() *nats.Conn { return connect(t, p.NATSURL) }, "crash", 2, producers.Config{})

	for round := range 2 {
		load.waitChunks(t, 40)
		// Served at least once at the latest state.
		seen := sc.reads()
		harness.Eventually(t, settleTimeout, func() error {
			if sc.reads() < seen+3 {
				return fmt.Errorf("%d reads since the load moved, want 3", sc.reads()-seen)
			}
			return nil
		})
		p.Kill()
		before := mark()
		if err := rs.Kill(); err != nil {
			t.Fatal(err)
		}
		cut := tearAOF(t, dir, 0.6)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := rs.Restart(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		after := mark()
		t.Logf("round %d: stream mark %d at the kill, %d after Redis restarted (%d AOF bytes cut)", round, before, after, cut)
		if after >= before {
			t.Fatalf("cutting %d bytes off the AOF did not roll the mark back (%d, was %d): the test proves nothing", cut, after, before)
		}
		readsBefore := sc.reads()
		p.Start()
		p.WaitReady(settleTimeout)
		// The restarted node has answered with a whole aggregate.
		harness.Eventually(t, settleTimeout, func() error {
			if sc.reads() <= readsBefore {
				return errors.New("no 200 from /metrics since the restart yet")
			}
			return nil
		})
	}

	led := load.finish(t)
	nc := connect(t, p.NATSURL)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	settle(t, js, harness.RedisClient(t, rs))
	sc.finish(t, 5)
	cluster.finish(t, 5)
	stored, err := storedSamples(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	if err := led.check(stored); err != nil {
		t.Fatalf("the aggregate in Redis differs from the ledger:\n%v", err)
	}
	harness.Eventually(t, settleTimeout, func() error {
		fams, err := harness.Scrape(p.URL + "/metrics")
		if err != nil {
			return err
		}
		return led.check(harness.Samples(fams))
	})
}
