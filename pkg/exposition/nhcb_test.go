package exposition_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
)

// span is a native histogram's bucket span: offset from the end of the
// previous span (from bucket 0 for the first), and length.
type span struct {
	offset int32
	length uint32
}

// nhcb is the native histogram with custom buckets (schema -53) that
// Prometheus' convert_classic_histograms_to_nhcb builds from a classic
// histogram: the finite upper bounds as custom values, and the
// non-cumulative counts of the non-empty buckets, +Inf's last, as spans and
// deltas.
type nhcb struct {
	customValues []float64
	spans        []span
	deltas       []int64
	count        uint64
	sum          float64
}

// nhcbOf converts a decoded classic histogram as Prometheus does: each
// bucket's count is its cumulative count less the previous one's, +Inf's is
// the sample count less the last finite bucket's.
func nhcbOf(t *testing.T, h *dto.Histogram) nhcb {
	t.Helper()
	out := nhcb{count: h.GetSampleCount(), sum: h.GetSampleSum()}
	var counts []uint64
	var prev uint64
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			break
		}
		if b.GetCumulativeCount() < prev {
			t.Fatalf("bucket le=%g: cumulative count %d below the previous %d", b.GetUpperBound(), b.GetCumulativeCount(), prev)
		}
		out.customValues = append(out.customValues, b.GetUpperBound())
		counts = append(counts, b.GetCumulativeCount()-prev)
		prev = b.GetCumulativeCount()
	}
	if h.GetSampleCount() < prev {
		t.Fatalf("sample count %d below the last bucket's %d", h.GetSampleCount(), prev)
	}
	counts = append(counts, h.GetSampleCount()-prev)
	gap, last := int32(0), int64(0)
	for _, c := range counts {
		if c == 0 {
			gap++
			continue
		}
		if n := len(out.spans); n > 0 && gap == 0 {
			// The previous bucket was not empty: the span goes on.
			out.spans[n-1].length++
		} else {
			out.spans = append(out.spans, span{offset: gap, length: 1})
		}
		gap = 0
		out.deltas = append(out.deltas, int64(c)-last)
		last = int64(c)
	}
	return out
}

// A protobuf scrape of a histogram whose bounds are not native buckets
// carries exactly what Prometheus needs to store it as a native histogram
// with custom buckets (NHCB, schema -53, by
// convert_classic_histograms_to_nhcb): every bucket's count, +Inf's
// included, the sum and the count. It carries no native-histogram fields:
// the protobuf exposition format has no field for custom bucket bounds
// (io.prometheus.client.Histogram of client_model v0.6.3 and of
// Prometheus' own copy), so a schema -53 histogram in it would be invalid,
// and a Prometheus scraping native histograms would take it for one and
// drop its classic series. (Histograms on native buckets are served as
// exponential native histograms too: TestProtobufAlignedHistogramIsNative.)
func TestProtobufHistogramConvertsToNHCB(t *testing.T) {
	// Decimal bounds, not native buckets: the service latency layout
	// before it moved to native buckets.
	bounds := []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
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
		want   nhcb
	}{
		{"empty", counts(nil), 0, nhcb{}},
		{"inf-only", counts(map[int]uint64{n: 3}), math.Inf(1),
			nhcb{spans: []span{{offset: int32(n), length: 1}}, deltas: []int64{3}, count: 3, sum: math.Inf(1)}},
		{"sparse", counts(map[int]uint64{0: 2, 3: 5, 4: 1, 9: 1_000_000, n: 7}), 12345.5,
			nhcb{
				spans:  []span{{0, 1}, {2, 2}, {4, 1}, {int32(n - 10), 1}},
				deltas: []int64{2, 3, -4, 999_999, -999_993},
				count:  2 + 5 + 1 + 1_000_000 + 7, sum: 12345.5,
			}},
		{"dense", counts(map[int]uint64{0: 1, 1: 1, 2: 4}), 0.004,
			nhcb{spans: []span{{0, 3}}, deltas: []int64{1, 0, 3}, count: 6, sum: 0.004}},
	}
	for _, nodeLabel := range []bool{false, true} {
		for _, c := range cases {
			name := c.name
			if nodeLabel {
				name += "/cluster"
			}
			t.Run(name, func(t *testing.T) {
				st := &aggregate.State{Node: "n1", Mark: 1, Families: []aggregate.Family{{
					Name: "jetmetrics_service_latency_seconds",
					Meta: aggregate.Meta{Kind: aggregate.Histogram, Help: "Latency.", Buckets: bounds},
					Series: []aggregate.Series{
						hist("jetmetrics_service_latency_seconds", c.counts, c.sum, "service", "svc"),
					},
				}}}
				h, err := exposition.NewHandler(exposition.HandlerConfig{NodeLabel: nodeLabel})
				if err != nil {
					t.Fatal(err)
				}
				// Twice: rendered fresh, then from the cache.
				for range 2 {
					w := serve(t, h, []*aggregate.State{st}, protobufAccept, "", "")
					hs := decodeHistograms(t, body(t, w), "jetmetrics_service_latency_seconds")
					if len(hs) != 1 {
						t.Fatalf("%d histograms, want 1", len(hs))
					}
					hg := hs[0]
					if hg.Schema != nil || hg.ZeroThreshold != nil || hg.ZeroCount != nil ||
						len(hg.PositiveSpan) > 0 || len(hg.PositiveDelta) > 0 || len(hg.PositiveCount) > 0 ||
						len(hg.NegativeSpan) > 0 || hg.SampleCountFloat != nil {
						t.Fatalf("native-histogram fields in a classic histogram: %v", hg)
					}
					got := nhcbOf(t, hg)
					c.want.customValues = bounds
					if !slices.Equal(got.customValues, c.want.customValues) {
						t.Errorf("custom values %v, want %v", got.customValues, c.want.customValues)
					}
					if !slices.Equal(got.spans, c.want.spans) {
						t.Errorf("spans %v, want %v", got.spans, c.want.spans)
					}
					if !slices.Equal(got.deltas, c.want.deltas) {
						t.Errorf("deltas %v, want %v", got.deltas, c.want.deltas)
					}
					if got.count != c.want.count || got.sum != c.want.sum {
						t.Errorf("count %d sum %g, want %d and %g", got.count, got.sum, c.want.count, c.want.sum)
					}
				}
			})
		}
	}
}

// decodeHistograms decodes a delimited protobuf body and returns the
// histograms of family name.
func decodeHistograms(t *testing.T, b []byte, name string) []*dto.Histogram {
	t.Helper()
	dec := expfmt.NewDecoder(bytes.NewReader(b), expfmt.NewFormat(expfmt.TypeProtoDelim))
	var out []*dto.Histogram
	for range 1000 {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if mf.GetName() != name {
			continue
		}
		if mf.GetType() != dto.MetricType_HISTOGRAM {
			t.Fatalf("%s is a %s", name, mf.GetType())
		}
		for _, m := range mf.GetMetric() {
			out = append(out, m.GetHistogram())
		}
	}
	t.Fatal("more than 1000 families")
	return nil
}

const protobufAccept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
