package exposition_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
)

// benchState is a node's aggregate of about n series: counters, gauges and
// histograms of eleven buckets, two or three labels each.
func benchState(node string, n int) *aggregate.State {
	st := &aggregate.State{Node: node, Mark: 1}
	c := aggregate.Family{Name: "bench_requests_total", Meta: aggregate.Meta{Kind: aggregate.Counter, Help: "Requests."}}
	g := aggregate.Family{Name: "bench_queue_depth", Meta: aggregate.Meta{Kind: aggregate.Gauge, Help: "Depth."}}
	h := aggregate.Family{Name: "bench_duration_seconds", Meta: aggregate.Meta{Kind: aggregate.Histogram, Help: "Latency.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}}
	for i := range n * 6 / 10 {
		c.Series = append(c.Series, scalar(c.Name, float64(i*13%100000), "code", "200", "method", "GET", "path", fmt.Sprintf("/api/v1/items/%d", i)))
	}
	for i := range n * 3 / 10 {
		g.Series = append(g.Series, scalar(g.Name, float64(i%4000)/8, "queue", fmt.Sprintf("q%d", i%50), "shard", fmt.Sprint(i/50)))
	}
	for i := range n / 10 {
		h.Series = append(h.Series, hist(h.Name, []uint64{1, 2, 3, 0, 0, 5, 1, 1, 0, 2, 3, 2}, float64(i)*0.7, "method", "GET", "path", fmt.Sprintf("/api/v1/items/%d", i)))
	}
	st.Families = []aggregate.Family{h, g, c}
	return st
}

// BenchmarkServe renders a new version of 100k series on every scrape, as
// a node whose aggregate changes between scrapes does.
func BenchmarkServe(b *testing.B) {
	for _, tc := range []struct {
		name, accept, encoding string
	}{
		{"text", "", ""},
		{"text-gzip", "", "gzip"},
		{"openmetrics-gzip", "application/openmetrics-text;version=1.0.0", "gzip"},
		{"protobuf-gzip", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "gzip"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, err := exposition.NewHandler(exposition.HandlerConfig{EnableOpenMetrics: true})
			if err != nil {
				b.Fatal(err)
			}
			st := benchState("n1", 100_000)
			b.ReportAllocs()
			for b.Loop() {
				st.Mark++
				r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				r.Header.Set("Accept", tc.accept)
				r.Header.Set("Accept-Encoding", tc.encoding)
				h.Serve(discard{}, r, []*aggregate.State{st})
			}
		})
	}
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{}

var discardHeader = http.Header{}

func (discard) Header() http.Header         { clear(discardHeader); return discardHeader }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}

// BenchmarkServeCached serves the same version again: a second scraper.
func BenchmarkServeCached(b *testing.B) {
	for _, enc := range []string{"", "gzip"} {
		b.Run("encoding="+enc, func(b *testing.B) {
			h, err := exposition.NewHandler(exposition.HandlerConfig{EnableOpenMetrics: true})
			if err != nil {
				b.Fatal(err)
			}
			st := benchState("n1", 100_000)
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				r.Header.Set("Accept-Encoding", enc)
				h.Serve(discard{}, r, []*aggregate.State{st})
			}
		})
	}
}
