package cluster_test

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// TestClusterCopiesFollowTheStore: the cluster view keeps copies of peers'
// compressed chains and reads only what changed; a filtered scrape after
// each change to a peer's stored snapshot (a new delta, a new full one, a
// wipe of the peer store, a removal, an expiry) serves exactly the stored
// state, never the copy's.
func TestClusterCopiesFollowTheStore(t *testing.T) {
	ctx := context.Background()
	rs := harness.Redis(t)
	rdb := harness.RedisClient(t, rs)
	n := harness.StartNode(t, node.Config{RedisURL: rs.URL()})
	js, err := jetstream.New(n.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	feed := &peerFeed{t: t, js: js, subj: streams.Config{}.Subjects(), gen: time.UnixMilli(time.Now().UnixMilli())}

	// expect waits until the filtered scrape serves exactly d's pc_total
	// series for p1 (none when d is nil).
	expect := func(step string, d *aggregate.Dump) {
		t.Helper()
		want := map[string]float64{}
		if d != nil {
			for k, v := range d.Series {
				if strings.HasPrefix(k, "pc_total{") {
					f, _ := strconv.ParseFloat(v, 64)
					want[strings.TrimSuffix(k, "}")+`,node="p1"}`] = f
				}
			}
		}
		harness.Eventually(t, 30*time.Second, func() error {
			fams, err := harness.Scrape(n.URL + "/metrics/cluster?name=pc_total")
			if err != nil {
				return err
			}
			got := peerSamples(fams, "pc_total")
			if !maps.Equal(got, want) {
				return fmt.Errorf("%s: serves %v, want %v", step, got, want)
			}
			return nil
		})
	}
	chainBytes := func() float64 {
		t.Helper()
		fams, err := harness.Scrape(n.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return harness.Samples(fams)["jetmetrics_cluster_cache_chain_bytes"]
	}

	d := peerDump("p1", 10)
	base := feed.full(d, false)
	expect("first full", d)
	if got := chainBytes(); got <= 0 {
		t.Fatalf("jetmetrics_cluster_cache_chain_bytes %v after a scrape, want the copy counted", got)
	}
	for round := range 3 {
		next := evolve(d, round)
		base = feed.delta(base, d, next)
		d = next
		expect(fmt.Sprintf("delta %d", round+1), d)
	}
	d = evolve(d, 3)
	base = feed.full(d, false)
	expect("a new full", d)
	next := evolve(d, 4)
	feed.delta(base, d, next)
	d = next
	expect("a delta on it", d)

	// The peer store wiped: the copy is not served, and what is stored
	// next is.
	keys, err := rdb.Keys(ctx, aggregate.DefaultKeyPrefix+":{peer:p1}:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("peer keys %v: %v", keys, err)
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	expect("peer store wiped", nil)
	d = evolve(d, 5)
	feed.full(d, false)
	expect("a full after the wipe", d)

	feed.publish(streams.RemovalMsg(feed.subj.Snapshot("p1"), "p1", d.Mark(), feed.next(), time.Hour))
	expect("removed", nil)
	if got := chainBytes(); got != 0 {
		t.Errorf("jetmetrics_cluster_cache_chain_bytes %v with no live peer, want 0", got)
	}

	// Back, then expired: a snapshot with a short time to live.
	d = evolve(d, 6)
	msg, err := streams.SnapshotMsg(feed.subj.Snapshot("p1"), d, feed.next(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	feed.publish(msg)
	expect("back", d)
	expect("expired", nil)
}
