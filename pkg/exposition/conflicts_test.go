package exposition_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/exposition/expositiontest"
)

func gauge(name string, vals ...float64) aggregate.Family {
	f := aggregate.Family{Name: name, Meta: aggregate.Meta{Kind: aggregate.Gauge, Help: "A gauge."}}
	for i, v := range vals {
		f.Series = append(f.Series, scalar(name, v, "i", fmt.Sprint(i)))
	}
	return f
}

func counter(name string, vals ...float64) aggregate.Family {
	f := gauge(name, vals...)
	f.Kind, f.Help = aggregate.Counter, "A counter."
	return f
}

func histogram(name string, buckets []float64, n int) aggregate.Family {
	f := aggregate.Family{Name: name, Meta: aggregate.Meta{Kind: aggregate.Histogram, Help: "A histogram.", Buckets: buckets}}
	for i := range n {
		counts := make([]uint64, len(buckets)+1)
		counts[0] = uint64(i + 1)
		f.Series = append(f.Series, hist(name, counts, 0.5, "i", fmt.Sprint(i)))
	}
	return f
}

func state(node string, mark uint64, fams ...aggregate.Family) *aggregate.State {
	slices.SortFunc(fams, func(a, b aggregate.Family) int { return strings.Compare(a.Name, b.Name) })
	return &aggregate.State{Node: node, Mark: mark, Families: fams}
}

// acceptText, acceptOM and acceptProto ask for each format.
const (
	acceptText  = "text/plain;version=0.0.4"
	acceptOM    = "application/openmetrics-text;version=1.0.0"
	acceptProto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
)

// scrape serves states and checks the body as a scraper would.
func scrape(t *testing.T, h *exposition.Handler, states []*aggregate.State, accept string) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	w := serve(t, h, states, accept, "gzip", "")
	b := body(t, w)
	fams, err := expositiontest.Check(b, w.Header().Get("Content-Type"))
	if err != nil {
		t.Fatalf("%s: %v\n%s", accept, err, b)
	}
	return b, fams
}

// publishedNames are the families the test's aggregates hold: their names
// are the publishers' choice, so promlint's advice on them is theirs.
func publishedNames(name string) bool {
	for _, p := range []string{"go_", "process_", "promhttp_", "jetmetrics_"} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return true
}

