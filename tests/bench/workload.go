package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// workload is the set of series every exposition, snapshot and memory
// figure uses: a mix of counters, gauges and histograms with two or three
// labels, the same series and values for jetmetrics and for client_golang,
// so both sides expose the same samples.
type workload struct {
	families []familySpec
}

// familySpec is one metric of the workload; share is its part of the
// series count.
type familySpec struct {
	name, help string
	kind       aggregate.Kind
	labels     []string // sorted by name, as series keys order them
	buckets    []float64
	share      float64
	n          int
}

// observationsPerHistogram is how many observations each histogram series
// holds.
const observationsPerHistogram = 20

var defaultBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// newWorkload spreads n series over the workload's families.
func newWorkload(n int) workload {
	fams := []familySpec{
		{name: "bench_http_requests_total", help: "HTTP requests served.", kind: aggregate.Counter, labels: []string{"code", "method", "path"}, share: 0.4},
		{name: "bench_queue_jobs_total", help: "Jobs run, by queue and worker.", kind: aggregate.Counter, labels: []string{"queue", "worker"}, share: 0.2},
		{name: "bench_queue_depth", help: "Jobs waiting, by queue and shard.", kind: aggregate.Gauge, labels: []string{"queue", "shard"}, share: 0.2},
		{name: "bench_temperature_celsius", help: "Sensor temperature.", kind: aggregate.Gauge, labels: []string{"rack", "slot"}, share: 0.1},
		{name: "bench_request_duration_seconds", help: "Request latency.", kind: aggregate.Histogram, labels: []string{"method", "path"}, buckets: defaultBuckets, share: 0.1},
	}
	left := n
	for i := range fams {
		fams[i].n = int(float64(n) * fams[i].share)
		if i == len(fams)-1 {
			fams[i].n = left
		}
		left -= fams[i].n
	}
	return workload{families: fams}
}

// seriesCount is the number of series of the workload.
func (w workload) seriesCount() int {
	n := 0
	for _, f := range w.families {
		n += f.n
	}
	return n
}

var methods = []string{"GET", "POST", "PUT", "DELETE"}
var codes = []string{"200", "201", "404", "500"}

// labelValues are the values of series i of f, in f.labels order.
func (f *familySpec) labelValues(i int, dst []string) []string {
	dst = dst[:0]
	switch f.name {
	case "bench_http_requests_total":
		dst = append(dst, codes[(i/4)%4], methods[i%4], "/api/v1/items/"+strconv.Itoa(i/16))
	case "bench_queue_jobs_total":
		dst = append(dst, "queue-"+strconv.Itoa(i%50), "worker-"+strconv.Itoa(i/50))
	case "bench_queue_depth":
		dst = append(dst, "queue-"+strconv.Itoa(i%50), strconv.Itoa(i/50))
	case "bench_temperature_celsius":
		dst = append(dst, "rack-"+strconv.Itoa(i/40), "slot-"+strconv.Itoa(i%40))
	case wideFamily:
		for j := range wideLabelCount {
			dst = append(dst, wideLabelValue(j, i))
		}
	default:
		dst = append(dst, methods[i%4], "/api/v1/items/"+strconv.Itoa(i/4))
	}
	return dst
}

// wideFamily is the one family of the wide workload: counters of 16
// labels of 256-byte values, the value distribution of
// consumers/aggregator TestSeriesMemory (wideLabels there): label j < 13
// takes 2+3j values shared across series, labels 13 to 15 are unique per
// series; values are 256 hex digits from a hash of j and the value's
// index, so they compress as real identifiers do.
const (
	wideFamily       = "bench_wide_requests_total"
	wideLabelCount   = 16
	wideSharedLabels = 13
	wideValueLength  = 256
)

// wideShared holds the shared values of the wide labels once, as a
// service holds the few values of a label it passes to the SDK or to
// client_golang (the same strings for every series).
var wideShared = func() [][]string {
	t := make([][]string, wideSharedLabels)
	for j := range t {
		for v := range 2 + 3*j {
			t[j] = append(t[j], wideValue(j, v))
		}
	}
	return t
}()

// wideLabelValue is the value of wide label j of series i.
func wideLabelValue(j, i int) string {
	if j < wideSharedLabels {
		return wideShared[j][i%(2+3*j)]
	}
	return wideValue(j, i)
}

// wideValue is value v of wide label j, as wideValue in
// consumers/aggregator's memory_test.go builds them but seeded with v<<1:
// there, values 2k and 2k+1 of a label are equal (v|1), so label 0 has one
// value and about 0.6 % of 20k "unique" series coincide.
func wideValue(j, v int) string {
	b := make([]byte, 0, wideValueLength)
	x := uint64(j)<<40 | uint64(v)<<1 | 1
	for len(b) < wideValueLength {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b = append(b, "0123456789abcdef"[x&15])
	}
	return string(b)
}

// newWideWorkload is n wide series (wideFamily) and nothing else.
func newWideWorkload(n int) workload {
	labels := make([]string, wideLabelCount)
	for j := range labels {
		labels[j] = fmt.Sprintf("label_%02d", j)
	}
	return workload{families: []familySpec{{name: wideFamily, help: "Requests, by 16 long labels.", kind: aggregate.Counter, labels: labels, share: 1, n: n}}}
}

// labelBytes is the mean of a series' label names and values, in bytes.
func (w workload) labelBytes() float64 {
	total, n := 0, 0
	var values []string
	for fi := range w.families {
		f := &w.families[fi]
		for i := range f.n {
			values = f.labelValues(i, values)
			for j, v := range values {
				total += len(f.labels[j]) + len(v)
			}
		}
		n += f.n
	}
	if n == 0 {
		return 0
	}
	return float64(total) / float64(n)
}

