package exposition_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/nativehistogram"
)

// nativeCounts reconstructs a native histogram's positive buckets, index
// to count, from its spans and deltas, checking they are well formed and
// compact: spans after the first start more than two buckets after the
// previous one ends (shorter gaps are zeros inside a span, as
// client_golang writes them).
func nativeCounts(t *testing.T, h *dto.Histogram) map[int]uint64 {
	t.Helper()
	out := map[int]uint64{}
	idx, n, last := 0, 0, int64(0)
	for i, s := range h.GetPositiveSpan() {
		if i > 0 && s.GetOffset() <= 2 {
			t.Errorf("span %d has offset %d: a gap of two buckets or fewer belongs inside the span", i, s.GetOffset())
		}
		idx += int(s.GetOffset())
		for range s.GetLength() {
			if n >= len(h.GetPositiveDelta()) {
				t.Fatalf("spans hold more buckets than the %d deltas", len(h.GetPositiveDelta()))
			}
			last += h.GetPositiveDelta()[n]
			if last < 0 {
				t.Fatalf("bucket %d has the count %d", idx, last)
			}
			if last > 0 {
				out[idx] = uint64(last)
			}
			n++
			idx++
		}
	}
	if n != len(h.GetPositiveDelta()) {
		t.Fatalf("spans hold %d buckets, deltas %d", n, len(h.GetPositiveDelta()))
	}
	if len(h.GetNegativeSpan())+len(h.GetNegativeDelta())+len(h.GetPositiveCount())+len(h.GetNegativeCount()) > 0 ||
		h.SampleCountFloat != nil || h.ZeroCountFloat != nil {
		t.Errorf("unexpected native-histogram fields: %v", h)
	}
	return out
}

// A histogram whose bounds are native buckets is served in protobuf as a
// native histogram too, counting exactly what its classic buckets count:
// the zero bucket up to the lowest bound, one native bucket per classic
// bucket above it, and the observations above the highest bound in the
// native bucket after it. Its classic buckets are served as before.
func TestProtobufAlignedHistogramIsNative(t *testing.T) {
	type layout struct {
		schema   int
		min, max float64
	}
	layouts := []layout{{-2, 1.0 / 256, 4096}, {0, 0x1p-10, 64}, {1, 0x1p-13, 128}, {3, 0.01, 2}}
	for _, lay := range layouts {
		bounds, err := nativehistogram.Bounds(lay.schema, lay.min, lay.max, 64)
		if err != nil {
			t.Fatal(err)
		}
		first := int(math.Round(math.Log2(bounds[0]) * math.Exp2(float64(lay.schema))))
		n := len(bounds)
		counts := func(set map[int]uint64) []uint64 {
			c := make([]uint64, n+1)
			for i, v := range set {
				c[i] = v
			}
			return c
		}
		cases := []struct {
			name   string
			counts []uint64
			sum    float64
		}{
			{"empty", counts(nil), 0},
			{"zero-bucket-only", counts(map[int]uint64{0: 4}), 0.001},
			{"inf-only", counts(map[int]uint64{n: 3}), math.Inf(1)},
			{"sparse", counts(map[int]uint64{0: 2, 1: 7, 3: 5, 4: 1, n - 2: 1_000_000, n: 7}), 12345.5},
			{"dense", counts(map[int]uint64{1: 1, 2: 1, 3: 4, 5: 2, 6: 9}), 4},
		}
		for _, nodeLabel := range []bool{false, true} {
			for _, c := range cases {
				t.Run(fmt.Sprintf("schema%d/%s/node=%v", lay.schema, c.name, nodeLabel), func(t *testing.T) {
					st := &aggregate.State{Node: "n1", Mark: 1, Families: []aggregate.Family{{
						Name:   "x_seconds",
						Meta:   aggregate.Meta{Kind: aggregate.Histogram, Help: "X.", Buckets: bounds},
						Series: []aggregate.Series{hist("x_seconds", c.counts, c.sum, "op", "a")},
					}}}
					h, err := exposition.NewHandler(exposition.HandlerConfig{NodeLabel: nodeLabel})
					if err != nil {
						t.Fatal(err)
					}
					for range 2 { // rendered fresh, then from the cache
						hs := decodeHistograms(t, body(t, serve(t, h, []*aggregate.State{st}, protobufAccept, "", "")), "x_seconds")
						if len(hs) != 1 {
							t.Fatalf("%d histograms, want 1", len(hs))
						}
						checkNative(t, hs[0], bounds, first, c.counts, c.sum)
					}
				})
			}
		}
	}
}

