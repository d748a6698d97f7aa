package fault_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/consumers/snapshot"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// nodeOn is a node whose Redis the test controls, and what the test needs
// beside it.
type nodeOn struct {
	t     *testing.T
	rn    *harness.RunningNode
	redis *redisserver.Server
	rdb   *redis.Client
	store *aggregate.Store
	js    jetstream.JetStream
}

// startNodeOn runs a node on rs, with a snapshot (and first checkpoint)
// every 200 ms.
func startNodeOn(t *testing.T, rs *redisserver.Server, cfg node.Config) *nodeOn {
	t.Helper()
	cfg.RedisURL = rs.URL()
	if cfg.SnapshotInterval == 0 {
		cfg.SnapshotInterval, cfg.SnapshotTTL = 200*time.Millisecond, time.Second
	}
	rn := harness.StartNode(t, cfg)
	rdb := harness.RedisClient(t, rs)
	js, err := jetstream.New(rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	return &nodeOn{t: t, rn: rn, redis: rs, rdb: rdb, store: aggregate.NewStore(rdb, "", nodeName), js: js}
}

func (n *nodeOn) dial() *nats.Conn { return n.rn.Connect(n.t) }

// mark reads the aggregate's stream mark straight from Redis.
func (n *nodeOn) mark() uint64 {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := n.store.Marks(ctx)
	if err != nil {
		n.t.Fatal(err)
	}
	return m.Stream
}

// readiness waits until /-/ready answers want.
func (n *nodeOn) readiness(want int) {
	n.t.Helper()
	harness.Eventually(n.t, settleTimeout, func() error {
		resp, err := http.Get(n.rn.URL + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("/-/ready: %s, want %d", resp.Status, want)
		}
		return nil
	})
}

// checkExposed settles and compares what Redis holds, and what /metrics
// serves, with the ledger.
func (n *nodeOn) checkExposed(led *ledger) {
	n.t.Helper()
	settle(n.t, n.js, n.rdb)
	stored, err := storedSamples(context.Background(), n.store)
	if err != nil {
		n.t.Fatal(err)
	}
	if err := led.check(stored); err != nil {
		n.t.Fatalf("the aggregate in Redis differs from the ledger:\n%v", err)
	}
	harness.Eventually(n.t, settleTimeout, func() error {
		fams, serr := harness.Scrape(n.rn.URL + "/metrics")
		if serr != nil {
			return serr
		}
		err = led.check(harness.Samples(fams))
		return nil
	})
	if err != nil {
		n.t.Fatalf("/metrics differs from the ledger:\n%v", err)
	}
}

// noDeadLetters checks that nothing was dead-lettered: a transient failure
// never is.
func (n *nodeOn) noDeadLetters() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := deadLetters(ctx, n.js)
	if err != nil {
		n.t.Fatal(err)
	}
	if len(got) > 0 {
		n.t.Errorf("%d messages dead-lettered, the first for %s: nothing was bad, Redis was only away", len(got), got[0].reason)
	}
}

// newestAOF is Redis's newest incremental AOF file under dir.
func newestAOF(t testing.TB, dir string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "appendonlydir", "*.incr.aof"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no incremental AOF in %s: %v", dir, err)
	}
	sort.Strings(files)
	f := files[len(files)-1]
	return f
}

// tearAOF cuts the tail off Redis's newest incremental AOF file, keeping
// the given fraction of it, as a power cut does to writes not yet synced:
// the cut may fall inside a command or a transaction.
func tearAOF(t testing.TB, dir string, keep float64) int64 {
	t.Helper()
	f := newestAOF(t, dir)
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(float64(fi.Size()) * keep)
	if err := os.Truncate(f, size); err != nil {
		t.Fatal(err)
	}
	return fi.Size() - size
}

// bucketField matches a histogram bucket field of the series hash in the
// AOF.
var bucketField = regexp.MustCompile(`\|b[0-9]+\r\n`)

// tearInsideApply cuts Redis's newest incremental AOF inside the last
// apply transaction that writes a histogram bucket: midway through the
// command that writes the stream mark, after the state writes before it,
// as a power cut can. Redis loads such a file by reverting the torn
// transaction.
func tearInsideApply(t testing.TB, dir string) int64 {
	t.Helper()
	f := newestAOF(t, dir)
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	markKey := "jetmetrics:{" + nodeName + "}:mark"
	// The client's command names reach the AOF as it sent them.
	markCmd := regexp.MustCompile(fmt.Sprintf(`(?i)\*4\r\n\$4\r\nHSET\r\n\$%d\r\n%s\r\n\$6\r\nstream\r\n`, len(markKey), regexp.QuoteMeta(markKey)))
	multi := []byte("*1\r\n$5\r\nMULTI\r\n")
	marks := markCmd.FindAllIndex(data, -1)
	for i := len(marks) - 1; ; i-- {
		at := -1
		if i >= 0 {
			at = marks[i][0]
		}
		if at < 0 {
			t.Fatalf("no apply transaction incrementing an integer field in %s", f)
		}
		begin := bytes.LastIndex(data[:at], multi)
		if begin >= 0 && bucketField.Match(data[begin:at]) {
			cut := int64(at + 5)
			if err := os.Truncate(f, cut); err != nil {
				t.Fatal(err)
			}
			return int64(len(data)) - cut
		}
	}
}

