package streams_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// item is one metric to encode, in the Encoder's terms.
type item struct {
	kind    streams.Kind
	name    string
	help    string
	labels  []series.Label
	value   float64
	buckets []float64
	counts  []uint64
	sum     float64
}

type batchIn struct {
	node, producer string
	seq            uint64
	time           int64
	items          []item
}

func encode(t testing.TB, enc *streams.Encoder, in batchIn) []byte {
	t.Helper()
	enc.Begin(in.node, in.producer, in.seq, in.time)
	for _, it := range in.items {
		var err error
		switch it.kind {
		case streams.KindCounter:
			err = enc.Counter(it.name, it.help, it.labels, it.value)
		case streams.KindGauge:
			err = enc.Gauge(it.name, it.help, it.labels, it.value)
		case streams.KindHistogram:
			err = enc.Histogram(it.name, it.help, it.labels, it.buckets, it.counts, it.sum)
		}
		if err != nil {
			t.Fatalf("encode %s: %v", it.name, err)
		}
	}
	if enc.Count() != len(in.items) {
		t.Fatalf("Count = %d, want %d", enc.Count(), len(in.items))
	}
	out := enc.Finish()
	if enc.Len() != len(out) {
		t.Fatalf("Len = %d, Finish gave %d bytes", enc.Len(), len(out))
	}
	return out
}

// want is what encoding/json makes of the same batch: marshal the Batch
// and decode it again, so omitempty and string coercion apply alike.
func want(t testing.TB, in batchIn) streams.Batch {
	t.Helper()
	b := streams.Batch{
		Version: streams.WireVersion, Node: in.node, Producer: in.producer,
		Seq: in.seq, Time: in.time, Metrics: []streams.Metric{},
	}
	for _, it := range in.items {
		m := streams.Metric{Name: it.name, Type: it.kind, Help: it.help, Buckets: it.buckets, Counts: it.counts, Sum: it.sum}
		if it.kind != streams.KindHistogram {
			m.Value = it.value
		}
		if len(it.labels) > 0 {
			m.Labels = map[string]string{}
			for _, l := range it.labels {
				m.Labels[l.Name] = l.Value
			}
		}
		b.Metrics = append(b.Metrics, m)
	}
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	var out streams.Batch
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("json.Unmarshal of encoding/json output: %v", err)
	}
	return out
}

func decode(t testing.TB, raw []byte) streams.Batch {
	t.Helper()
	var got streams.Batch
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return got
}

// sameBits compares every float by its bits, which reflect.DeepEqual does
// not (it treats 0 and -0 as equal).
func sameBits(a, b streams.Batch) bool {
	if len(a.Metrics) != len(b.Metrics) {
		return false
	}
	for i := range a.Metrics {
		x, y := a.Metrics[i], b.Metrics[i]
		if math.Float64bits(x.Value) != math.Float64bits(y.Value) || math.Float64bits(x.Sum) != math.Float64bits(y.Sum) {
			return false
		}
		for j := range x.Buckets {
			if math.Float64bits(x.Buckets[j]) != math.Float64bits(y.Buckets[j]) {
				return false
			}
		}
	}
	return true
}

func checkRoundTrip(t testing.TB, enc *streams.Encoder, in batchIn) {
	t.Helper()
	raw := encode(t, enc, in)
	if !json.Valid(raw) {
		t.Fatalf("invalid JSON: %s", raw)
	}
	if !utf8.Valid(raw) {
		t.Fatalf("invalid UTF-8: %q", raw)
	}
	got, exp := decode(t, raw), want(t, in)
	if !reflect.DeepEqual(got, exp) || !sameBits(got, exp) {
		t.Fatalf("round trip of %s\n got %+v\nwant %+v", raw, got, exp)
	}
}

func TestEncoderRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   batchIn
	}{
		{"empty batch", batchIn{node: "n1", producer: "p-abc", seq: 1}},
		{"example", batchIn{node: "n", producer: "p", seq: 3, time: 1700000000000, items: []item{
			{kind: streams.KindCounter, name: "x", help: "...", labels: []series.Label{{Name: "a", Value: "b"}}, value: 5},
			{kind: streams.KindHistogram, name: "h", labels: []series.Label{{Name: "a", Value: "b"}}, buckets: []float64{0.1, 1}, counts: []uint64{1, 0, 2}, sum: 3.5},
		}}},
		{"escapes", batchIn{node: "n", producer: "p", seq: 1, items: []item{
			{kind: streams.KindGauge, name: "g", help: "quote \" backslash \\ newline \n tab \t cr \r bs \b ff \f nul \x00 us \x1f del \x7f <&>", labels: []series.Label{
				{Name: "path", Value: `C:\dir\"file"`},
				{Name: "ctl", Value: "\x01\x02\x1b[0m"},
				{Name: "js", Value: "line\u2028para\u2029end"},
			}, value: 1},
		}}},
		{"unicode", batchIn{node: "n", producer: "p", seq: 1, items: []item{
			{kind: streams.KindCounter, name: "u", help: "héllo wörld — 日本語 🚀", labels: []series.Label{{Name: "emoji", Value: "🚀🔥"}, {Name: "cjk", Value: "指标"}}, value: 1},
		}}},
		{"invalid utf8 becomes U+FFFD", batchIn{node: "n", producer: "p", seq: 1, items: []item{
			{kind: streams.KindCounter, name: "u", help: "bad \xff\xfe end \xe2\x82", labels: []series.Label{{Name: "v", Value: "x\x80y"}}, value: 1},
		}}},
		{"tricky floats", batchIn{node: "n", producer: "p", seq: 1, items: []item{
			{kind: streams.KindCounter, name: "zero", value: 0},
			{kind: streams.KindGauge, name: "negzero", value: math.Copysign(0, -1)},
			{kind: streams.KindGauge, name: "tiny", value: 1e-300},
			{kind: streams.KindGauge, name: "subnormal", value: 5e-324},
			{kind: streams.KindGauge, name: "max", value: math.MaxFloat64},
			{kind: streams.KindGauge, name: "neg", value: -123.456},
			{kind: streams.KindCounter, name: "two53", value: 1 << 53},
			{kind: streams.KindCounter, name: "two53plus2", value: 1<<53 + 2},
			{kind: streams.KindCounter, name: "third", value: 1.0 / 3},
			{kind: streams.KindGauge, name: "million", value: 1e6},
			{kind: streams.KindHistogram, name: "h", buckets: []float64{-1, 0, 1e-9, 2.5e10}, counts: []uint64{0, math.MaxUint64, 1 << 53, 1<<53 + 1, 7}, sum: -0.1},
			{kind: streams.KindHistogram, name: "negzerosum", buckets: []float64{1}, counts: []uint64{0, 0}, sum: math.Copysign(0, -1)},
			{kind: streams.KindHistogram, name: "nobuckets", counts: []uint64{3}, sum: 1},
		}}},
		{"big integers", batchIn{node: "n", producer: "p", seq: math.MaxUint64, time: math.MinInt64, items: []item{
			{kind: streams.KindCounter, name: "c", value: 1},
		}}},
		{"empty labels", batchIn{node: "n", producer: "p", seq: 9, time: -1, items: []item{
			{kind: streams.KindCounter, name: "c", labels: []series.Label{}, value: 1},
			{kind: streams.KindCounter, name: "c", labels: []series.Label{{Name: "empty", Value: ""}}, value: 2},
		}}},
	}
	var enc streams.Encoder // reused on purpose: Begin must reset everything
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRoundTrip(t, &enc, tt.in)
		})
	}
}

