package producers_test

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/nativehistogram"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
)

func TestNativeBuckets(t *testing.T) {
	b, err := producers.NativeBuckets(1, 0x1p-13, 128)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(b) != fmt.Sprint(streams.ServiceLatencyBuckets()) {
		t.Errorf("schema 1 from 2^-13 to 2^7: %v, want the service latency buckets", b)
	}
	b, err = producers.NativeBuckets(2, 0.001, 10)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := nativehistogram.Aligned(b); !ok || l.Schema != 2 || b[0] > 0.001 || b[1] <= 0.001 || b[len(b)-1] < 10 || b[len(b)-2] >= 10 {
		t.Errorf("schema 2 from 0.001 to 10: %v (Aligned %+v, %v)", b, l, ok)
	}
	for _, c := range []struct {
		schema   int
		min, max float64
	}{
		{9, 1, 2}, {-5, 1, 2}, {0, 0, 1}, {0, -1, 1}, {0, 1, 1}, {0, 2, 1}, {0, 1, math.Inf(1)}, {0, math.NaN(), 1},
		{8, 0.001, 1000}, // more than streams.MaxBuckets
	} {
		b, err := producers.NativeBuckets(c.schema, c.min, c.max)
		if !errors.Is(err, producers.ErrBuckets) {
			t.Errorf("NativeBuckets(%d, %v, %v) = %v, %v; want ErrBuckets", c.schema, c.min, c.max, b, err)
		}
	}
}

// Bounds of powers of two from 1 ms to 1 s, exposed as a native histogram
// of schema 0 too.
func ExampleNativeBuckets() {
	b, err := producers.NativeBuckets(0, 0.001, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(b), b[0], b[len(b)-1])
	// Use them as HistogramOpts.Buckets.
	_ = producers.HistogramOpts{Name: "app_request_seconds", Buckets: b}
	// Output: 11 0.0009765625 1
}
