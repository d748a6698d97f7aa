package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// TestPrometheusStoresNativeHistogram: a real Prometheus scraping native
// histograms stores jetmetrics_service_latency_seconds, recorded through
// the SDK's latency handle, as a native histogram: histogram_count, which
// only native histograms have, is the number of samples, and the median
// falls in the bucket the samples put it in.
func TestPrometheusStoresNativeHistogram(t *testing.T) {
	bin := prometheusBinary(t)
	rn := harness.StartNode(t, node.Config{})
	p, err := producers.New(producers.Config{Node: rn.Name(), Name: "native", FlushInterval: 20 * time.Millisecond}, rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	lat, err := p.Latency("svc")
	if err != nil {
		t.Fatal(err)
	}
	// 10 ms twice (bucket 2^-7..2^-6.5), 300 ms five times (2^-2..2^-1.5,
	// where the median is), 5 s twice and 300 s (above the highest
	// bound: the overflow bucket) once.
	samples := map[time.Duration]int{10 * time.Millisecond: 2, 300 * time.Millisecond: 5, 5 * time.Second: 2, 300 * time.Second: 1}
	n := 0
	for d, k := range samples {
		for range k {
			lat.Observe(d)
			n++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	prom := startPrometheus(t, bin, strings.TrimPrefix(rn.URL, "http://"))
	series := `jetmetrics_service_latency_seconds{service="svc"}`
	harness.Eventually(t, converge, func() error {
		v, err := prom.query(`histogram_count(` + series + `)`)
		if err != nil {
			return err
		}
		if v != float64(n) {
			return fmt.Errorf("histogram_count = %v, want %d", v, n)
		}
		return nil
	})
	q, err := prom.query(`histogram_quantile(0.5, ` + series + `)`)
	if err != nil {
		t.Fatal(err)
	}
	if q <= 0.25 || q > 0.3536 {
		t.Errorf("median %v, want within the bucket (0.25, 0.3536] that holds 300 ms", q)
	}
}

// prometheusBinary finds prometheus (Debian's package, installed by `go
// tool task promtool`). Without it the test skips, except in CI, where it
// fails.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("prometheus is not on PATH, and CI is set: run `go tool task promtool` (Debian's prometheus package): %v", err)
		}
		t.Skipf("prometheus is not on PATH: run `go tool task promtool` (Debian's prometheus package) to run this test: %v", err)
	}
	return bin
}

type prometheusServer struct {
	url    string
	client *http.Client
}

// startPrometheus runs Prometheus with native histograms on, scraping
// target every second, on a free loopback port with its storage in a
// temporary directory, and waits until it is ready. It is killed at
// cleanup.
func startPrometheus(t *testing.T, bin, target string) *prometheusServer {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: jetmetrics\n    static_configs:\n      - targets: [%q]\n", target)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	cmd := exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--enable-feature=native-histograms",
		"--log.level=warn",
	)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ps := &prometheusServer{url: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	harness.Eventually(t, converge, func() error {
		resp, err := ps.client.Get(ps.url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("prometheus /-/ready: %s", resp.Status)
		}
		return nil
	})
	return ps
}

// query runs an instant query whose result is one sample and returns its
// value.
func (ps *prometheusServer) query(q string) (float64, error) {
	resp, err := ps.client.Get(ps.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, fmt.Errorf("%s: %w", q, err)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s: %s", q, r.Error)
	}
	if len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("%s: %d results, want 1", q, len(r.Data.Result))
	}
	s, ok := r.Data.Result[0].Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("%s: value %v", q, r.Data.Result[0].Value)
	}
	return strconv.ParseFloat(s, 64)
}