// The encoder's output passes the node's own decoder, entry by entry.
func TestEncoderOutputPassesDecode(t *testing.T) {
	var enc streams.Encoder
	labels := []series.Label{{Name: "path", Value: "/a\"b\\c\n"}, {Name: "emoji", Value: "🚀"}}
	raw := encode(t, &enc, batchIn{node: "n1", producer: "svc-abcdefgh", seq: 7, time: 1700000000000, items: []item{
		{kind: streams.KindCounter, name: "c_total", help: "C.", labels: labels, value: 0},
		{kind: streams.KindGauge, name: "g", labels: labels, value: math.Copysign(0, -1)},
		{kind: streams.KindHistogram, name: "h", help: "H.", buckets: []float64{0.1, 1}, counts: []uint64{0, 0, 0}},
		{kind: streams.KindHistogram, name: "h", labels: labels, buckets: []float64{0.1, 1}, counts: []uint64{1, 2, 3}, sum: 12.5},
	}})
	d, err := streams.Decode(raw, "n1", series.Limits{})
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if d.Producer != "svc-abcdefgh" || d.Seq != 7 || d.Time != 1700000000000 || len(d.Entries) != 4 {
		t.Fatalf("decoded %+v", d)
	}
	for _, e := range d.Entries {
		if e.Reject != nil {
			t.Errorf("%s rejected: %v", e.Name, e.Reject)
		}
	}
}

func TestEncoderExactBytes(t *testing.T) {
	var enc streams.Encoder
	got := string(encode(t, &enc, batchIn{node: "n", producer: "p", seq: 3, time: 1700000000000, items: []item{
		{kind: streams.KindCounter, name: "x", help: "h", labels: []series.Label{{Name: "a", Value: "b"}}, value: 5},
		{kind: streams.KindHistogram, name: "h", buckets: []float64{0.1, 1}, counts: []uint64{1, 0, 2}, sum: 3.5},
	}}))
	const want = `{"v":1,"node":"n","producer":"p","seq":3,"time":1700000000000,"metrics":[` +
		`{"name":"x","type":"counter","help":"h","labels":{"a":"b"},"value":5},` +
		`{"name":"h","type":"histogram","buckets":[0.1,1],"counts":[1,0,2],"sum":3.5}]}`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestEncoderRejects(t *testing.T) {
	var enc streams.Encoder
	enc.Begin("n", "p", 1, 0)
	before := string(enc.Finish())
	checks := []struct {
		name string
		err  error
		want error
	}{
		{"NaN counter", enc.Counter("c", "", nil, math.NaN()), streams.ErrNotFinite},
		{"+Inf gauge", enc.Gauge("g", "", nil, math.Inf(1)), streams.ErrNotFinite},
		{"-Inf sum", enc.Histogram("h", "", nil, []float64{1}, []uint64{0, 1}, math.Inf(-1)), streams.ErrNotFinite},
		{"Inf bucket", enc.Histogram("h", "", nil, []float64{math.Inf(1)}, []uint64{0, 1}, 0), streams.ErrNotFinite},
		{"counts short", enc.Histogram("h", "", nil, []float64{1, 2}, []uint64{0, 1}, 0), streams.ErrHistogramLayout},
	}
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, c.err, c.want)
		}
	}
	if got := string(enc.Finish()); got != before || enc.Count() != 0 {
		t.Fatalf("rejected metrics changed the batch: %s (count %d)", got, enc.Count())
	}
}

func TestEncoderUndo(t *testing.T) {
	var enc streams.Encoder
	enc.Begin("n", "p", 1, 0)
	if err := enc.Counter("a", "", nil, 1); err != nil {
		t.Fatal(err)
	}
	one := string(enc.Finish())
	n := enc.Len()
	if err := enc.Counter("b", strings.Repeat("x", 100), nil, 2); err != nil {
		t.Fatal(err)
	}
	enc.Undo()
	enc.Undo() // a second undo does nothing
	if got := string(enc.Finish()); got != one || enc.Len() != n || enc.Count() != 1 {
		t.Fatalf("after Undo: %s len %d count %d, want %s len %d count 1", got, enc.Len(), enc.Count(), one, n)
	}
	if err := enc.Gauge("c", "", nil, 3); err != nil {
		t.Fatal(err)
	}
	got := decode(t, enc.Finish())
	if len(got.Metrics) != 2 || got.Metrics[0].Name != "a" || got.Metrics[1].Name != "c" {
		t.Fatalf("after Undo and append: %+v", got.Metrics)
	}
}

