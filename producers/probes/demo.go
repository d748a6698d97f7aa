package probes

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/jetmetrics/jetmetrics/pkg/probes"
)

// Demo service names: what --demo probes.
const (
	// DemoWeb is the node's own /-/healthy over HTTP.
	DemoWeb = "demo-web"
	// DemoNATS is a NATS micro service the demo registers on the node's
	// connection, probed by $SRV.PING.<DemoServiceName>.
	DemoNATS = "demo-nats"
	// DemoDown is a TCP connect to a loopback port where nothing listens:
	// it fails every time, so a failure is counted from the start.
	DemoDown = "demo-down"
	// DemoServiceName is the micro service's name.
	DemoServiceName = "jetmetrics-demo"
)

// DemoConfig says where the demo's targets are.
type DemoConfig struct {
	// WebURL is the node's HTTP server as a base URL
	// (http://127.0.0.1:9090); the demo probes WebURL + "/-/healthy".
	WebURL string
	// Conn is the node's NATS connection: the demo registers its micro
	// service there and probes through it.
	Conn *nats.Conn
}

// Demo is the probe set --demo runs: one healthy HTTP target, one NATS
// request–reply, one target that always fails.
type Demo struct {
	// Probers are the demo services by name, for Config.Probers.
	Probers map[string]Prober
	svc     micro.Service
}

// NewDemo registers the demo's micro service on cfg.Conn and returns the
// probe set. Close unregisters it.
func NewDemo(cfg DemoConfig) (*Demo, error) {
	if cfg.Conn == nil {
		return nil, errors.New("demo probes: no NATS connection")
	}
	web, err := probes.NewHTTP(probes.HTTPConfig{URL: strings.TrimSuffix(cfg.WebURL, "/") + "/-/healthy", ExpectStatus: []int{200}})
	if err != nil {
		return nil, fmt.Errorf("demo probes: web URL: %w", err)
	}
	down, err := closedLoopbackPort()
	if err != nil {
		return nil, fmt.Errorf("demo probes: %w", err)
	}
	tcp, err := probes.NewTCP(down)
	if err != nil {
		return nil, fmt.Errorf("demo probes: %w", err)
	}
	ping, err := probes.NewNATS(probes.NATSConfig{Conn: cfg.Conn, Subject: "$SRV.PING." + DemoServiceName})
	if err != nil {
		return nil, fmt.Errorf("demo probes: %w", err)
	}
	svc, err := micro.AddService(cfg.Conn, micro.Config{
		Name:        DemoServiceName,
		Version:     "1.0.0",
		Description: "answers the --demo NATS probe",
	})
	if err != nil {
		return nil, fmt.Errorf("demo probes: register the micro service: %w", err)
	}
	return &Demo{
		Probers: map[string]Prober{DemoWeb: web, DemoNATS: ping, DemoDown: tcp},
		svc:     svc,
	}, nil
}

// Close unregisters the demo's micro service.
func (d *Demo) Close() error {
	if err := d.svc.Stop(); err != nil {
		return fmt.Errorf("demo probes: stop the micro service: %w", err)
	}
	return nil
}

// closedLoopbackPort is a loopback address the kernel just handed out
// and that nothing listens on any more: a connect there is refused.
func closedLoopbackPort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a closed loopback port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("find a closed loopback port: %w", err)
	}
	return addr, nil
}
