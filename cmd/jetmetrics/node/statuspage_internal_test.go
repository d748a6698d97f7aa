package node

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The page escapes every name it shows: a node, check, volume or service
// named like markup, and an error holding markup, are text.
func TestStatusTemplateEscapes(t *testing.T) {
	p, err := newStatusPage(&Node{})
	if err != nil {
		t.Fatal(err)
	}
	const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	now := time.Now()
	down, seen := false, now.Add(-3*time.Second)
	v := statusView{
		Node: evil, Version: evil, Now: now, RefreshMillis: 5000,
		Checks:   []statusCheck{{Name: evil, Detail: evil}},
		Nodes:    []nodeEntry{{Name: evil, Role: "self", Up: true, LastSeen: &seen}},
		NodesErr: evil,
		Agg:      aggregatorView{Present: true, Err: evil, Messages: []labelled{{evil, 1}}, MessageRates: []labelled{{evil, 1}}},
		DLQ:      dlqView{Stream: evil, Total: 2, ByReason: []labelled{{evil, 2}}},
		Volumes: []volumeRow{{volumeEntry: volumeEntry{volumeResult: volumeResult{Volume: evil, Backend: evil, Error: evil, Status: "error", ObservedAt: &seen}, Leader: evil},
			Spark: sparkline([]float64{1, 2, 3}, evil)}},
		VolumesMore: 3, Sparklines: 1,
		Services:     []serviceRow{{serviceEntry: serviceEntry{Service: evil, Up: &down, LastError: evil, Leader: evil}, Spark: sparkline([]float64{0.1, 0.2}, "latency")}},
		ServicesMore: 4,
	}
	var b bytes.Buffer
	if err := p.tmpl.Execute(&b, v); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img") {
		t.Fatalf("markup from a name reached the page unescaped:\n%s", page)
	}
	if got := strings.Count(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"); got < 15 {
		t.Errorf("the hostile name appears escaped %d times, want every place it is shown (15 or more):\n%s", got, page)
	}
	if got := strings.Count(page, "<script"); got != 1 {
		t.Errorf("%d script elements, want only the page's own", got)
	}
	for _, want := range []string{"and 3 more", "and 4 more", `<svg class="spark"`, `<polyline points="`, ">down<"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestSparkline(t *testing.T) {
	if s := sparkline([]float64{1}, "x"); s != "" {
		t.Errorf("one value drew %q, want nothing", s)
	}
	flat := string(sparkline([]float64{5, 5, 5}, "x"))
	if !strings.Contains(flat, `points="2.0,12.0 60.0,12.0 118.0,12.0"`) {
		t.Errorf("flat series: %s", flat)
	}
	up := string(sparkline([]float64{0, 10}, `a"b`))
	if !strings.Contains(up, `points="2.0,22.0 118.0,2.0"`) || !strings.Contains(up, `aria-label="a&#34;b"`) {
		t.Errorf("rising series: %s", up)
	}
	long := make([]float64, 1000)
	for i := range long {
		long[i] = float64(i)
	}
	if got := strings.Count(string(sparkline(long, "x")), ","); got != statusSparkPoints {
		t.Errorf("1000 values drew %d points, want %d", got, statusSparkPoints)
	}
}

func TestParseReadiness(t *testing.T) {
	report := "nats: ok\nstreams: not provisioned yet: stream JETMETRICS_DELTAS\nmissing\naggregator: ok\n"
	got := parseReadiness(report)
	want := []statusCheck{{Name: "nats", Detail: "ok", OK: true}, {Name: "streams", Detail: "not provisioned yet: stream JETMETRICS_DELTAS\nmissing"}, {Name: "aggregator", Detail: "ok", OK: true}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("check %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Rates come from a sample at least rateSpacing old, within rateWindow.
func TestRates(t *testing.T) {
	var r rates
	t0 := time.Unix(1000, 0)
	if past, _ := r.sample(t0, map[string]float64{"a": 1}); past != nil {
		t.Fatalf("a first sample has a past: %v", past)
	}
	if past, _ := r.sample(t0.Add(time.Second), map[string]float64{"a": 2}); past != nil {
		t.Fatalf("a sample a second later has a past: %v", past)
	}
	past, d := r.sample(t0.Add(4*time.Second), map[string]float64{"a": 9})
	if past["a"] != 1 || d != 4*time.Second {
		t.Fatalf("past %v over %s, want a=1 over 4s", past, d)
	}
	past, _ = r.sample(t0.Add(2*time.Minute), map[string]float64{"a": 10})
	if past != nil {
		t.Fatalf("a sample older than the window was used: %v", past)
	}
}
