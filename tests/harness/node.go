package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
)

// nodeReadyTimeout bounds how long StartNode waits for /-/ready.
const nodeReadyTimeout = 60 * time.Second

// RunningNode is a jetmetrics node running in the test process.
type RunningNode struct {
	*node.Node
	// Config is the configuration it was started with (defaults filled).
	Config node.Config
	// URL is the node's HTTP base URL, http://127.0.0.1:port.
	URL string

	cancel context.CancelFunc
	done   chan error
}

// StartNode runs a node with cfg and waits until it is ready. Unset fields
// get test defaults: name "n1", a temporary data dir, the HTTP server and
// the embedded NATS server on free loopback ports. The logger is always
// the test's. Redis is
// the node's own managed redis-server unless cfg.RedisURL is set. The node
// is stopped at cleanup.
func StartNode(t testing.TB, cfg node.Config) *RunningNode {
	t.Helper()
	rn := LaunchNode(t, cfg)
	Eventually(t, nodeReadyTimeout, func() error {
		select {
		case err := <-rn.done:
			rn.done <- err
			t.Fatalf("node %s stopped: %v", rn.Config.Name, err)
		default:
		}
		return rn.ready()
	})
	return rn
}

// LaunchNode is StartNode without waiting for /-/ready: it returns once
// the node's listeners are bound (Started), for a node whose web routes
// need credentials or TLS the caller brings. It is stopped at cleanup.
func LaunchNode(t testing.TB, cfg node.Config) *RunningNode {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "n1"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.WebListen == "" {
		cfg.WebListen = "127.0.0.1:0"
	}
	if cfg.NATSURL == "" && cfg.NATSListen == "" {
		cfg.NATSListen = "127.0.0.1:0"
	}
	cfg.Logger = Logger(t).With().Str("test_node", cfg.Name).Logger()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rn := &RunningNode{Node: n, Config: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { rn.done <- n.Run(ctx) }()
	t.Cleanup(func() { rn.Stop(t) })
	select {
	case <-n.Started():
	case err := <-rn.done:
		rn.done <- err
		t.Fatalf("node %s stopped at start: %v", cfg.Name, err)
	}
	rn.URL = "http://" + n.WebAddr()
	return rn
}

func (rn *RunningNode) ready() error {
	resp, err := http.Get(rn.URL + "/-/ready")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The body says which check or component is not ready.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return fmt.Errorf("/-/ready: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Stop stops the node and waits for Run to return; Run's error fails the
// test. Stopping a stopped node does nothing.
func (rn *RunningNode) Stop(t testing.TB) {
	t.Helper()
	if rn.cancel == nil {
		return
	}
	rn.cancel()
	rn.cancel = nil
	select {
	case err := <-rn.done:
		if err != nil {
			t.Errorf("node %s: %v", rn.Config.Name, err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("node %s did not stop within a minute", rn.Config.Name)
	}
}

// Connect returns a NATS connection to the node's NATS, closed at cleanup,
// that reconnects forever.
func (rn *RunningNode) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(rn.NATSURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Scrape fetches url in the Prometheus text format and parses it.
func Scrape(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// Samples flattens families into sample name with labels (sorted, in the
// text format, le last for buckets) to value: a counter's, a gauge's, and a
// histogram's _bucket, _count and _sum.
func Samples(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			lbl := func(extra ...string) string {
				s := ""
				for _, l := range m.GetLabel() {
					s += fmt.Sprintf("%s=%q,", l.GetName(), l.GetValue())
				}
				for i := 0; i+1 < len(extra); i += 2 {
					s += fmt.Sprintf("%s=%q,", extra[i], extra[i+1])
				}
				if s == "" {
					return ""
				}
				return "{" + s[:len(s)-1] + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[name+lbl()] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name+lbl()] = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[name+lbl()] = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[name+"_count"+lbl()] = float64(h.GetSampleCount())
				out[name+"_sum"+lbl()] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[name+"_bucket"+lbl("le", formatFloat(b.GetUpperBound()))] = float64(b.GetCumulativeCount())
				}
				out[name+"_bucket"+lbl("le", "+Inf")] = float64(h.GetSampleCount())
			}
		}
	}
	return out
}

func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}
