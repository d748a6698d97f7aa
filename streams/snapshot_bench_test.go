package streams_test

import (
	"encoding/json"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// benchDump builds the aggregate a node holds after n series of the bench
// harness's workload (tests/bench/workload.go): 40% counters with three
// labels, 20% counters and 30% gauges with two, 10% histograms of eleven
// buckets with two labels, stored as the aggregator stores them.
func benchDump(n int) *aggregate.Dump {
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	codes := []string{"200", "201", "404", "500"}
	type family struct {
		name, help string
		kind       aggregate.Kind
		labels     []string
		share      float64
		values     func(i int) []string
	}
	fams := []family{
		{"bench_http_requests_total", "HTTP requests served.", aggregate.Counter, []string{"code", "method", "path"}, 0.4, func(i int) []string {
			return []string{codes[(i/4)%4], methods[i%4], "/api/v1/items/" + strconv.Itoa(i/16)}
		}},
		{"bench_queue_jobs_total", "Jobs run, by queue and worker.", aggregate.Counter, []string{"queue", "worker"}, 0.2, func(i int) []string {
			return []string{"queue-" + strconv.Itoa(i%50), "worker-" + strconv.Itoa(i/50)}
		}},
		{"bench_queue_depth", "Jobs waiting, by queue and shard.", aggregate.Gauge, []string{"queue", "shard"}, 0.2, func(i int) []string {
			return []string{"queue-" + strconv.Itoa(i%50), strconv.Itoa(i / 50)}
		}},
		{"bench_temperature_celsius", "Sensor temperature.", aggregate.Gauge, []string{"rack", "slot"}, 0.1, func(i int) []string {
			return []string{"rack-" + strconv.Itoa(i/40), "slot-" + strconv.Itoa(i%40)}
		}},
		{"bench_request_duration_seconds", "Request latency.", aggregate.Histogram, []string{"method", "path"}, 0.1, func(i int) []string {
			return []string{methods[i%4], "/api/v1/items/" + strconv.Itoa(i/4)}
		}},
	}
	d := &aggregate.Dump{
		Node:     "node-1",
		Marks:    map[string]string{"stream": "123456", "p:producer-1": "991", "p:producer-2": "17"},
		Meta:     map[string]string{},
		Series:   map[string]string{},
		Rejected: map[string]string{"cardinality_limit": "12", "invalid_value": "3"},
	}
	left := n
	for fi, f := range fams {
		count := int(float64(n) * f.share)
		if fi == len(fams)-1 {
			count = left
		}
		left -= count
		m := aggregate.Meta{Kind: f.kind, Help: f.help}
		if f.kind == aggregate.Histogram {
			m.Buckets = buckets
		}
		raw, _ := json.Marshal(m)
		d.Meta[f.name] = string(raw)
		for i := range count {
			vals := f.values(i)
			labels := make([]series.Label, len(vals))
			for j, v := range vals {
				labels[j] = series.Label{Name: f.labels[j], Value: v}
			}
			key := series.Key(f.name, labels)
			switch f.kind {
			case aggregate.Counter:
				d.Series[key] = strconv.FormatFloat(float64((i*13)%100000+1), 'g', -1, 64)
			case aggregate.Gauge:
				d.Series[key] = strconv.FormatFloat(float64((i*7)%4000)/8-20, 'g', -1, 64)
			default:
				counts := make([]uint64, len(buckets)+1)
				sum := 0.0
				for j := range 20 {
					v := float64((i*31+j*17)%200) * 0.07
					counts[sort.SearchFloat64s(buckets, v)]++
					sum += v
				}
				for b, c := range counts {
					d.Series[aggregate.BucketField(key, b)] = strconv.FormatUint(c, 10)
				}
				d.Series[aggregate.SumField(key)] = strconv.FormatFloat(sum, 'g', -1, 64)
			}
		}
	}
	return d
}

// BenchmarkDecodeSnapshotState is what a /metrics/cluster scrape pays for
// each peer whose snapshot changed: decompress and decode the snapshot of
// 100k series, then build its families.
func BenchmarkDecodeSnapshotState(b *testing.B) {
	d := benchDump(100_000)
	msg, err := streams.SnapshotMsg("s", d, time.Now(), time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	data := msg.Data
	b.Run("decode+state", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			got, err := streams.DecodeSnapshot(data)
			if err != nil {
				b.Fatal(err)
			}
			st, err := got.State()
			if err != nil {
				b.Fatal(err)
			}
			if st.SeriesCount() != 100_000 {
				b.Fatalf("%d series", st.SeriesCount())
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := streams.DecodeSnapshot(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("state", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.State(); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What the cluster view builds for a peer: no keys, labels interned.
	b.Run("peer-state", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.PeerState(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
