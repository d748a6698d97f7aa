package probes

import (
	"context"
	"errors"
	"net"
	"time"
)

// TCP probes an address by connecting to it: the latency is the time the
// handshake took. The connection is closed at once.
type TCP struct {
	addr string
}

var _ Prober = (*TCP)(nil)

// NewTCP returns a probe of address, a host:port.
func NewTCP(address string) (*TCP, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil || host == "" || port == "" {
		return nil, errors.New("tcp probe: want host:port (e.g. db.example.com:5432, [::1]:6379)")
	}
	return &TCP{addr: address}, nil
}

// Probe connects once.
func (p *TCP) Probe(ctx context.Context) (time.Duration, error) {
	var d net.Dialer
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", p.addr)
	took := time.Since(start)
	if err != nil {
		return 0, fail("tcp connect", err)
	}
	_ = c.Close()
	return took, nil
}
