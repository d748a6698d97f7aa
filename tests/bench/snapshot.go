package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// heldOf is the aggregate of d as its aggregator holds it in memory.
func heldOf(d *aggregate.Dump) (aggregate.Held, error) {
	st, err := d.State()
	if err != nil {
		return aggregate.Held{}, err
	}
	marks, err := d.Position()
	if err != nil {
		return aggregate.Held{}, err
	}
	metas, err := d.Metas()
	if err != nil {
		return aggregate.Held{}, err
	}
	return aggregate.Held{State: st, Producers: marks.Producers, Metas: metas}, nil
}

// snapshotSamples is how many snapshots the spread is timed over.
const snapshotSamples = 5

// snapshotFigure measures a snapshot of n series on the wire, the time to
// build and to read one, and the time from a node publishing its snapshot
// until a peer's /metrics/cluster serves it.
func snapshotFigure(ctx context.Context, e *env, n int, rep *report) error {
	w := newWorkload(n)
	_, scratch, err := e.redis(ctx, "snapshot")
	if err != nil {
		return err
	}
	store := aggregate.NewStore(scratch, "", "n1")
	if _, err := w.fill(ctx, store, 0, 0); err != nil {
		return err
	}
	var fromRedis, fromMemory, decode []float64
	var size int
	subject := streams.Config{}.Subjects().Snapshot("n1")
	for range 3 {
		start := time.Now()
		d, err := store.Dump(ctx)
		if err != nil {
			return err
		}
		if _, err := streams.SnapshotMsg(subject, d, time.Now(), time.Minute); err != nil {
			return err
		}
		fromRedis = append(fromRedis, time.Since(start).Seconds()*1000)
		// What a node publishes: its aggregator's state, held in memory.
		held, err := heldOf(d)
		if err != nil {
			return err
		}
		start = time.Now()
		msg, _, err := streams.SnapshotMsgOf(subject, held, time.Now(), time.Minute)
		if err != nil {
			return err
		}
		fromMemory = append(fromMemory, time.Since(start).Seconds()*1000)
		size = len(msg.Data) + headerBytes(msg.Header)
		start = time.Now()
		back, err := streams.DecodeSnapshot(msg.Data)
		if err != nil {
			return err
		}
		if _, err := back.State(); err != nil {
			return err
		}
		decode = append(decode, time.Since(start).Seconds()*1000)
	}
	peerSize, err := gzipExpositionSize(w)
	if err != nil {
		return err
	}
	rep.add(
		newRow(fmt.Sprintf("snapshot: %dk series on the wire", n/1000), "MB", float64(size)/1e6, peerSize/1e6, goal{kind: atMost, value: 4, unit: "MB"},
			"zstd JSON with headers; peer: the same series as promhttp's gzipped text"),
		newRow("snapshot: build from the aggregate in memory (what a node does)", "ms", median(fromMemory), math.NaN(), goal{}, "streams.SnapshotMsgOf"),
		newRow("snapshot: build from Redis (Dump + encode)", "ms", median(fromRedis), math.NaN(), goal{}, "while the aggregator is not consuming"),
		newRow("snapshot: read on a peer (decode + State)", "ms", median(decode), math.NaN(), goal{}, ""),
	)

	stored, served, err := snapshotSpread(ctx, e, w)
	if err != nil {
		return err
	}
	slices.Sort(served)
	slices.Sort(stored)
	note := fmt.Sprintf("%d snapshots; from the stream's timestamp to the first /metrics/cluster showing it", len(served))
	rep.add(
		newRow("snapshot: publish → stored by the peer, median", "ms", median(stored), math.NaN(), goal{}, ""),
		newRow("snapshot: publish → served by the peer, median", "ms", median(served), math.NaN(), goal{}, note),
		newRow("snapshot: publish → served by the peer, worst", "ms", slices.Max(served), math.NaN(), goal{kind: atMost, value: 1000, unit: "ms"}, note),
	)
	return nil
}