// TestRedisTornApply (scenario 5, the power cut made exact): the AOF is
// cut inside an apply transaction, after its state writes and before its
// mark write. Redis reverts the torn transaction when it loads the file,
// the aggregator replays the message, and the aggregate is exact; it must
// still be exact after Redis restarts once more from the same AOF.
func TestRedisTornApply(t *testing.T) {
	dir := t.TempDir()
	n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{Dir: dir, AppendFsync: "everysec"}), node.Config{})
	load := runSDKLoad(t, n.dial, "torn", 2, producers.Config{})
	load.waitChunks(t, 40)
	led := load.finish(t)
	settle(t, n.js, n.rdb)
	before := n.mark()
	if err := n.redis.Kill(); err != nil {
		t.Fatal(err)
	}
	cut := tearInsideApply(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.redis.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("cut %d bytes off the AOF inside an apply: stream mark %d, was %d", cut, n.mark(), before)
	n.checkExposed(led)
	if err := n.redis.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted Redis again from the same AOF: stream mark %d", n.mark())
	n.checkExposed(led)
}

// TestRedisKilled (scenario 5): Redis killed (SIGKILL) three times during
// load and restarted from its AOF. With appendfsync always nothing is lost;
// with the AOF's tail cut off, as a power cut loses what everysec had not
// synced, state and marks roll back together and the stream replays the
// difference. Either way every series ends exact, /metrics never shows a
// counter going down (it answers 503 while catching up), /-/ready reports
// Redis gone while it is, and nothing is dead-lettered.
func TestRedisKilled(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fsync string
		tear  bool
	}{
		{"fsync-always", "always", false},
		{"tail-lost", "everysec", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{Dir: dir, AppendFsync: tc.fsync}), node.Config{})
			sc := startScraper(t, n.rn.URL+"/metrics", watchNames("fault_requests_total", "fault_latency"), nil)
			load := runSDKLoad(t, n.dial, "redis", 2, producers.Config{})
			var high uint64
			for round := range 3 {
				// Caught up with what the last kill took, and beyond.
				load.waitChunks(t, 20)
				harness.Eventually(t, settleTimeout, func() error {
					if m := n.mark(); m <= high {
						return fmt.Errorf("stream mark %d, was %d before the last kill", m, high)
					}
					return nil
				})
				before := n.mark()
				high = before
				if err := n.redis.Kill(); err != nil {
					t.Fatal(err)
				}
				n.readiness(http.StatusServiceUnavailable)
				var cut int64
				if tc.tear {
					cut = tearAOF(t, dir, 0.6)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := n.redis.Restart(ctx)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				after := n.mark()
				t.Logf("round %d: stream mark %d before the kill, %d after the restart (%d AOF bytes cut)", round, before, after, cut)
				if tc.tear && after >= before {
					t.Fatalf("cutting %d bytes off the AOF did not roll the mark back", cut)
				}
				if !tc.tear && after < before {
					t.Fatalf("Redis with appendfsync always lost writes: mark %d, was %d", after, before)
				}
				n.readiness(http.StatusOK)
			}
			led := load.finish(t)
			settle(t, n.js, n.rdb)
			sc.finish(t, 5)
			n.checkExposed(led)
			n.noDeadLetters()
		})
	}
}

// TestRedisWiped (scenario 6): Redis loses everything (FLUSHALL) twice
// during load and once more when the load has stopped. The deltas the
// node's first checkpoint covers have been purged from the stream, as
// retention would, so the aggregate can only come back through the
// checkpoint plus a replay of the rest. Every series ends exact, /metrics
// never shows a counter going down, and the idle aggregator notices the
// last wipe on its own.
func TestRedisWiped(t *testing.T) {
	n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}), node.Config{})
	sc := startScraper(t, n.rn.URL+"/metrics", watchNames("fault_requests_total", "fault_latency"), nil)
	load := runSDKLoad(t, n.dial, "wipe", 2, producers.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()

	var ck *aggregate.Dump
	harness.Eventually(t, settleTimeout, func() (err error) {
		ck, err = snapshot.Checkpoints{JS: n.js}.LatestCheckpoint(ctx, nodeName)
		if err == nil && (ck == nil || ck.Mark() == 0) {
			err = fmt.Errorf("no checkpoint of %s yet", nodeName)
		}
		return err
	})
	s, err := n.js.Stream(ctx, streams.Config{}.DeltaStream())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(ck.Mark()+1)); err != nil {
		t.Fatal(err)
	}
	t.Logf("checkpoint at stream seq %d; the stream no longer holds the deltas up to it", ck.Mark())

	wipe := func() uint64 {
		t.Helper()
		before := n.mark()
		if err := n.rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		t.Logf("wiped Redis at stream mark %d", before)
		return before
	}
	for range 2 {
		load.waitChunks(t, 20)
		before := wipe()
		// Restored and caught up, before the next wipe.
		harness.Eventually(t, settleTimeout, func() error {
			if m := n.mark(); m <= before {
				return fmt.Errorf("stream mark %d, was %d before the wipe", m, before)
			}
			return nil
		})
	}
	led := load.finish(t)
	settle(t, n.js, n.rdb)
	wipe()
	settle(t, n.js, n.rdb)
	sc.finish(t, 5)
	n.checkExposed(led)

	fams, err := harness.Scrape(n.rn.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if got := harness.Samples(fams)["jetmetrics_aggregator_checkpoint_restores_total"]; got < 3 {
		t.Errorf("restored from the checkpoint %v times, want 3 (once per wipe)", got)
	}
	n.noDeadLetters()
}
