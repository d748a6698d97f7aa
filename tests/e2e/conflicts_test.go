package e2e_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/exposition/expositiontest"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// rawPublisher publishes wire-format batches of one producer, in order.
type rawPublisher struct {
	t        *testing.T
	js       jetstream.JetStream
	node, id string
	seq      int
}

func newRawPublisher(t *testing.T, nc *nats.Conn, node, id string) *rawPublisher {
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &rawPublisher{t: t, js: js, node: node, id: id}
}

// msg is the next batch of entries.
func (p *rawPublisher) msg(entries ...string) *nats.Msg {
	p.seq++
	m := nats.NewMsg("jetmetrics.delta." + p.node + "." + p.id)
	m.Header.Set("Nats-Msg-Id", fmt.Sprintf("%s:%d", p.id, p.seq))
	m.Data = fmt.Appendf(nil, `{"v":1,"node":%q,"producer":%q,"seq":%d,"metrics":[%s]}`, p.node, p.id, p.seq, strings.Join(entries, ","))
	return m
}

func (p *rawPublisher) publish(ctx context.Context, entries ...string) {
	p.t.Helper()
	if _, err := p.js.PublishMsg(ctx, p.msg(entries...)); err != nil {
		p.t.Fatal(err)
	}
}

func scalarEntry(name, kind string, v float64, labels string) string {
	return fmt.Sprintf(`{"name":%q,"type":%q,"help":"A %s.","labels":{%s},"value":%g}`, name, kind, kind, labels, v)
}

func histEntry(name string) string {
	return fmt.Sprintf(`{"name":%q,"type":"histogram","help":"A histogram.","buckets":[1],"counts":[1,0],"sum":0.5}`, name)
}

// fetch GETs url with accept, gunzipping when gz, and returns the body and
// its content type.
func fetch(t *testing.T, url, accept string, gz bool) ([]byte, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", accept)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	r := io.Reader(resp.Body)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b, resp.Header.Get("Content-Type")
}

var scrapeFormats = []string{
	"text/plain;version=0.0.4",
	"application/openmetrics-text;version=1.0.0",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
}

// checkScrapes scrapes every endpoint of base in every format, plain and
// gzipped, and checks each body as a scraper would and lints it; the
// families in published are the test's, whose names it chose.
func checkScrapes(t *testing.T, base string, published func(string) bool) map[string]*dto.MetricFamily {
	t.Helper()
	var local map[string]*dto.MetricFamily
	for _, path := range []string{"/metrics", "/metrics/cluster"} {
		for _, accept := range scrapeFormats {
			for _, gz := range []bool{false, true} {
				b, ct := fetch(t, base+path, accept, gz)
				fams, err := expositiontest.Check(b, ct)
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", path, accept, err, b)
				}
				if fams == nil {
					continue
				}
				if path == "/metrics" {
					local = fams
				}
				problems, err := expositiontest.Lint(fams, published)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range problems {
					t.Errorf("%s %s: promlint: %s: %s", path, accept, p.Metric, p.Text)
				}
			}
		}
	}
	b, _ := fetch(t, base+"/metrics/cluster?format=json", "", false)
	if !strings.Contains(string(b), `"conflicts":`) {
		t.Errorf("JSON view lacks its conflicts: %s", b)
	}
	return local
}