// checkNative checks that h's native fields and classic buckets both
// count exactly counts (non-cumulative, +Inf last) on bounds, the native
// bucket of bounds[i] being first+i.
func checkNative(t *testing.T, h *dto.Histogram, bounds []float64, first int, counts []uint64, sum float64) {
	t.Helper()
	n := len(bounds)
	var total uint64
	for _, c := range counts {
		total += c
	}
	if h.GetSampleCount() != total || h.GetSampleSum() != sum && !(math.IsNaN(sum) && math.IsNaN(h.GetSampleSum())) {
		t.Errorf("count %d sum %g, want %d and %g", h.GetSampleCount(), h.GetSampleSum(), total, sum)
	}
	// Classic buckets, as before.
	if len(h.GetBucket()) != n {
		t.Fatalf("%d classic buckets, want %d", len(h.GetBucket()), n)
	}
	var cum uint64
	for i, b := range h.GetBucket() {
		cum += counts[i]
		if b.GetUpperBound() != bounds[i] || b.GetCumulativeCount() != cum {
			t.Errorf("classic bucket %d: le=%g %d, want le=%g %d", i, b.GetUpperBound(), b.GetCumulativeCount(), bounds[i], cum)
		}
	}
	// Native fields.
	if h.Schema == nil || h.ZeroThreshold == nil || h.ZeroCount == nil {
		t.Fatalf("no native-histogram fields: %v", h)
	}
	lay, _ := nativehistogram.Aligned(bounds)
	if h.GetSchema() != lay.Schema || h.GetZeroThreshold() != bounds[0] || h.GetZeroCount() != counts[0] {
		t.Errorf("schema %d zero threshold %g zero count %d, want %d, %g and %d",
			h.GetSchema(), h.GetZeroThreshold(), h.GetZeroCount(), lay.Schema, bounds[0], counts[0])
	}
	want := map[int]uint64{}
	for i := 1; i <= n; i++ {
		if counts[i] > 0 {
			want[first+i] = counts[i]
		}
	}
	got := nativeCounts(t, h)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("native buckets %v, want %v", got, want)
	}
	// Each native bucket is the classic one: its upper bound is the
	// classic bound (the overflow bucket's is one step above the highest).
	for idx := range got {
		ub := nativehistogram.Bound(idx, lay.Schema)
		if i := idx - first; i < n && math.Abs(ub-bounds[i]) > 1e-12*ub {
			t.Errorf("native bucket %d has the upper bound %g, classic bucket %d %g", idx, ub, i, bounds[i])
		}
	}
	if len(want) == 0 {
		// No populated bucket: one empty span, as client_golang writes.
		if len(h.GetPositiveSpan()) != 1 || h.GetPositiveSpan()[0].GetOffset() != 0 || h.GetPositiveSpan()[0].GetLength() != 0 {
			t.Errorf("spans %v, want one of length 0", h.GetPositiveSpan())
		}
	}
}

// The spans of a sparse histogram, exactly: gaps of one or two buckets are
// zeros inside a span, longer ones start a new span.
func TestProtobufNativeSpans(t *testing.T) {
	bounds, err := nativehistogram.Bounds(0, 1, 0x1p20, 64) // indexes 0 to 20
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]uint64, len(bounds)+1)
	for i, v := range map[int]uint64{0: 9, 2: 1, 3: 2, 5: 3, 8: 4, 12: 5, 21: 6} {
		counts[i] = v
	}
	st := &aggregate.State{Node: "n1", Mark: 1, Families: []aggregate.Family{{
		Name: "x_seconds", Meta: aggregate.Meta{Kind: aggregate.Histogram, Buckets: bounds},
		Series: []aggregate.Series{hist("x_seconds", counts, 1)},
	}}}
	h, err := exposition.NewHandler(exposition.HandlerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	hg := decodeHistograms(t, body(t, serve(t, h, []*aggregate.State{st}, protobufAccept, "", "")), "x_seconds")[0]
	var spans []span
	for _, s := range hg.GetPositiveSpan() {
		spans = append(spans, span{s.GetOffset(), s.GetLength()})
	}
	// Buckets 2, 3, (4), 5, (6, 7), 8 | 12 | 21.
	wantSpans := []span{{2, 7}, {3, 1}, {8, 1}}
	wantDeltas := []int64{1, 1, -2, 3, -3, 0, 4, 1, 1}
	if !slices.Equal(spans, wantSpans) || !slices.Equal(hg.GetPositiveDelta(), wantDeltas) {
		t.Errorf("spans %v deltas %v, want %v and %v", spans, hg.GetPositiveDelta(), wantSpans, wantDeltas)
	}
	if hg.GetZeroCount() != 9 || hg.GetZeroThreshold() != 1 || hg.GetSchema() != 0 {
		t.Errorf("zero count %d threshold %g schema %d", hg.GetZeroCount(), hg.GetZeroThreshold(), hg.GetSchema())
	}
}

// A histogram whose bounds are not native buckets is classic only in
// protobuf: no native-histogram field, which would make a Prometheus
// scraping native histograms take it for one.
func TestProtobufUnalignedHistogramIsClassic(t *testing.T) {
	for name, bounds := range map[string][]float64{
		"DefBuckets": prometheus.DefBuckets,
		"decimal":    {0.1, 0.5, 1},
		"one bound":  {1},
		"gap":        {0.25, 0.5, 2, 4},
	} {
		t.Run(name, func(t *testing.T) {
			counts := make([]uint64, len(bounds)+1)
			for i := range counts {
				counts[i] = uint64(i)
			}
			st := &aggregate.State{Node: "n1", Mark: 1, Families: []aggregate.Family{{
				Name: "x_seconds", Meta: aggregate.Meta{Kind: aggregate.Histogram, Buckets: bounds},
				Series: []aggregate.Series{hist("x_seconds", counts, 1)},
			}}}
			h, err := exposition.NewHandler(exposition.HandlerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			hg := decodeHistograms(t, body(t, serve(t, h, []*aggregate.State{st}, protobufAccept, "", "")), "x_seconds")[0]
			if hg.Schema != nil || hg.ZeroThreshold != nil || hg.ZeroCount != nil || len(hg.PositiveSpan) > 0 || len(hg.PositiveDelta) > 0 {
				t.Fatalf("native-histogram fields in a classic histogram: %v", hg)
			}
			if len(hg.GetBucket()) != len(bounds) {
				t.Fatalf("%d buckets, want %d", len(hg.GetBucket()), len(bounds))
			}
		})
	}
}