// headerBytes is the size of a message's headers on the wire.
func headerBytes(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// gzipExpositionSize is the size of promhttp's gzipped text exposition of
// the workload.
func gzipExpositionSize(w workload) (float64, error) {
	reg, err := w.registry(nil)
	if err != nil {
		return 0, err
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, req)
	return float64(rec.Body.Len()), nil
}

// snapshotSpread runs node n1 with the workload, publishing its snapshot
// every second, and node n2 beside it on the same NATS. For each of a few
// new versions of n1, it times from the snapshot's publication (the
// stream's timestamp) until n2 stores it, and until n2's /metrics/cluster
// serves it.
func snapshotSpread(ctx context.Context, e *env, w workload) (stored, served []float64, err error) {
	_, rdbA, err := e.redis(ctx, "node-a")
	if err != nil {
		return nil, nil, err
	}
	_, rdbB, err := e.redis(ctx, "node-b")
	if err != nil {
		return nil, nil, err
	}
	if _, err := w.fillAt(ctx, aggregate.NewStore(rdbA, "", "n1"), 0, 0); err != nil {
		return nil, nil, err
	}
	regA := prometheus.NewRegistry()
	a, err := e.startNode(ctx, node.Config{Name: "n1", RedisURL: "unix://" + rdbA.Options().Addr, Registry: regA,
		SnapshotInterval: time.Second, SnapshotTTL: 30 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	regB := prometheus.NewRegistry()
	b, err := e.startNode(ctx, node.Config{Name: "n2", NATSURL: a.NATSURL(), RedisURL: "unix://" + rdbB.Options().Addr, Registry: regB,
		SnapshotInterval: time.Second, SnapshotTTL: 30 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(a.NATSURL())
	if err != nil {
		return nil, nil, err
	}
	e.onClose(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	// published records when each version of n1's snapshot reached the
	// stream.
	var mu sync.Mutex
	published := map[uint64]time.Time{}
	cons, err := js.OrderedConsumer(ctx, streams.Config{}.SnapshotStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{streams.Config{}.Subjects().Snapshot("n1")},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, nil, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		v, err := strconv.ParseUint(m.Headers().Get(streams.HeaderSnapshotVersion), 10, 64)
		if err != nil {
			return
		}
		mu.Lock()
		if _, ok := published[v]; !ok {
			published[v] = md.Timestamp
		}
		mu.Unlock()
	})
	if err != nil {
		return nil, nil, err
	}
	e.onClose(cc.Stop)
	bumper, err := newLocalBumper(a, nc)
	if err != nil {
		return nil, nil, err
	}
	e.onClose(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = bumper.p.Close(cctx)
	})

	for k := 1; k <= snapshotSamples; k++ {
		if err := bumper.bump(ctx); err != nil {
			return nil, nil, err
		}
		mark, err := counterValue(regA, appliedSequence)
		if err != nil {
			return nil, nil, err
		}
		v := uint64(mark)
		var pub time.Time
		if err := poll(ctx, 30*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			var ok bool
			if pub, ok = published[v]; !ok {
				return fmt.Errorf("no snapshot of version %d published", v)
			}
			return nil
		}); err != nil {
			return nil, nil, err
		}
		if err := poll(ctx, 30*time.Second, func() error {
			got, err := peerVersion(regB, "n1")
			if err == nil && got < float64(v) {
				err = fmt.Errorf("n2 holds version %v of n1, want %d", got, v)
			}
			return err
		}); err != nil {
			return nil, nil, err
		}
		stored = append(stored, time.Since(pub).Seconds()*1000)
		// Scrape until the view shows the version: a scrape that started
		// before the snapshot was stored may still show the last one.
		url := b.url + "/metrics/cluster?node=n1&name=harness_bump"
		if err := poll(ctx, 30*time.Second, func() error {
			s, err := scrape(ctx, url, acceptText, false)
			if err != nil {
				return err
			}
			if got := bumpValue(s.body); got != float64(k) {
				return fmt.Errorf("n2 serves harness_bump %v of n1, want %d", got, k)
			}
			return nil
		}); err != nil {
			return nil, nil, err
		}
		served = append(served, time.Since(pub).Seconds()*1000)
	}
	return stored, served, nil
}

// peerVersion reads jetmetrics_peer_snapshot_version{peer=…} from reg.
func peerVersion(reg prometheus.Gatherer, peer string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != "jetmetrics_peer_snapshot_version" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "peer" && l.GetValue() == peer {
					return m.GetGauge().GetValue(), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no snapshot of %s yet", peer)
}

// bumpValue reads the harness_bump sample of a text exposition, NaN when
// there is none.
func bumpValue(body []byte) float64 {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return math.NaN()
	}
	for _, m := range fams["harness_bump"].GetMetric() {
		return m.GetGauge().GetValue()
	}
	return math.NaN()
}
