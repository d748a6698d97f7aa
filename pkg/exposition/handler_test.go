package exposition_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// newSeries builds a series with its key.
func newSeries(name string, labels ...string) aggregate.Series {
	var ls []series.Label
	for i := 0; i+1 < len(labels); i += 2 {
		ls = append(ls, series.Label{Name: labels[i], Value: labels[i+1]})
	}
	series.SortLabels(ls)
	return aggregate.Series{Key: series.Key(name, ls), Labels: ls}
}

func scalar(name string, v float64, labels ...string) aggregate.Series {
	s := newSeries(name, labels...)
	s.Value = v
	return s
}

func hist(name string, counts []uint64, sum float64, labels ...string) aggregate.Series {
	s := newSeries(name, labels...)
	s.Counts, s.Sum = counts, sum
	return s
}

// tricky is a node's aggregate with what rendering can get wrong:
// escapes, special values, labels on both sides of "node", counts past a
// million, a counter without _total, a histogram without labels, a
// histogram on native buckets.
func tricky(node string, mark uint64, seed float64) *aggregate.State {
	return &aggregate.State{
		Node: node,
		Mark: mark,
		Families: []aggregate.Family{
			{Name: "a_bytes_total", Meta: aggregate.Meta{Kind: aggregate.Counter, Help: "Bytes \\ moved\nsomewhere \"fast\"."}, Series: []aggregate.Series{
				scalar("a_bytes_total", 0, "zone", "eu"),
				scalar("a_bytes_total", 1+seed, "app", `q"u\o\nte`+"\nnl", "zone", "us"),
				scalar("a_bytes_total", 1e21, "method", "GET", "zone", "x"),
			}},
			{Name: "b_level", Meta: aggregate.Meta{Kind: aggregate.Gauge}, Series: []aggregate.Series{
				scalar("b_level", -1),
				scalar("b_level", math.Inf(1), "a", "1"),
				scalar("b_level", math.Inf(-1), "a", "2"),
				scalar("b_level", 1e-7*seed, "a", "3"),
				scalar("b_level", 12345678.25, "a", "4"),
				scalar("b_level", 1, "a", "5"),
			}},
			{Name: "c_seconds", Meta: aggregate.Meta{Kind: aggregate.Histogram, Help: "Latency.", Buckets: []float64{0.1, 1, 2.5, 1e6}}, Series: []aggregate.Series{
				hist("c_seconds", []uint64{0, 0, 0, 0, 0}, 0),
				hist("c_seconds", []uint64{3, 1_000_000, 0, 2, 7}, 4.5+seed, "op", "read"),
				hist("c_seconds", []uint64{1, 1, 1, 1, 1}, 1, "a", "x", "op", "write", "zz", "y"),
			}},
			// Native buckets of schema 0, served in protobuf as a native
			// histogram too.
			{Name: "e_seconds", Meta: aggregate.Meta{Kind: aggregate.Histogram, Help: "Aligned.", Buckets: []float64{0.125, 0.25, 0.5, 1, 2, 4, 8, 16}}, Series: []aggregate.Series{
				hist("e_seconds", []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, "k", "empty"),
				hist("e_seconds", []uint64{5, 0, 0, 0, 0, 0, 0, 0, 0}, 0.1+seed, "k", "zero"),
				hist("e_seconds", []uint64{0, 1, 0, 0, 2, 0, 0, 0, 3}, math.Inf(1), "k", "gaps"),
				hist("e_seconds", []uint64{1, 1, 0, 1, 0, 0, 0, 9, 1_000_000}, 1e9, "k", "dense"),
			}},
			{Name: "d_things", Meta: aggregate.Meta{Kind: aggregate.Counter, Help: "No _total suffix."}, Series: []aggregate.Series{
				scalar("d_things", 2.5+seed, "kind", "a"),
			}},
		},
		Rejected: map[string]uint64{"invalid_value": 3, "type_conflict": 1},
	}
}

// wantBody encodes Families(states) with expfmt: what promhttp served
// before Handler existed.
func wantBody(t *testing.T, ct expfmt.Format, states []*aggregate.State, nodeLabel bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, ct)
	for _, mf := range exposition.Families(states, nodeLabel) {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func serve(t *testing.T, h *exposition.Handler, states []*aggregate.State, accept, encoding, query string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/metrics"+query, nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	if encoding != "" {
		r.Header.Set("Accept-Encoding", encoding)
	}
	w := httptest.NewRecorder()
	h.Serve(w, r, states)
	return w
}

