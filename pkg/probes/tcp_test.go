package probes_test

import (
	"net"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/probes"
)

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	p, err := probes.NewTCP(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	check(t, p, "")

	p, err = probes.NewTCP(closedPort(t))
	if err != nil {
		t.Fatal(err)
	}
	err = check(t, p, probes.ReasonRefused)
	if want := "tcp connect: connection refused: nothing listens there"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestNewTCPRefusesBadAddress(t *testing.T) {
	for _, a := range []string{"", "localhost", ":80", "host:"} {
		if _, err := probes.NewTCP(a); err == nil || err.Error() != "tcp probe: want host:port (e.g. db.example.com:5432, [::1]:6379)" {
			t.Errorf("%q: %v", a, err)
		}
	}
}
