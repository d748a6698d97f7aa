package nativehistogram_test

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/pkg/nativehistogram"
)

// Boundaries agree with Prometheus' (model/histogram exponentialBounds,
// client_golang nativeHistogramBounds: fractions in [0.5, 1)) to a few
// units in the last place.
func TestBoundMatchesPrometheus(t *testing.T) {
	cases := []struct {
		idx    int
		schema int32
		want   float64
	}{
		{0, 0, 1}, {1, 0, 2}, {-13, 0, 0x1p-13}, {3, -2, 4096}, {-1, -4, 0x1p-16},
		{1, 1, 2 * 0.7071067811865475}, {-25, 1, 0x1p-12 * 0.7071067811865475},
		{1, 2, 2 * 0.5946035575013605}, {3, 2, 2 * 0.8408964152537144},
		{-7, 3, 0.5452538663326288},
		{1, 8, 2 * 0.5013556375251013}, {2, 8, 2 * 0.5027149505564014}, {255, 8, 2 * 0.9972960560854698},
	}
	for _, c := range cases {
		got := nativehistogram.Bound(c.idx, c.schema)
		if math.Abs(got-c.want) > 1e-15*c.want {
			t.Errorf("Bound(%d, %d) = %v, want %v", c.idx, c.schema, got, c.want)
		}
	}
}

func TestAligned(t *testing.T) {
	for schema := nativehistogram.MinSchema; schema <= nativehistogram.MaxSchema; schema++ {
		for _, first := range []int{-40, -1, 0, 7} {
			var bounds []float64
			for k := first; k < first+10; k++ {
				bounds = append(bounds, nativehistogram.Bound(k, int32(schema)))
			}
			l, ok := nativehistogram.Aligned(bounds)
			if !ok || l.Schema != int32(schema) || l.First != first {
				t.Errorf("schema %d from %d: Aligned = %+v, %v", schema, first, l, ok)
			}
			// One bound off by far less than a bucket, but more than
			// rounding: not aligned.
			bounds[5] *= 1 + 1e-9
			if l, ok := nativehistogram.Aligned(bounds); ok {
				t.Errorf("schema %d from %d, a bound moved: Aligned = %+v", schema, first, l)
			}
		}
	}
	not := map[string][]float64{
		"DefBuckets":    prometheus.DefBuckets,
		"decimal":       {0.1, 0.5, 1},
		"one bound":     {1},
		"none":          nil,
		"zero":          {0, 1, 2},
		"negative":      {-2, -1, 1},
		"gap":           {1, 2, 8},
		"schema 9":      {1, math.Exp2(1.0 / 512), math.Exp2(2.0 / 512)},
		"schema -5":     {1, 0x1p32},
		"mixed schemas": {1, 2, 2 * math.Sqrt2},
		"float64 top":   {0x1p1022, 0x1p1023},
	}
	for name, b := range not {
		if l, ok := nativehistogram.Aligned(b); ok {
			t.Errorf("%s %v: Aligned = %+v, want not aligned", name, b, l)
		}
	}
	// Bounds written out in decimal, as a JSON producer would send them.
	if l, ok := nativehistogram.Aligned([]float64{0.25, 0.5, 1, 2, 4}); !ok || l.Schema != 0 || l.First != -2 {
		t.Errorf("0.25 to 4: Aligned = %+v, %v", l, ok)
	}
}

func TestBounds(t *testing.T) {
	b, err := nativehistogram.Bounds(1, 0x1p-13, 128, 64)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 41 || b[0] != 0x1p-13 || b[40] != 128 || b[1] != 0x1p-13*math.Sqrt2 {
		t.Fatalf("schema 1 from 2^-13 to 2^7: %d bounds %v", len(b), b)
	}
	if l, ok := nativehistogram.Aligned(b); !ok || l.Schema != 1 || l.First != -26 {
		t.Fatalf("Aligned = %+v, %v", l, ok)
	}
	// Not on boundaries: widened to the boundaries around them.
	b, err = nativehistogram.Bounds(0, 0.3, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.25, 0.5, 1, 2, 4}; !equal(b, want) {
		t.Fatalf("schema 0 from 0.3 to 3: %v, want %v", b, want)
	}
	b, err = nativehistogram.Bounds(-2, 1, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{1, 16, 256}; !equal(b, want) {
		t.Fatalf("schema -2 from 1 to 100: %v, want %v", b, want)
	}
	bad := []struct {
		schema   int
		min, max float64
		limit    int
	}{
		{9, 1, 2, 0}, {-5, 1, 2, 0}, {0, 0, 2, 0}, {0, -1, 2, 0}, {0, math.NaN(), 2, 0},
		{0, 2, 2, 0}, {0, 2, 1, 0}, {0, 1, math.Inf(1), 0}, {8, 1e-3, 1e3, 64}, {0, 1, 0x1p1023, 0},
	}
	for _, c := range bad {
		if b, err := nativehistogram.Bounds(c.schema, c.min, c.max, c.limit); err == nil {
			t.Errorf("Bounds(%d, %v, %v, %d) = %v, want an error", c.schema, c.min, c.max, c.limit, b)
		}
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