// value of series i of a counter or gauge family; seed varies it between
// nodes and versions. Gauges have fractions, exact in binary.
func (f *familySpec) value(i, seed int) float64 {
	if f.kind == aggregate.Gauge {
		return float64((i*7+seed)%4000)/8 - 20
	}
	return float64((i*13+seed)%100000 + 1)
}

// observation j of histogram series i.
func observation(i, j, seed int) float64 {
	return float64((i*31+j*17+seed)%200) * 0.07
}

// histogram returns the per-bucket counts (the last for +Inf) and the sum
// of histogram series i, as client_golang's Observe would build them.
func (f *familySpec) histogram(i, seed int, counts []uint64) ([]uint64, float64) {
	counts = append(counts[:0], make([]uint64, len(f.buckets)+1)...)
	sum := 0.0
	for j := range observationsPerHistogram {
		v := observation(i, j, seed)
		counts[sort.SearchFloat64s(f.buckets, v)]++
		sum += v
	}
	return counts, sum
}

// fill writes the workload into store's aggregate, as a node's aggregator
// would after applying it, in groups of at most 20,000 field writes, each
// moving the stream mark up by one from mark. seed varies the values. It
// returns the stream mark it leaves.
func (w workload) fill(ctx context.Context, store *aggregate.Store, seed int, mark uint64) (uint64, error) {
	return w.fillGroups(ctx, store, seed, mark, 1)
}

// fillAt is fill leaving the stream mark where it is, for a node whose
// aggregator is to start at the head of a fresh stream.
func (w workload) fillAt(ctx context.Context, store *aggregate.Store, seed int, mark uint64) (uint64, error) {
	return w.fillGroups(ctx, store, seed, mark, 0)
}

func (w workload) fillGroups(ctx context.Context, store *aggregate.Store, seed int, mark, step uint64) (uint64, error) {
	const maxOps = 20_000
	u := aggregate.NewUpdate()
	u.Expect = mark
	flush := func() error {
		if u.Ops() == 0 {
			return nil
		}
		u.Mark = u.Expect + step
		if err := store.Apply(ctx, u); err != nil {
			// go-redis resends a script that timed out; when the first
			// attempt went through, the resend finds the mark moved.
			if m, merr := store.StreamMark(ctx); !errors.Is(err, aggregate.ErrConflict) || merr != nil || m != u.Mark || step == 0 {
				return fmt.Errorf("fill %s: %w", store.Node(), err)
			}
		}
		next := u.Mark
		u.Reset()
		u.Expect = next
		return nil
	}
	var values []string
	var labels []series.Label
	var counts []uint64
	for fi := range w.families {
		f := &w.families[fi]
		u.Describe(f.name, aggregate.Meta{Kind: f.kind, Help: f.help, Buckets: f.buckets})
		for i := range f.n {
			values = f.labelValues(i, values)
			labels = labels[:0]
			for j, ln := range f.labels {
				labels = append(labels, series.Label{Name: ln, Value: values[j]})
			}
			key := series.Key(f.name, labels)
			switch f.kind {
			case aggregate.Counter:
				u.SetValue(key, f.value(i, seed))
			case aggregate.Gauge:
				u.SetValue(key, f.value(i, seed))
			case aggregate.Histogram:
				var sum float64
				counts, sum = f.histogram(i, seed, counts)
				for b, c := range counts {
					if c > 0 {
						u.SetBucket(key, b, c)
					}
				}
				u.SetSum(key, sum)
			}
			if u.Ops() >= maxOps {
				if err := flush(); err != nil {
					return 0, err
				}
				u.Describe(f.name, aggregate.Meta{Kind: f.kind, Help: f.help, Buckets: f.buckets})
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return u.Expect, nil
}

// registry builds the same series in a client_golang registry, the peer
// of the exposition figures. With nodes, every series is repeated once
// per node with a node label, as /metrics/cluster shows them.
func (w workload) registry(nodes []string) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	var values []string
	for fi := range w.families {
		f := &w.families[fi]
		names := f.labels
		if len(nodes) > 0 {
			names = append([]string{"node"}, f.labels...)
		}
		var c prometheus.Collector
		var with func(lv []string, i, seed int)
		switch f.kind {
		case aggregate.Counter:
			v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: f.name, Help: f.help}, names)
			c, with = v, func(lv []string, i, seed int) { v.WithLabelValues(lv...).Add(f.value(i, seed)) }
		case aggregate.Gauge:
			v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: f.name, Help: f.help}, names)
			c, with = v, func(lv []string, i, seed int) { v.WithLabelValues(lv...).Set(f.value(i, seed)) }
		case aggregate.Histogram:
			v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: f.name, Help: f.help, Buckets: f.buckets}, names)
			c, with = v, func(lv []string, i, seed int) {
				h := v.WithLabelValues(lv...)
				for j := range observationsPerHistogram {
					h.Observe(observation(i, j, seed))
				}
			}
		}
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("peer registry: %w", err)
		}
		seeds := []string{""}
		if len(nodes) > 0 {
			seeds = nodes
		}
		for ni, node := range seeds {
			for i := range f.n {
				values = f.labelValues(i, values)
				lv := values
				if len(nodes) > 0 {
					lv = append([]string{node}, values...)
				}
				with(lv, i, ni)
			}
		}
	}
	return reg, nil
}
