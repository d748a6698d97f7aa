package probes_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/probes"
	pp "github.com/jetmetrics/jetmetrics/producers/probes"
)

// The demo set: the node's /-/healthy passes, its NATS answers the demo
// micro service's ping, and the closed port fails with refused. Closing
// the demo unregisters the micro service.
func TestDemo(t *testing.T) {
	nc, _ := natsAndJetStream(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("Healthy\n")) })
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close)

	d, err := pp.NewDemo(pp.DemoConfig{WebURL: web.URL + "/", Conn: nc})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Probers) != 3 {
		t.Fatalf("%d demo probes, want 3", len(d.Probers))
	}
	probe := func(name string) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return d.Probers[name].Probe(ctx)
	}
	for name, want := range map[string]string{pp.DemoWeb: "", pp.DemoNATS: "", pp.DemoDown: probes.ReasonRefused} {
		lat, err := probe(name)
		if got := probes.ReasonOf(err); got != want || (err == nil) != (lat > 0) {
			t.Errorf("%s: %v, %v (reason %q), want reason %q", name, lat, err, got, want)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := probe(pp.DemoNATS); probes.ReasonOf(err) != probes.ReasonNoResponders {
		t.Errorf("after Close: %v, want no responders", err)
	}
}

func TestDemoRefuses(t *testing.T) {
	if _, err := pp.NewDemo(pp.DemoConfig{WebURL: "http://127.0.0.1:1"}); err == nil || err.Error() != "demo probes: no NATS connection" {
		t.Errorf("no connection: %v", err)
	}
	nc, _ := natsAndJetStream(t)
	if _, err := pp.NewDemo(pp.DemoConfig{WebURL: "127.0.0.1:9090", Conn: nc}); err == nil || err.Error() != "demo probes: web URL: http probe: want an http:// or https:// URL with a host" {
		t.Errorf("bad URL: %v", err)
	}
}