func reasonCounts(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, m := range fams[exposition.RejectedName].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" {
				out[l.GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// TestConflictingNamesScrapeValid: from the first scrape every rejection
// reason is at 0; metrics whose names meet after suffixes are refused as
// type_conflict, whichever comes second; names of the process's own
// metrics never make a family appear twice; and every endpoint, in every
// format, parses, holds no family twice and lints clean.
func TestConflictingNamesScrapeValid(t *testing.T) {
	rn := harness.StartNode(t, node.Config{})
	fams, err := harness.Scrape(rn.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	reasons := reasonCounts(fams)
	for _, r := range streams.Reasons {
		if v, ok := reasons[string(r)]; !ok || v != 0 {
			t.Errorf("before any input, jetmetrics_rejected_total{reason=%q} = %v (present %v), want 0", r, v, ok)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newRawPublisher(t, rn.Connect(t), rn.Name(), "conflicts-1")
	// The first of each pair applies; the second is a type_conflict.
	pairs := [][2]string{
		{scalarEntry("e2e_a", "counter", 1, ""), scalarEntry("e2e_a_total", "gauge", 1, "")},
		{scalarEntry("e2e_b_total", "gauge", 1, ""), scalarEntry("e2e_b", "counter", 1, "")},
		{scalarEntry("e2e_c", "gauge", 1, ""), scalarEntry("e2e_c_total", "counter", 1, "")},
		{histEntry("e2e_h"), scalarEntry("e2e_h_count", "gauge", 1, "")},
		{scalarEntry("e2e_s_sum", "gauge", 1, ""), histEntry("e2e_s")},
		{histEntry("e2e_k"), scalarEntry("e2e_k_bucket", "counter", 1, "")},
	}
	for i, pair := range pairs {
		if i%2 == 0 {
			p.publish(ctx, pair[0], pair[1]) // one batch
		} else {
			p.publish(ctx, pair[0])
			p.publish(ctx, pair[1])
		}
	}
	// Names of the process's own metrics: refused at input, or left out
	// of /metrics; never served twice.
	p.publish(ctx, scalarEntry("go_gc_duration_seconds_count", "gauge", 1, ""), scalarEntry("process_cpu_seconds_total", "counter", 1, ""),
		scalarEntry("go_goroutines", "gauge", 1, `"k":"v"`), scalarEntry("e2e_done_total", "counter", 1, ""))

	published := func(name string) bool { return strings.HasPrefix(name, "e2e_") }
	harness.Eventually(t, converge, func() error {
		fams, err := harness.Scrape(rn.URL + "/metrics")
		if err != nil {
			return err
		}
		if fams["e2e_done_total"] == nil {
			return fmt.Errorf("last batch not applied yet")
		}
		return nil
	})
	local := checkScrapes(t, rn.URL, published)
	if got := reasonCounts(local)[string(streams.ReasonTypeConflict)]; got != float64(len(pairs)) {
		t.Errorf("type_conflict = %v, want %d", got, len(pairs))
	}
	for _, pair := range pairs {
		for i, e := range pair {
			name := strings.Split(e, `"`)[3]
			if (local[name] != nil) != (i == 0) {
				t.Errorf("%s served %v, want only the first of its pair", name, local[name] != nil)
			}
		}
	}
	if g := local["go_goroutines"].GetMetric(); len(g) != 1 || len(g[0].GetLabel()) != 0 {
		t.Errorf("go_goroutines holds %v, want the process's own series alone", g)
	}
}

// TestScrapeIsOneCut: while deltas apply, every /metrics response shows
// jetmetrics_aggregator_applied_sequence and jetmetrics_aggregator_series
// of the aggregate it serves: each message adds 1 to a counter and one new
// series, so the sequence, the counter and the series served agree.
func TestScrapeIsOneCut(t *testing.T) {
	rn := harness.StartNode(t, node.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := newRawPublisher(t, rn.Connect(t), rn.Name(), "cut-1")
	const messages = 20000
	var acked atomic.Int64
	pubErr := make(chan error, 1)
	go func() {
		defer close(pubErr)
		var futures []jetstream.PubAckFuture
		for i := range messages {
			f, err := p.js.PublishMsgAsync(p.msg(
				scalarEntry("e2e_cut_total", "counter", 1, ""),
				scalarEntry("e2e_cut_series", "gauge", 1, fmt.Sprintf(`"i":"%d"`, i)),
			))
			if err != nil {
				pubErr <- err
				return
			}
			futures = append(futures, f)
			if len(futures) == 256 {
				for _, f := range futures {
					select {
					case <-f.Ok():
						acked.Add(1)
					case err := <-f.Err():
						pubErr <- err
						return
					case <-ctx.Done():
						pubErr <- ctx.Err()
						return
					}
				}
				futures = futures[:0]
			}
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
				acked.Add(1)
			case err := <-f.Err():
				pubErr <- err
				return
			}
		}
	}()
	scrapes, moving := 0, 0
	for {
		fams, err := harness.Scrape(rn.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		scrapes++
		seq := fams["jetmetrics_aggregator_applied_sequence"].GetMetric()[0].GetGauge().GetValue()
		n := fams["jetmetrics_aggregator_series"].GetMetric()[0].GetGauge().GetValue()
		total := 0.0
		if m := fams["e2e_cut_total"].GetMetric(); len(m) == 1 {
			total = m[0].GetCounter().GetValue()
		}
		served := 0
		for name, f := range fams {
			if strings.HasPrefix(name, "e2e_") {
				served += len(f.GetMetric())
			}
		}
		if seq != total {
			t.Fatalf("scrape %d: applied sequence %v beside a counter at %v: not one cut", scrapes, seq, total)
		}
		if n != float64(served) {
			t.Fatalf("scrape %d: jetmetrics_aggregator_series %v beside %d series served", scrapes, n, served)
		}
		if total > 0 && total < messages {
			moving++
		}
		if total == messages {
			break
		}
		select {
		case err, ok := <-pubErr:
			if ok && err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("counter at %v of %d after %d scrapes", total, messages, scrapes)
		default:
		}
	}
	t.Logf("%d scrapes, %d while deltas applied", scrapes, moving)
	if moving < 10 {
		t.Errorf("only %d scrapes while deltas applied: the test did not race them", moving)
	}
}