// body returns the response body, gunzipped when it is gzip.
func body(t *testing.T, w *httptest.ResponseRecorder) []byte {
	t.Helper()
	b := w.Body.Bytes()
	if cl := w.Header().Get("Content-Length"); cl != fmt.Sprint(len(b)) {
		t.Fatalf("Content-Length %s, body %d bytes", cl, len(b))
	}
	if w.Header().Get("Content-Encoding") != "gzip" {
		return b
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	plain, err := io.ReadAll(zr) // checks the CRC and the length
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	if _, err := zr.Read(nil); err != io.EOF {
		t.Fatalf("gzip body has more than one member")
	}
	return plain
}

var formats = []struct {
	name   string
	accept string
	ct     expfmt.Format
}{
	{"text", "", expfmt.FmtText},
	{"openmetrics", "application/openmetrics-text;version=1.0.0", expfmt.FmtOpenMetrics_1_0_0},
	{"openmetrics-0.0.1", "application/openmetrics-text", expfmt.FmtOpenMetrics_0_0_1},
	{"protobuf", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", expfmt.FmtProtoDelim},
	{"protobuf-text", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", expfmt.FmtProtoText},
}

// Every format, with and without the node label, plain and gzipped,
// fresh and from the cache, is byte for byte what expfmt writes for
// Families.
func TestServeMatchesExpfmt(t *testing.T) {
	views := []struct {
		name      string
		nodeLabel bool
		states    []*aggregate.State
	}{
		{"node", false, []*aggregate.State{tricky("n1", 7, 0)}},
		{"cluster", true, []*aggregate.State{tricky("n1", 7, 0), tricky("n2", 3, 1), tricky("n3", 9, 2)}},
		{"empty", false, []*aggregate.State{{Node: "n1", Mark: 1}}},
	}
	for _, v := range views {
		for _, f := range formats {
			t.Run(v.name+"/"+f.name, func(t *testing.T) {
				h, err := exposition.NewHandler(exposition.HandlerConfig{NodeLabel: v.nodeLabel, EnableOpenMetrics: true})
				if err != nil {
					t.Fatal(err)
				}
				ct := f.ct + "; escaping=" + expfmt.Format(model.NameEscapingScheme.String())
				want := wantBody(t, ct, v.states, v.nodeLabel)
				for _, enc := range []string{"", "gzip", "", "gzip"} {
					w := serve(t, h, v.states, f.accept, enc, "")
					if got := w.Header().Get("Content-Type"); got != string(ct) {
						t.Fatalf("Content-Type %q, want %q", got, ct)
					}
					if got := body(t, w); !bytes.Equal(got, want) {
						t.Fatalf("encoding %q: body differs from expfmt's\ngot:\n%s\nwant:\n%s", enc, got, want)
					}
				}
			})
		}
	}
}

// Families large enough to be cut into chunks, rendered and compressed on
// several goroutines, still come out whole and in order.
func TestServeLargeFamilies(t *testing.T) {
	st := &aggregate.State{Node: "n1", Mark: 1}
	c := aggregate.Family{Name: "big_total", Meta: aggregate.Meta{Kind: aggregate.Counter}}
	hf := aggregate.Family{Name: "big_seconds", Meta: aggregate.Meta{Kind: aggregate.Histogram, Buckets: []float64{0.5, 1, 2}}}
	for i := range 40_000 {
		c.Series = append(c.Series, scalar("big_total", float64(i)*1.5, "id", fmt.Sprintf("%08d", i), "path", "/p"))
		hf.Series = append(hf.Series, hist("big_seconds", []uint64{uint64(i), 1, 2, 3}, float64(i), "id", fmt.Sprintf("%08d", i)))
	}
	st.Families = []aggregate.Family{hf, c}
	for _, nodeLabel := range []bool{false, true} {
		h, err := exposition.NewHandler(exposition.HandlerConfig{NodeLabel: nodeLabel, EnableOpenMetrics: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range formats[:4] {
			ct := f.ct + "; escaping=" + expfmt.Format(model.NameEscapingScheme.String())
			want := wantBody(t, ct, []*aggregate.State{st}, nodeLabel)
			for _, enc := range []string{"gzip", ""} {
				if got := body(t, serve(t, h, []*aggregate.State{st}, f.accept, enc, "")); !bytes.Equal(got, want) {
					t.Fatalf("node label %v, %s, %q: %d bytes differ from expfmt's %d", nodeLabel, f.name, enc, len(got), len(want))
				}
			}
		}
	}
}

// A new version of a node replaces the cached one; an older version than
// the cached one is served as it is.
func TestServeVersions(t *testing.T) {
	h, err := exposition.NewHandler(exposition.HandlerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []*aggregate.State{tricky("n1", 1, 0), tricky("n1", 2, 5), tricky("n1", 1, 0), tricky("n1", 2, 5)} {
		want := wantBody(t, expfmt.FmtText+"; escaping=underscores", []*aggregate.State{st}, false)
		for _, enc := range []string{"gzip", ""} {
			if got := body(t, serve(t, h, []*aggregate.State{st}, "", enc, "")); !bytes.Equal(got, want) {
				t.Fatalf("mark %d, %q:\ngot:\n%s\nwant:\n%s", st.Mark, enc, got, want)
			}
		}
	}
}

// With a gatherer, the response is what promhttp serves for the
// gatherer and the aggregate together, name[] filters apply to both, and
// an aggregate's family whose name a gathered family takes is left out,
// counted in the conflicts family and logged once.
func TestServeWithGatherer(t *testing.T) {
	reg := prometheus.NewRegistry()
	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "aa_up", Help: "Up."})
	up.Set(1)
	dup := prometheus.NewGauge(prometheus.GaugeOpts{Name: "b_level", Help: "The process's own."})
	dup.Set(42)
	reg.MustRegister(up, dup)
	var logged []string
	h, err := exposition.NewHandler(exposition.HandlerConfig{Gatherer: reg, EnableOpenMetrics: true,
		ErrorLog: logFunc(func(v ...any) { logged = append(logged, fmt.Sprint(v...)) })})
	if err != nil {
		t.Fatal(err)
	}
	states := []*aggregate.State{tricky("n1", 4, 0)}
	want := func(query string) map[string]*dto.MetricFamily {
		hidden := *states[0]
		hidden.Families = nil
		for _, f := range states[0].Families {
			if f.Name != "b_level" {
				hidden.Families = append(hidden.Families, f)
			}
		}
		conflicts := &dto.MetricFamily{Name: proto.String(exposition.ConflictsName), Type: dto.MetricType_GAUGE.Enum(),
			Help:   proto.String("Series of a metric left out of this view because a name it exposes is another family's, or the nodes disagree on its type or buckets (docs/design.md)."),
			Metric: []*dto.Metric{{Label: []*dto.LabelPair{{Name: proto.String("metric"), Value: proto.String("b_level")}}, Gauge: &dto.Gauge{Value: proto.Float64(6)}}}}
		ph := promhttp.HandlerFor(prometheus.Gatherers{reg, exposition.StaticGatherer(append(exposition.Families([]*aggregate.State{&hidden}, false), conflicts))}, promhttp.HandlerOpts{})
		w := httptest.NewRecorder()
		ph.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics"+query, nil))
		return parseText(t, w.Body.Bytes())
	}
	for _, query := range []string{"", "?name[]=aa_up&name[]=c_seconds&name[]=" + exposition.RejectedName, ""} {
		for _, enc := range []string{"", "gzip"} {
			got := parseText(t, body(t, serve(t, h, states, "", enc, query)))
			w := want(query)
			if len(got) != len(w) {
				t.Fatalf("query %q: families %v, want %v", query, keys(got), keys(w))
			}
			for name, mf := range w {
				// promhttp sorts a family's metrics by label values when
				// it merges gatherers; the aggregate's come in key order.
				for _, f := range []*dto.MetricFamily{got[name], mf} {
					if f != nil {
						slices.SortFunc(f.Metric, func(a, b *dto.Metric) int { return strings.Compare(a.String(), b.String()) })
					}
				}
				if !proto.Equal(got[name], mf) {
					t.Errorf("query %q: family %s\ngot  %v\nwant %v", query, name, got[name], mf)
				}
			}
		}
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "b_level") {
		t.Errorf("logged %q, want the hidden family named once", logged)
	}
}

type logFunc func(v ...any)

func (f logFunc) Println(v ...any) { f(v...) }

func parseText(t *testing.T, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	return fams
}

func keys(m map[string]*dto.MetricFamily) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestServeNegotiation(t *testing.T) {
	h, err := exposition.NewHandler(exposition.HandlerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	states := []*aggregate.State{tricky("n1", 1, 0)}
	for _, tc := range []struct {
		accept, encoding string
		wantType         expfmt.FormatType
		wantGzip         bool
	}{
		{"", "", expfmt.TypeTextPlain, false},
		{"*/*", "gzip", expfmt.TypeTextPlain, true},
		{"application/openmetrics-text;version=1.0.0", "gzip;q=0", expfmt.TypeTextPlain, false}, // OpenMetrics not enabled
		{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3", "identity;q=0.5, gzip", expfmt.TypeProtoDelim, true},
		{"text/plain", "br, gzip;q=0.2, identity", expfmt.TypeTextPlain, false},
		{"text/plain", "*", expfmt.TypeTextPlain, false},
		{"text/plain", "GZIP", expfmt.TypeTextPlain, true},
	} {
		w := serve(t, h, states, tc.accept, tc.encoding, "")
		ct := expfmt.Format(w.Header().Get("Content-Type"))
		if ct.FormatType() != tc.wantType || (w.Header().Get("Content-Encoding") == "gzip") != tc.wantGzip {
			t.Errorf("Accept %q, Accept-Encoding %q: %q, encoding %q", tc.accept, tc.encoding, ct, w.Header().Get("Content-Encoding"))
		}
		if v := w.Header().Values("Vary"); len(v) != 2 {
			t.Errorf("Vary %q", v)
		}
		body(t, w)
	}
}
