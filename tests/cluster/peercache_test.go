package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// peerDump is a simulated peer's aggregate at version: a counter, a gauge,
// a histogram and a family large enough to span several frames.
func peerDump(node string, version uint64) *aggregate.Dump {
	d := &aggregate.Dump{Node: node, Marks: map[string]string{"stream": strconv.FormatUint(version, 10)},
		Meta: map[string]string{
			"pc_total": `{"type":"counter"}`, "pg": `{"type":"gauge"}`,
			"ph": `{"type":"histogram","buckets":[1]}`, "pbig": `{"type":"gauge"}`,
		}, Series: map[string]string{}}
	for i := range 5 {
		d.Series[fmt.Sprintf(`pc_total{i="%d"}`, i)] = fmt.Sprint(i + 1)
		d.Series[fmt.Sprintf(`pg{i="%d"}`, i)] = fmt.Sprint(-i)
	}
	d.Series[`ph{i="0"}|b0`], d.Series[`ph{i="0"}|b1`], d.Series[`ph{i="0"}|sum`] = "2", "1", "3.5"
	for i := range 12000 {
		d.Series[fmt.Sprintf(`pbig{i="%d",pad="%040d"}`, i, i)] = fmt.Sprint(i)
	}
	return d
}

// peerFeed publishes simulated peers' snapshots onto a node's snapshot
// stream, as their publishers would.
type peerFeed struct {
	t    *testing.T
	js   jetstream.JetStream
	subj streams.Subjects
	gen  time.Time
}

func (f *peerFeed) publish(msg *nats.Msg) {
	f.t.Helper()
	if _, err := f.js.PublishMsg(context.Background(), msg); err != nil {
		f.t.Fatal(err)
	}
}

func (f *peerFeed) next() time.Time {
	f.gen = f.gen.Add(time.Second)
	return f.gen
}

