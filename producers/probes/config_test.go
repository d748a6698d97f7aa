package probes_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/probes"
	pp "github.com/jetmetrics/jetmetrics/producers/probes"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// A loaded file's probes become working probers: HTTPS with the
// configured CA, a body match and an expected status; TCP; NATS through
// the node's connection and through a nats-url; each probe's timeout.
func TestFromConfig(t *testing.T) {
	s := harness.NATS(t)
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	svc, err := micro.AddService(nc, micro.Config{Name: "orders", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	web := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status": "ok"}`))
	}))
	t.Cleanup(web.Close)

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web-ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: web.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `
probes:
  - name: web
    kind: http
    target: ` + web.URL + `/health
    expect-status: [202]
    body-match: '"status":\s*"ok"'
    timeout: 2s
    tls: {ca-file: web-ca.pem}
  - name: web-unverified
    kind: http
    target: ` + web.URL + `/health
  - name: nats-port
    kind: tcp
    target: ` + s.ClientURL()[len("nats://"):] + `
  - name: orders
    kind: nats
    target: $SRV.PING.orders
  - name: orders-by-url
    kind: nats
    target: $SRV.PING.orders
    nats-url: ` + s.ClientURL() + `
`
	path := filepath.Join(dir, "jetmetrics.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	set, err := pp.FromConfig(f.Probes, nc)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	for name, want := range map[string]string{
		"web": "", "web-unverified": probes.ReasonTLS, "nats-port": "", "orders": "", "orders-by-url": "",
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		lat, err := set.Probers[name].Probe(ctx)
		cancel()
		if got := probes.ReasonOf(err); got != want || (err == nil) != (lat > 0) {
			t.Errorf("%s: %v, %v (reason %q), want reason %q", name, lat, err, got, want)
		}
	}
	if len(set.Timeouts) != 1 || set.Timeouts["web"] != 2*time.Second {
		t.Errorf("timeouts %v", set.Timeouts)
	}

	if _, err := pp.FromConfig(f.Probes, nil); err == nil || err.Error() != `probes[3] ("orders"): no nats-url, and no node connection to borrow` {
		t.Errorf("without a node connection: %v", err)
	}
}