func TestEncoderDoesNotAllocate(t *testing.T) {
	var enc streams.Encoder
	labels := []series.Label{{Name: "method", Value: "GET"}, {Name: "path", Value: "/api/v1/items"}}
	buckets := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	counts := make([]uint64, len(buckets)+1)
	run := func() {
		enc.Begin("node-1", "svc-abcdefgh", 42, 1700000000000)
		for range 100 {
			_ = enc.Counter("http_requests_total", "Requests.", labels, 17)
			_ = enc.Gauge("queue_depth", "", labels, -3.25)
			_ = enc.Histogram("latency_seconds", "Latency \"quoted\".", labels, buckets, counts, 12.5)
		}
		_ = enc.Finish()
	}
	run() // grow the buffer
	if allocs := testing.AllocsPerRun(10, run); allocs != 0 {
		t.Fatalf("%v allocations per batch, want 0", allocs)
	}
}

// FuzzEncoder checks that whatever goes in decodes back, with
// encoding/json, to what encoding/json itself would have produced.
func FuzzEncoder(f *testing.F) {
	f.Add("n", "p", uint64(1), int64(0), "x", "", "a", "b", 1.0, uint8(0), 0.5, uint64(3))
	f.Add("node-1", "svc-abcdefgh", uint64(1<<53), int64(1700000000000), "h", "help \"q\"\n", "le_x", "\x00\xff", math.Copysign(0, -1), uint8(2), 1e-300, uint64(math.MaxUint64))
	f.Fuzz(func(t *testing.T, node, producer string, seq uint64, unixMilli int64, name, help, lname, lvalue string, v float64, kind uint8, bound float64, count uint64) {
		if !utf8.ValidString(lname) {
			// encoding/json sorts map keys by their raw bytes before
			// coercing them; label names are validated ASCII anyway.
			return
		}
		var labels []series.Label
		if lname != "" || lvalue != "" {
			labels = []series.Label{{Name: lname, Value: lvalue}, {Name: lname + "_2", Value: help}}
		}
		it := item{name: name, help: help, labels: labels}
		switch kind % 3 {
		case 0:
			it.kind, it.value = streams.KindCounter, v
		case 1:
			it.kind, it.value = streams.KindGauge, v
		default:
			it.kind = streams.KindHistogram
			it.buckets = []float64{bound, bound + 1}
			it.counts = []uint64{count, 0, count / 2}
			it.sum = v
		}
		var enc streams.Encoder
		enc.Begin(node, producer, seq, unixMilli)
		var err error
		switch it.kind {
		case streams.KindCounter:
			err = enc.Counter(it.name, it.help, it.labels, it.value)
		case streams.KindGauge:
			err = enc.Gauge(it.name, it.help, it.labels, it.value)
		default:
			err = enc.Histogram(it.name, it.help, it.labels, it.buckets, it.counts, it.sum)
		}
		nonFinite := math.IsNaN(v) || math.IsInf(v, 0) ||
			(it.kind == streams.KindHistogram && (math.IsNaN(bound) || math.IsInf(bound, 0) || math.IsInf(bound+1, 0)))
		if nonFinite {
			if !errors.Is(err, streams.ErrNotFinite) {
				t.Fatalf("non-finite input: error %v, want ErrNotFinite", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		in := batchIn{node: node, producer: producer, seq: seq, time: unixMilli, items: []item{it, it}}
		checkRoundTrip(t, &enc, in)
	})
}
