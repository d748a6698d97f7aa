package streams_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/nativehistogram"
	"github.com/jetmetrics/jetmetrics/streams"
)

// The service latency buckets are native buckets of schema 1 from 2^-13 s
// to 2^7 s, so the family is served as a Prometheus native histogram too,
// and docs/wire-format.md lists them exactly as a JSON producer must send
// them.
func TestServiceLatencyBucketsAreNative(t *testing.T) {
	b := streams.ServiceLatencyBuckets()
	l, ok := nativehistogram.Aligned(b)
	if !ok || l.Schema != 1 || l.First != -26 || len(b) != 41 {
		t.Fatalf("%d bounds, Aligned = %+v, %v; want schema 1 from index -26, 41 bounds", len(b), l, ok)
	}
	want, err := nativehistogram.Bounds(1, 0x1p-13, 128, streams.MaxBuckets)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b, want) {
		t.Fatalf("bounds %v, want nativehistogram.Bounds' %v", b, want)
	}
	js, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/wire-format.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), string(js)) {
		t.Errorf("docs/wire-format.md does not list the service latency buckets as %s", js)
	}
}
