package probes_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/jetmetrics/jetmetrics/pkg/probes"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// A NATS micro service answers $SRV.PING with no code of its own; the
// probe borrows a connection or makes its own from a URL. No subscriber
// is no_responders, a subscriber that never answers a timeout, and a
// micro endpoint's error a service_error.
func TestNATS(t *testing.T) {
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
	if err := svc.AddEndpoint("fail", micro.HandlerFunc(func(r micro.Request) {
		_ = r.Error("503", "database down", nil)
	}), micro.WithEndpointSubject("orders.fail")); err != nil {
		t.Fatal(err)
	}
	sub, err := nc.SubscribeSync("silent") // never answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	own := func(subject string) *probes.NATS {
		p, err := probes.NewNATS(probes.NATSConfig{Conn: nc, Subject: subject})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	check(t, own("$SRV.PING"), "")
	check(t, own("$SRV.PING.orders"), "")
	err = check(t, own("nobody.home"), probes.ReasonNoResponders)
	if want := "nats request: no responders: nothing subscribes to the subject"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	err = check(t, own("orders.fail"), probes.ReasonServiceError)
	if want := `nats request: the service answered with error 503: "database down"`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	lat, err := own("silent").Probe(probeCtx(t, 100*time.Millisecond))
	if probes.ReasonOf(err) != probes.ReasonTimeout || lat != 0 {
		t.Errorf("silent subscriber: %v, %v; want a timeout", lat, err)
	}

	byURL, err := probes.NewNATS(probes.NATSConfig{URL: s.ClientURL(), Subject: "$SRV.PING.orders"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(byURL.Close)
	check(t, byURL, "")
	check(t, byURL, "") // the same connection again
	byURL.Close()
	check(t, byURL, "") // a new one after Close
	byURL.Close()
	if nc.IsClosed() {
		t.Error("closing a probe closed the connection it borrowed")
	}
	own("$SRV.PING").Close()
	if nc.IsClosed() {
		t.Error("closing a probe closed the connection it borrowed")
	}
}

// A URL where no NATS server listens fails the probe, without the URL's
// credentials in the message.
func TestNATSURLDown(t *testing.T) {
	p, err := probes.NewNATS(probes.NATSConfig{URL: "nats://probe:s3cr3t@" + closedPort(t), Subject: "$SRV.PING"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	lat, err := p.Probe(probeCtx(t, 2*time.Second))
	if err == nil || lat != 0 {
		t.Fatalf("%v, %v: want a failure", lat, err)
	}
	if r := probes.ReasonOf(err); r != probes.ReasonConnection || err.Error() != "nats connect: nats: no servers available for connection" {
		t.Errorf("reason %q, message %q", r, err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("message shows the credential: %q", err)
	}
}

func TestNewNATSRefusesBadConfig(t *testing.T) {
	nc := &nats.Conn{}
	for _, tc := range []struct {
		cfg  probes.NATSConfig
		want string
	}{
		{probes.NATSConfig{Subject: "a"}, "nats probe: give a connection or a URL, one of them"},
		{probes.NATSConfig{Conn: nc, URL: "nats://x", Subject: "a"}, "nats probe: give a connection or a URL, one of them"},
		{probes.NATSConfig{Conn: nc, Subject: "orders.*"}, `nats probe: subject "orders.*" is not a subject to send a request to (dot-separated tokens, no spaces or wildcards)`},
		{probes.NATSConfig{Conn: nc, Subject: ""}, `nats probe: subject "" is not a subject to send a request to (dot-separated tokens, no spaces or wildcards)`},
		{probes.NATSConfig{Conn: nc, Subject: "a..b"}, `nats probe: subject "a..b" is not a subject to send a request to (dot-separated tokens, no spaces or wildcards)`},
	} {
		if _, err := probes.NewNATS(tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
