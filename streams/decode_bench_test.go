package streams_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// BenchmarkDecode decodes a 1000-entry batch of counters, the aggregator's
// cost per message before it touches Redis, with Decode and with the
// encoding/json reference it must agree with.
func BenchmarkDecode(b *testing.B) {
	var e streams.Encoder
	e.Begin("n1", "p-1", 1, 1)
	for i := range 1000 {
		if err := e.Counter("bench_requests_total", "", []series.Label{{Name: "route", Value: fmt.Sprintf("/r%d", i)}, {Name: "code", Value: "200"}}, 1); err != nil {
			b.Fatal(err)
		}
	}
	benchmarkDecoders(b, append([]byte(nil), e.Finish()...), e.Count())
}

// BenchmarkDecodeMixed decodes a batch of every kind, with help texts and
// escapes in label values.
func BenchmarkDecodeMixed(b *testing.B) {
	var e streams.Encoder
	e.Begin("n1", "p-1", 1, 1)
	buckets := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	counts := make([]uint64, len(buckets)+1)
	for i := range 300 {
		labels := []series.Label{{Name: "method", Value: "GET"}, {Name: "path", Value: fmt.Sprintf(`/api/v1/items/%d?q="x"`, i)}, {Name: "code", Value: "200"}}
		counts[i%len(counts)]++
		for _, err := range []error{
			e.Counter("http_requests_total", "Requests served.", labels, float64(i)),
			e.Gauge("http_in_flight", "Requests in flight.", labels[:1], float64(i)/7),
			e.Histogram("http_request_duration_seconds", "Request latency.", labels, buckets, counts, float64(i)*0.013),
		} {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	benchmarkDecoders(b, append([]byte(nil), e.Finish()...), e.Count())
}

func benchmarkDecoders(b *testing.B, data []byte, entries int) {
	for _, dec := range []struct {
		name    string
		decode  func([]byte, string, series.Limits) (*streams.Decoded, error)
		release bool
	}{
		{"fast", streams.Decode, false},
		{"fast+release", streams.Decode, true}, // as the aggregator does
		{"reference", streams.DecodeReference, false},
	} {
		b.Run(dec.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				d, err := dec.decode(data, "n1", series.Limits{})
				if err != nil {
					b.Fatal(err)
				}
				if len(d.Entries) != entries {
					b.Fatalf("%d entries, want %d", len(d.Entries), entries)
				}
				if dec.release {
					d.Release()
				}
			}
			runtime.ReadMemStats(&after)
			perEntry := float64(b.N) * float64(entries)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/perEntry, "ns/entry")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/perEntry, "allocs/entry")
		})
	}
}