// full publishes d whole; unindexed writes it as a snapshot was before the
// family index (one zstd frame of its JSON). It returns the delta base.
func (f *peerFeed) full(d *aggregate.Dump, unindexed bool) streams.DeltaBase {
	f.t.Helper()
	gen := f.next()
	msg, err := streams.SnapshotMsg(f.subj.Snapshot(d.Node), d, gen, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	if unindexed {
		raw, _ := json.Marshal(d)
		enc, _ := zstd.NewWriter(nil)
		msg.Data = enc.EncodeAll(raw, nil)
		if streams.SnapshotIndexed(msg.Data) {
			f.t.Fatal("unindexed snapshot has an index")
		}
	}
	f.publish(msg)
	return streams.DeltaBase{Version: d.Mark(), Generated: gen}
}

// delta publishes what changed from d to next onto base; it returns the
// next base.
func (f *peerFeed) delta(base streams.DeltaBase, d, next *aggregate.Dump) streams.DeltaBase {
	f.t.Helper()
	delta := &streams.SnapshotDelta{Marks: next.Marks, Meta: next.Meta, Series: map[string]string{}}
	for k, v := range next.Series {
		if d.Series[k] != v {
			delta.Series[k] = v
		}
	}
	for k := range d.Series {
		if _, ok := next.Series[k]; !ok {
			delta.Deleted = append(delta.Deleted, k)
		}
	}
	gen := f.next()
	msg, err := streams.SnapshotDeltaMsg(f.subj.Snapshot(next.Node), next.Node, next.Mark(), base, delta, gen, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	f.publish(msg)
	return streams.DeltaBase{Version: next.Mark(), Generated: gen}
}

// evolve is d one version on: a counter series up, a gauge series and a
// big one gone (tombstones), a series new.
func evolve(d *aggregate.Dump, round int) *aggregate.Dump {
	n := &aggregate.Dump{Node: d.Node, Marks: map[string]string{"stream": strconv.FormatUint(d.Mark()+1, 10)}, Meta: d.Meta, Series: maps.Clone(d.Series)}
	n.Series[`pc_total{i="0"}`] = fmt.Sprint(100 * (round + 1))
	delete(n.Series, fmt.Sprintf(`pg{i="%d"}`, round))
	delete(n.Series, fmt.Sprintf(`pbig{i="%d",pad="%040d"}`, round, round))
	n.Series[fmt.Sprintf(`pc_total{i="new%d"}`, round)] = "7"
	return n
}

// peerSamples are the samples of fams of the simulated peers' families.
func peerSamples(fams map[string]*dto.MetricFamily, names ...string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range harness.Samples(fams) {
		for _, n := range names {
			if strings.HasPrefix(k, n) {
				out[k] = v
			}
		}
	}
	return out
}

// TestClusterFilteredFromIndex: three peers' snapshots (one with two
// deltas in its chain, tombstones among them; one written before the
// family index) served by a node whose decoded-family cache is far smaller
// than the peers' aggregates. A scrape filtered by ?name= serves exactly
// the unfiltered scrape's samples of that metric, every peer's newest
// version; the cache stays within its budget and holds something.
func TestClusterFilteredFromIndex(t *testing.T) {
	const budget = 256 << 10
	n := harness.StartNode(t, node.Config{ClusterCacheBytes: budget})
	nc := n.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	feed := &peerFeed{t: t, js: js, subj: streams.Config{}.Subjects(), gen: time.UnixMilli(time.Now().UnixMilli())}

	p1 := peerDump("p1", 10)
	base := feed.full(p1, false)
	want := map[string]*aggregate.Dump{"p1": p1}
	for round := range 2 {
		next := evolve(want["p1"], round)
		base = feed.delta(base, want["p1"], next)
		want["p1"] = next
	}
	want["p2"] = peerDump("p2", 5)
	feed.full(want["p2"], true)
	p3 := peerDump("p3", 7)
	b3 := feed.full(p3, false)
	want["p3"] = evolve(p3, 3)
	feed.delta(b3, p3, want["p3"])

	var all map[string]*dto.MetricFamily
	harness.Eventually(t, 30*time.Second, func() (err error) {
		if all, err = harness.Scrape(n.URL + "/metrics/cluster"); err != nil {
			return err
		}
		got := peerSamples(all, "pc_total")
		for node, d := range want {
			key := fmt.Sprintf(`pc_total{i="0",node="%s"}`, node)
			if w, _ := strconv.ParseFloat(d.Series[`pc_total{i="0"}`], 64); got[key] != w {
				return fmt.Errorf("%s = %v, want %v", key, got[key], w)
			}
		}
		return nil
	})
	if _, ok := harness.Samples(all)[`pg{i="0",node="p1"}`]; ok {
		t.Error("p1's tombstoned series is served")
	}
	if got := peerSamples(all, "pbig"); len(got) != 3*12000-3 {
		t.Errorf("unfiltered: %d pbig samples, want %d", len(got), 3*12000-3)
	}
	for _, name := range []string{"pc_total", "pg", "ph", "pbig"} {
		filt, err := harness.Scrape(n.URL + "/metrics/cluster?name=" + name)
		if err != nil {
			t.Fatal(err)
		}
		for fam := range filt {
			if fam != name {
				t.Errorf("?name=%s serves %s", name, fam)
			}
		}
		got, wantS := peerSamples(filt, name), peerSamples(map[string]*dto.MetricFamily{name: all[name]}, name)
		if len(wantS) == 0 || !maps.Equal(got, wantS) {
			t.Errorf("?name=%s: %d samples, the unfiltered view's %d", name, len(got), len(wantS))
		}
	}
	fams, err := harness.Scrape(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if got := harness.Samples(fams)["jetmetrics_cluster_cache_bytes"]; got <= 0 || got > budget {
		t.Errorf("jetmetrics_cluster_cache_bytes %v, want within (0, %d]", got, budget)
	}
}
