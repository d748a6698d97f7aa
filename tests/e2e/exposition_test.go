package e2e_test

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// TestContentNegotiation: /metrics and /metrics/cluster answer in the text
// format, OpenMetrics and delimited protobuf as the Accept header asks,
// gzipped when asked, and every answer parses back to the same families.
func TestContentNegotiation(t *testing.T) {
	rn := harness.StartNode(t, node.Config{})
	p, err := producers.New(producers.Config{Node: rn.Name(), Name: "neg"}, rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.NewCounterVec(producers.Opts{Name: "neg_events_total", Help: "events"}, "kind")
	h, _ := p.NewHistogram(producers.HistogramOpts{Name: "neg_seconds", Help: "latency", Buckets: []float64{1}})
	c.MustWith("a").Add(4)
	h.Observe(0.5)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	expectMetrics(t, rn.URL+"/metrics", map[string]float64{`neg_events_total{kind="a"}`: 4}, nil)

	for _, path := range []string{"/metrics", "/metrics/cluster"} {
		for _, tc := range []struct {
			accept, wantType string
			format           expfmt.Format
		}{
			{"text/plain;version=0.0.4", "text/plain", expfmt.NewFormat(expfmt.TypeTextPlain)},
			{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "application/vnd.google.protobuf", expfmt.NewFormat(expfmt.TypeProtoDelim)},
			{"application/openmetrics-text;version=1.0.0", "application/openmetrics-text", ""},
		} {
			for _, gz := range []bool{false, true} {
				req, _ := http.NewRequest(http.MethodGet, rn.URL+path, nil)
				req.Header.Set("Accept", tc.accept)
				if gz {
					req.Header.Set("Accept-Encoding", "gzip")
				}
				resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gunzip
				if err != nil {
					t.Fatal(err)
				}
				body := io.Reader(resp.Body)
				if gz {
					if resp.Header.Get("Content-Encoding") != "gzip" {
						t.Fatalf("%s %s: not gzipped", path, tc.accept)
					}
					zr, err := gzip.NewReader(resp.Body)
					if err != nil {
						t.Fatal(err)
					}
					body = zr
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
					t.Fatalf("%s %s: content type %q", path, tc.accept, ct)
				}
				raw, err := io.ReadAll(body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if tc.format == "" { // OpenMetrics: check its shape
					s := string(raw)
					for _, want := range []string{"# TYPE neg_events counter", `neg_events_total{`, "# TYPE neg_seconds histogram", "# EOF"} {
						if !strings.Contains(s, want) {
							t.Errorf("%s OpenMetrics lacks %q", path, want)
						}
					}
					continue
				}
				fams := map[string]*dto.MetricFamily{}
				dec := expfmt.NewDecoder(strings.NewReader(string(raw)), tc.format)
				for {
					var mf dto.MetricFamily
					if err := dec.Decode(&mf); err == io.EOF {
						break
					} else if err != nil {
						t.Fatalf("%s %s: %v", path, tc.accept, err)
					}
					fams[mf.GetName()] = &mf
				}
				if f := fams["neg_events_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER || f.GetMetric()[0].GetCounter().GetValue() != 4 {
					t.Errorf("%s %s gz=%v: neg_events_total = %v", path, tc.accept, gz, f)
				}
				if f := fams["neg_seconds"]; f == nil || f.GetType() != dto.MetricType_HISTOGRAM || f.GetMetric()[0].GetHistogram().GetSampleCount() != 1 {
					t.Errorf("%s %s gz=%v: neg_seconds = %v", path, tc.accept, gz, f)
				}
			}
		}
	}
}

// TestOwnMetricsLint: the node's own metrics pass promlint.
func TestOwnMetricsLint(t *testing.T) {
	rn := harness.StartNode(t, node.Config{})
	fams, err := harness.Scrape(rn.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var own []*dto.MetricFamily
	for name, f := range fams {
		if strings.HasPrefix(name, "jetmetrics_") {
			own = append(own, f)
		}
	}
	if len(own) < 10 {
		t.Fatalf("only %d jetmetrics_ families", len(own))
	}
	problems, err := promlint.NewWithMetricFamilies(own).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
