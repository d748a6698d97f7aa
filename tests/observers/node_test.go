package observers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jmnode "github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/consumers/volumecache"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/obscache"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// array is a storage backend on a loopback HTTP server answering like an
// http-json endpoint: {"r": read IOPS, "w": write IOPS}. It counts the
// calls, and can be made to fail, or to hang until the request ends.
type array struct {
	srv   *httptest.Server
	calls atomic.Int64
	fail  atomic.Bool
	hang  atomic.Bool
	delay time.Duration
	iops  float64
}

func newArray(t *testing.T, iops float64, delay time.Duration) *array {
	a := &array{iops: iops, delay: delay}
	stop := make(chan struct{})
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.calls.Add(1)
		if a.hang.Load() {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		if a.delay > 0 {
			select {
			case <-time.After(a.delay):
			case <-r.Context().Done():
				return
			}
		}
		if a.fail.Load() {
			http.Error(w, `{"error":"controller offline"}`, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"r": %v, "w": %v}`, a.iops, a.iops/2)
	}))
	t.Cleanup(func() {
		close(stop)
		a.srv.CloseClientConnections()
		a.srv.Close()
	})
	return a
}

func (a *array) volume(name string) config.Volume {
	return config.Volume{Name: name, Backend: config.BackendHTTPJSON, Endpoint: a.srv.URL,
		Fields: map[string]string{"iops-read": "r", "iops-write": "w"}}
}

// result is the part of an API answer the tests read.
type result struct {
	Volume     string     `json:"volume"`
	Source     string     `json:"source"`
	Stale      bool       `json:"stale"`
	ObservedAt *time.Time `json:"observed_at"`
	Status     string     `json:"status"`
	Node       string     `json:"node"`
	Leader     string     `json:"leader"`
	LiveError  string     `json:"live_error"`
	Error      string     `json:"error"`
	Metric     *struct {
		IOPSRead float64 `json:"iops_read"`
	} `json:"metric"`
}

// get fetches url and decodes its JSON answer into v; it returns the
// status code.
func get(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: content type %q: %s", url, ct, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	return resp.StatusCode
}

func perf(t *testing.T, rn *harness.RunningNode, volume string) (result, int) {
	t.Helper()
	var r result
	code := get(t, rn.URL+"/api/v1/volumes/"+url.PathEscape(volume)+"/performance-metric", &r)
	return r, code
}

// gauges counts, in a scrape of url, the jetmetrics_volume_iops_read
// series of each volume.
func gauges(url string) (map[string]int, error) {
	fams, err := harness.Scrape(url)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, m := range fams["jetmetrics_volume_iops_read"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "volume" {
				out[l.GetValue()]++
			}
		}
	}
	return out, nil
}

func observers(interval, timeout, ttl time.Duration) config.Observers {
	return config.Observers{Volume: config.Observer{ObserveInterval: interval, ObserveTimeout: timeout, CacheTTL: ttl}}
}

// One node, a volume whose name is not a subject token, and one whose
// backend hangs past its 900 ms timeout: /-/ready lists the components; the API answers for
// either spelling of the name, 404 for an unknown volume, 400 for bad
// history parameters; the hanging backend delays neither the other
// volume's polls nor the API; history is newest first; a cache TTL
// shorter than the interval makes the gauges go between two polls.
func TestNodeServesVolumes(t *testing.T) {
	good, hang := newArray(t, 100, 0), newArray(t, 5, 0)
	hang.hang.Store(true)
	const interval, ttl = time.Second, 600 * time.Millisecond
	rn := harness.StartNode(t, jmnode.Config{File: config.File{
		Observers: observers(interval, 900*time.Millisecond, ttl),
		Volumes:   []config.Volume{good.volume("svm1/vol_a"), hang.volume("hang")},
	}})

	resp, err := http.Get(rn.URL + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, c := range []string{"aggregator: ok", "broadcast: ok", "volumes: ok"} {
		if !strings.Contains(string(body), c+"\n") {
			t.Errorf("/-/ready does not say %q:\n%s", c, body)
		}
	}

	// Polls of svm1/vol_a go on, one interval apart, while hang hangs.
	var first time.Time
	harness.Eventually(t, 10*time.Second, func() error {
		var h struct {
			Results []result `json:"results"`
		}
		if code := get(t, rn.URL+"/api/v1/volumes/svm1%2Fvol_a/performance-metric/history?limit=3", &h); code != http.StatusOK {
			return fmt.Errorf("history: %d", code)
		}
		if len(h.Results) < 3 {
			return fmt.Errorf("%d results", len(h.Results))
		}
		for i := range 2 {
			if d := h.Results[i].ObservedAt.Sub(*h.Results[i+1].ObservedAt); d != interval {
				return fmt.Errorf("results %s apart, want %s, newest first", d, interval)
			}
		}
		first = *h.Results[2].ObservedAt
		return nil
	})
	if hang.calls.Load() < 2 {
		t.Errorf("hang polled %d times", hang.calls.Load())
	}
	// The API answers at once for the healthy volume, under both names.
	for _, name := range []string{"svm1/vol_a", "svm1_2fvol_5fa"} {
		start := time.Now()
		r, code := perf(t, rn, name)
		if code != http.StatusOK || r.Volume != "svm1/vol_a" || r.Metric == nil || r.Metric.IOPSRead != 100 || r.Stale {
			t.Errorf("%s: %d %+v", name, code, r)
		}
		if d := time.Since(start); d > 700*time.Millisecond {
			t.Errorf("%s answered in %s beside a hanging backend", name, d)
		}
	}
	start := time.Now()
	var list struct {
		Volumes []result `json:"volumes"`
	}
	if code := get(t, rn.URL+"/api/v1/volumes", &list); code != http.StatusOK || len(list.Volumes) != 2 {
		t.Fatalf("volumes: %d %+v", code, list)
	}
	if d := time.Since(start); d > 700*time.Millisecond {
		t.Errorf("/api/v1/volumes answered in %s", d)
	}
	for _, v := range list.Volumes {
		if v.Leader != "n1" {
			t.Errorf("%s led by %q", v.Volume, v.Leader)
		}
	}

	var e struct {
		Error string `json:"error"`
	}
	if code := get(t, rn.URL+"/api/v1/volumes/nope/performance-metric", &e); code != http.StatusNotFound || !strings.Contains(e.Error, `"nope" is not configured`) {
		t.Errorf("unknown volume: %d %q", code, e.Error)
	}
	for _, q := range []string{"limit=0", "limit=x", "limit=100000", "since=yesterday"} {
		e.Error = ""
		if code := get(t, rn.URL+"/api/v1/volumes/hang/performance-metric/history?"+q, &e); code != http.StatusBadRequest || e.Error == "" {
			t.Errorf("%s: %d %q", q, code, e.Error)
		}
	}
	var h struct {
		Results []result `json:"results"`
	}
	get(t, rn.URL+"/api/v1/volumes/svm1%2Fvol_a/performance-metric/history?since="+first.Format(time.RFC3339Nano), &h)
	if len(h.Results) < 3 || !h.Results[len(h.Results)-1].ObservedAt.Equal(first) {
		t.Errorf("history since %s: %+v", first, h.Results)
	}

	// The TTL is shorter than the interval: the gauges come with each
	// poll and go TTL after it, before the next.
	var seen time.Time
	harness.Eventually(t, 10*time.Second, func() error {
		g, err := gauges(rn.URL + "/metrics")
		if err != nil {
			return err
		}
		if g["svm1/vol_a"] != 1 {
			return fmt.Errorf("gauges %v", g)
		}
		seen = time.Now()
		return nil
	})
	harness.Eventually(t, 10*time.Second, func() error {
		g, err := gauges(rn.URL + "/metrics")
		if err != nil {
			return err
		}
		if g["svm1/vol_a"] != 0 {
			return fmt.Errorf("gauges %v", g)
		}
		return nil
	})
	if d := time.Since(seen); d > interval {
		t.Errorf("gauges gone %s after they were seen: not by the TTL", d)
	}
	if g, err := gauges(rn.URL + "/metrics"); err != nil || g["hang"] != 0 {
		t.Errorf("a volume whose polls time out has gauges: %v %v", g, err)
	}
}

// nextPollIn is how long until volume is next due at interval.
func nextPollIn(volume string, interval time.Duration) time.Duration {
	off := (time.Now().UnixNano() - int64(observer.Phase("volume", volume, interval))) % int64(interval)
	return interval - time.Duration(off)
}

// quiet returns a volume name not due for polling at an hourly interval
// within the next ten minutes, so that only the API calls its backend.
func quiet(prefix string) string {
	for i := 0; ; i++ {
		if v := fmt.Sprintf("%s-%d", prefix, i); nextPollIn(v, time.Hour) > 10*time.Minute {
			return v
		}
	}
}

// Fifty requests on a cold cache make one backend call, and the result is
// cached; with Redis stopped the API calls the backend live, then serves
// the last value as stale when the backend fails too, and uses the cache
// again once Redis is back. A node restarted without a volume exposes no
// gauges of it, although its cache entry lives on.
func TestLiveCallsAndRedisOutage(t *testing.T) {
	ns := harness.NATS(t)
	rs := harness.Redis(t)
	rdb := harness.RedisClient(t, rs)
	cold, gone := quiet("cold"), quiet("gone")
	arr, goneArr := newArray(t, 42, 300*time.Millisecond), newArray(t, 7, 0)
	cfg := jmnode.Config{NATSURL: ns.ClientURL(), RedisURL: rs.URL(), File: config.File{
		Observers: observers(time.Hour, 2*time.Second, time.Minute),
		Volumes:   []config.Volume{arr.volume(cold), goneArr.volume(gone)},
	}}
	rn := harness.StartNode(t, cfg)

	var wg sync.WaitGroup
	results := make([]result, 50)
	codes := make([]int, 50)
	for i := range results {
		wg.Go(func() { results[i], codes[i] = perf(t, rn, cold) })
	}
	wg.Wait()
	if n := arr.calls.Load(); n != 1 {
		t.Errorf("50 requests on a cold cache made %d backend calls, want 1", n)
	}
	for i, r := range results {
		if codes[i] != http.StatusOK || r.Metric == nil || r.Metric.IOPSRead != 42 || r.Stale {
			t.Fatalf("answer %d: %d %+v", i, codes[i], r)
		}
	}
	if r, _ := perf(t, rn, cold); r.Source != "cache" || arr.calls.Load() != 1 {
		t.Errorf("after the live call: %+v, %d calls", r, arr.calls.Load())
	}
	if r, _ := perf(t, rn, gone); r.Source != "live" {
		t.Errorf("gone: %+v", r)
	}
	harness.Eventually(t, 10*time.Second, func() error {
		g, err := gauges(rn.URL + "/metrics")
		if err != nil {
			return err
		}
		if g[cold] != 1 || g[gone] != 1 {
			return fmt.Errorf("gauges %v", g)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := rs.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if r, code := perf(t, rn, cold); code != http.StatusOK || r.Source != "live" || r.Stale || arr.calls.Load() != 2 {
		t.Errorf("redis down: %d %+v, %d calls", code, r, arr.calls.Load())
	}
	arr.fail.Store(true)
	r, code := perf(t, rn, cold)
	if code != http.StatusOK || !r.Stale || r.Metric == nil || r.Metric.IOPSRead != 42 || !strings.Contains(r.LiveError, "503") {
		t.Errorf("redis and backend down: %d %+v", code, r)
	}
	arr.fail.Store(false)
	if err := rs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		if r, code := perf(t, rn, cold); code != http.StatusOK || r.Source != "cache" || r.Stale {
			return fmt.Errorf("after redis came back: %d %+v", code, r)
		}
		return nil
	})

	rn.Stop(t)
	cfg.File.Volumes = cfg.File.Volumes[:1]
	cfg.DataDir = rn.Config.DataDir
	rn = harness.StartNode(t, cfg)
	if r, _ := perf(t, rn, cold); r.Source != "cache" {
		t.Errorf("after the restart: %+v", r)
	}
	if _, ok, err := volumecache.Get(t.Context(), obscache.New(rdb, "jetmetrics", "volume"), gone); err != nil || !ok {
		t.Fatalf("%s is no longer cached: %v", gone, err)
	}
	for _, path := range []string{"/metrics", "/metrics/cluster"} {
		g, err := gauges(rn.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		if g[cold] != 1 || g[gone] != 0 {
			t.Errorf("%s after %s left the configuration: %v", path, gone, g)
		}
	}
	var e struct {
		Error string `json:"error"`
	}
	if code := get(t, rn.URL+"/api/v1/volumes/"+gone+"/performance-metric", &e); code != http.StatusNotFound {
		t.Errorf("%s after it left: %d %q", gone, code, e.Error)
	}
}

// Three nodes, each with its own Redis, observe five volumes: scraping
// every node's /metrics yields each volume's gauges once, and so does one
// node's /metrics/cluster, labelled with the node that polled, in the
// Prometheus formats and in JSON.
func TestGaugesOnceAcrossNodes(t *testing.T) {
	ns := harness.NATS(t)
	var vols []config.Volume
	for i := range 5 {
		vols = append(vols, newArray(t, float64(i+1), 0).volume(fmt.Sprintf("vol%d", i)))
	}
	var nodes []*harness.RunningNode
	for _, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, harness.StartNode(t, jmnode.Config{Name: name, NATSURL: ns.ClientURL(),
			SnapshotInterval: 300 * time.Millisecond, SnapshotTTL: time.Second,
			File: config.File{Observers: observers(time.Second, 500*time.Millisecond, 5*time.Second), Volumes: vols}}))
	}
	harness.Eventually(t, 30*time.Second, func() error {
		total := map[string]int{}
		leaders := map[string]bool{}
		for _, rn := range nodes {
			g, err := gauges(rn.URL + "/metrics")
			if err != nil {
				return err
			}
			for v, c := range g {
				total[v] += c
			}
			if len(g) > 0 {
				leaders[rn.Name()] = true
			}
		}
		for _, v := range vols {
			if total[v.Name] != 1 {
				return fmt.Errorf("gauges over every node's /metrics: %v", total)
			}
		}
		if len(leaders) < 2 {
			return fmt.Errorf("only %v lead volumes", leaders)
		}
		for _, rn := range nodes {
			fams, err := harness.Scrape(rn.URL + "/metrics/cluster")
			if err != nil {
				return err
			}
			seen := map[string]int{}
			for _, m := range fams["jetmetrics_volume_iops_read"].GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["node"] == "" {
					return fmt.Errorf("%s /metrics/cluster: %v without a node", rn.Name(), labels)
				}
				seen[labels["volume"]]++
			}
			for _, v := range vols {
				if seen[v.Name] != 1 {
					return fmt.Errorf("%s /metrics/cluster: %v", rn.Name(), seen)
				}
			}
		}
		// The JSON form carries them too, the polling node as the series'.
		var view struct {
			Metrics []struct {
				Name   string `json:"name"`
				Series []struct {
					Node   string            `json:"node"`
					Labels map[string]string `json:"labels"`
				} `json:"series"`
			} `json:"metrics"`
		}
		get(t, nodes[0].URL+"/metrics/cluster?format=json&name=jetmetrics_volume_iops_read", &view)
		seen := map[string]int{}
		for _, f := range view.Metrics {
			for _, s := range f.Series {
				if f.Name == "jetmetrics_volume_iops_read" && s.Node != "" {
					seen[s.Labels["volume"]]++
				}
			}
		}
		for _, v := range vols {
			if seen[v.Name] != 1 {
				return fmt.Errorf("/metrics/cluster?format=json: %v", seen)
			}
		}
		return nil
	})
}