// When nodes disagree on a metric's type or layout, or one node's names
// meet another's after suffixes, the cluster view stays parseable in every
// format, serves the same bytes whatever order the states come in (the
// variant held by most nodes wins, ties to the lowest node), leaves out
// the rest visibly (the conflicts family, the JSON's conflicts holding the
// families whole, one log line per conflict) and never mixes kinds.
func TestClusterViewConflicts(t *testing.T) {
	n1 := state("n1", 5,
		histogram("h", []float64{1}, 2),                     // kept: tie with n2's h_count, n1 first
		gauge("m_total", 7),                                 // lost: a counter on n2 and n3
		histogram("lat", []float64{1, 2}, 1),                // lost: n2 and n3 hold other buckets
		gauge("x", 1),                                       // kept: its OpenMetrics family x beats n3's counter x_total
		counter(exposition.RejectedName, 1),                 // lost: the view's own family
		gauge("ok_level", 1, 2),                             // kept everywhere
		gauge("y", 3),                                       // kept: y sorts before y_total on one node
		counter("y_total", 4),                               // lost
		counter("jetmetrics_exposition_conflicts_total", 1), // lost: the conflicts family's OpenMetrics name
	)
	n2 := state("n2", 9,
		gauge("h_count", 3),
		counter("m_total", 1, 2),
		histogram("lat", []float64{1, 2, 3}, 2),
		gauge("ok_level", 3),
	)
	n3 := state("n3", 4,
		counter("m_total", 5),
		histogram("lat", []float64{1, 2, 3}, 1),
		counter("x_total", 2),
		gauge("ok_level", 4),
	)
	n1.Rejected = map[string]uint64{"type_conflict": 2}
	n2.Rejected = map[string]uint64{"overflow": 1}
	wantConflicts := map[string]float64{ // metric/node -> series left out
		"h_count/n2": 1, "m_total/n1": 1, "lat/n1": 1, "x_total/n3": 1, exposition.RejectedName + "/n1": 1,
		"y_total/n1": 1, "jetmetrics_exposition_conflicts_total/n1": 1,
	}
	wantKinds := map[string]dto.MetricType{
		"h": dto.MetricType_HISTOGRAM, "m_total": dto.MetricType_COUNTER, "lat": dto.MetricType_HISTOGRAM,
		"x": dto.MetricType_GAUGE, "ok_level": dto.MetricType_GAUGE, "y": dto.MetricType_GAUGE,
	}
	orders := [][]*aggregate.State{{n1, n2, n3}, {n3, n2, n1}, {n2, n1, n3}, {n2, n3, n1}}
	var mu sync.Mutex
	var logged []string
	h, err := exposition.NewHandler(exposition.HandlerConfig{NodeLabel: true, EnableOpenMetrics: true,
		ErrorLog: logFunc(func(v ...any) { mu.Lock(); logged = append(logged, fmt.Sprint(v...)); mu.Unlock() })})
	if err != nil {
		t.Fatal(err)
	}
	for _, accept := range []string{acceptText, acceptOM, acceptProto} {
		var first []byte
		for i, states := range orders {
			b, fams := scrape(t, h, states, accept)
			if i == 0 {
				first = b
			} else if !bytes.Equal(b, first) {
				t.Fatalf("%s: states in order %d serve other bytes than in order 0:\n%s\n---\n%s", accept, i, b, first)
			}
			if fams == nil {
				continue
			}
			for name, k := range wantKinds {
				if fams[name].GetType() != k {
					t.Errorf("%s: %s is %v, want %v", accept, name, fams[name].GetType(), k)
				}
			}
			for _, lost := range []string{"h_count", "y_total"} {
				if fams[lost] != nil {
					t.Errorf("%s: %s served beside the family whose names it meets", accept, lost)
				}
			}
			if n := len(fams["m_total"].GetMetric()); n != 3 {
				t.Errorf("%s: m_total has %d series, want n2's two and n3's one", accept, n)
			}
			got := map[string]float64{}
			for _, m := range fams[exposition.ConflictsName].GetMetric() {
				lbl := map[string]string{}
				for _, l := range m.GetLabel() {
					lbl[l.GetName()] = l.GetValue()
				}
				got[lbl["metric"]+"/"+lbl["node"]] = m.GetGauge().GetValue()
			}
			if fmt.Sprint(got) != fmt.Sprint(wantConflicts) {
				t.Errorf("%s: conflicts %v, want %v", accept, got, wantConflicts)
			}
			problems, err := expositiontest.Lint(fams, publishedNames)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("%s: promlint: %s: %s", accept, p.Metric, p.Text)
			}
		}
	}

	// The JSON form decides the same, keeps what it leaves out, whole, and
	// every node's rejections.
	var firstJSON []byte
	for i, states := range orders {
		var buf bytes.Buffer
		if err := h.WriteJSON(&buf, nil, states, exposition.Filter{}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			firstJSON = buf.Bytes()
		} else if !bytes.Equal(buf.Bytes(), firstJSON) {
			t.Fatalf("JSON differs with the states' order")
		}
	}
	var view struct {
		Metrics []struct {
			Name, Type string
			Series     []json.RawMessage
		}
		Rejected []struct {
			Node, Reason string
			Value        uint64
		}
		Conflicts []struct {
			Node, Metric, With string
			Family             struct {
				Type   string
				Series []json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(firstJSON, &view); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(view.Rejected) != "[{n1 type_conflict 2} {n2 overflow 1}]" {
		t.Errorf("JSON rejected %v, want every node's counts", view.Rejected)
	}
	got := map[string]float64{}
	for _, c := range view.Conflicts {
		got[c.Metric+"/"+c.Node] = float64(len(c.Family.Series))
	}
	if fmt.Sprint(got) != fmt.Sprint(wantConflicts) {
		t.Errorf("JSON conflicts %v, want %v", got, wantConflicts)
	}
	for _, m := range view.Metrics {
		if want, ok := wantKinds[m.Name]; ok && m.Type != strings.ToLower(want.String()) {
			t.Errorf("JSON %s is a %s", m.Name, m.Type)
		}
	}

	// Each conflict was logged once, for all those scrapes.
	mu.Lock()
	if len(logged) != len(wantConflicts) {
		t.Errorf("logged %d lines, want one per conflict (%d):\n%s", len(logged), len(wantConflicts), strings.Join(logged, "\n"))
	}
	logged = nil
	mu.Unlock()
	// A conflict that goes is forgotten; when it comes back it is logged
	// again.
	n2Fixed := *n2
	n2Fixed.Mark = 10
	n2Fixed.Families = slices.DeleteFunc(slices.Clone(n2.Families), func(f aggregate.Family) bool { return f.Name == "h_count" })
	scrape(t, h, []*aggregate.State{n1, &n2Fixed, n3}, acceptText)
	scrape(t, h, []*aggregate.State{n1, n2, n3}, acceptText)
	mu.Lock()
	defer mu.Unlock()
	if len(logged) != 1 || !strings.Contains(logged[0], "h_count") {
		t.Errorf("after n2 left and came back, logged %q, want n2's h_count once", logged)
	}
}

// A filtered view serves what the whole view serves of the nodes and names
// it selects: the decision is not made again over fewer nodes.
func TestClusterViewFilterKeepsDecision(t *testing.T) {
	n1 := state("n1", 1, gauge("m_total", 1))
	n2 := state("n2", 1, counter("m_total", 1))
	n3 := state("n3", 1, counter("m_total", 1))
	h, err := exposition.NewHandler(exposition.HandlerConfig{NodeLabel: true})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeView(w, httptest.NewRequest(http.MethodGet, "/metrics/cluster", nil), []*aggregate.State{n1, n2, n3}, exposition.Filter{Nodes: []string{"n1"}})
	fams, err := expositiontest.Check(w.Body.Bytes(), w.Header().Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if fams["m_total"] != nil {
		t.Errorf("n1 alone serves its gauge m_total, which the whole view leaves out")
	}
	if c := fams[exposition.ConflictsName]; c == nil || len(c.GetMetric()) != 1 {
		t.Errorf("conflicts %v, want n1's m_total", c)
	}
}

// /metrics never serves a family twice or hides one silently: an
// aggregate holding names of the process's own metrics (as one written
// before publishers were refused them may) loses those families, each
// counted and logged once.
func TestNodeViewKeepsProcessFamilies(t *testing.T) {
	reg := exposition.NewRegistry()
	seq := prometheus.NewGauge(prometheus.GaugeOpts{Name: "jetmetrics_test_applied_sequence", Help: "Set apart from the aggregate."})
	seq.Set(1000)
	reg.MustRegister(seq)
	var logged []string
	h, err := exposition.NewHandler(exposition.HandlerConfig{Gatherer: reg, EnableOpenMetrics: true,
		Reasons: []string{"invalid_value", "type_conflict"},
		StateGauges: func(states []*aggregate.State) map[string]float64 {
			return map[string]float64{"jetmetrics_test_applied_sequence": float64(states[0].Mark)}
		},
		ErrorLog: logFunc(func(v ...any) { logged = append(logged, fmt.Sprint(v...)) })})
	if err != nil {
		t.Fatal(err)
	}
	st := state("n1", 42,
		gauge("go_gc_duration_seconds_count", 1),              // the summary's _count
		counter("process_cpu_seconds_total", 1),               // the same name
		gauge("go_goroutines", 1),                             // the same name
		counter("process_cpu_seconds", 1),                     // a counter: process_cpu_seconds_total
		histogram("promhttp_metric_handler", []float64{1}, 1), // none of its names
		gauge("app_level", 1),
	)
	st.Rejected = map[string]uint64{"overflow": 2}
	for range 3 {
		for _, accept := range []string{acceptText, acceptOM, acceptProto} {
			_, fams := scrape(t, h, []*aggregate.State{st}, accept)
			if fams == nil {
				continue
			}
			if fams["app_level"] == nil || fams["promhttp_metric_handler"] == nil {
				t.Errorf("%s: the aggregate's own families are missing", accept)
			}
			if v := fams["jetmetrics_test_applied_sequence"].GetMetric()[0].GetGauge().GetValue(); v != 42 {
				t.Errorf("%s: applied sequence %v, want the served state's mark 42", accept, v)
			}
			if g := fams["go_goroutines"].GetMetric(); len(g) != 1 || len(g[0].GetLabel()) != 0 {
				t.Errorf("%s: go_goroutines is %v", accept, g)
			}
			left := map[string]bool{}
			for _, m := range fams[exposition.ConflictsName].GetMetric() {
				left[m.GetLabel()[0].GetValue()] = true
			}
			for _, name := range []string{"go_gc_duration_seconds_count", "process_cpu_seconds_total", "go_goroutines", "process_cpu_seconds"} {
				if !left[name] {
					t.Errorf("%s: %s not counted as left out (%v)", accept, name, left)
				}
			}
			rej := map[string]float64{}
			for _, m := range fams[exposition.RejectedName].GetMetric() {
				rej[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
			if fmt.Sprint(rej) != fmt.Sprint(map[string]float64{"invalid_value": 0, "overflow": 2, "type_conflict": 0}) {
				t.Errorf("%s: rejected %v, want every reason from the start", accept, rej)
			}
			problems, err := expositiontest.Lint(fams, func(name string) bool {
				return name == "app_level" || name == "promhttp_metric_handler"
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("%s: promlint: %s: %s", accept, p.Metric, p.Text)
			}
		}
	}
	if len(logged) != 4 {
		t.Errorf("logged %d lines over nine scrapes, want one per family left out:\n%s", len(logged), strings.Join(logged, "\n"))
	}
}
