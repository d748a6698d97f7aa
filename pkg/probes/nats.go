package probes

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// NATSConfig configures a NATS request–reply probe. Exactly one of Conn
// and URL is set.
type NATSConfig struct {
	// Conn is a connection the probe borrows (the node's own); the probe
	// never closes it.
	Conn *nats.Conn
	// URL is a NATS server URL (or a comma-separated list) the probe
	// connects to on its first Probe and keeps, reconnecting after the
	// connection is closed. It is never shown in an error: it may carry
	// credentials.
	URL string
	// TLS configures a tls:// URL's connection (default: verify against
	// the system's CAs).
	TLS *tls.Config
	// Subject is the request's subject, without wildcards: a NATS micro
	// service answers "$SRV.PING" (or "$SRV.PING.<name>") out of the box.
	Subject string
	// Data is the request's payload (default empty).
	Data []byte
}

// NATS probes a service that speaks NATS: the latency is the time from
// the request to the first reply. A reply that carries a NATS micro
// service error (the Nats-Service-Error-Code header) is a failure.
type NATS struct {
	cfg NATSConfig

	mu sync.Mutex
	nc *nats.Conn // owned when cfg.URL is set
}

var _ Prober = (*NATS)(nil)

// NewNATS checks cfg and returns the probe. It connects nowhere yet.
func NewNATS(cfg NATSConfig) (*NATS, error) {
	switch {
	case (cfg.Conn == nil) == (cfg.URL == ""):
		return nil, errors.New("nats probe: give a connection or a URL, one of them")
	case cfg.Subject == "" || strings.ContainsAny(cfg.Subject, " \t\r\n*>") ||
		strings.HasPrefix(cfg.Subject, ".") || strings.HasSuffix(cfg.Subject, ".") || strings.Contains(cfg.Subject, ".."):
		return nil, fmt.Errorf("nats probe: subject %q is not a subject to send a request to (dot-separated tokens, no spaces or wildcards)", cfg.Subject)
	}
	return &NATS{cfg: cfg, nc: cfg.Conn}, nil
}

// Probe sends one request and waits for the reply.
func (p *NATS) Probe(ctx context.Context) (time.Duration, error) {
	nc, err := p.conn(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	msg, err := nc.RequestWithContext(ctx, p.cfg.Subject, p.cfg.Data)
	took := time.Since(start)
	if err != nil {
		return 0, fail("nats request", err)
	}
	if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
		desc := msg.Header.Get("Nats-Service-Error")
		const max = 200
		if len(desc) > max {
			desc = desc[:max] + "…"
		}
		return 0, &Error{Reason: ReasonServiceError, Msg: fmt.Sprintf("nats request: the service answered with error %s: %q", code, desc)}
	}
	return took, nil
}

// conn returns the connection to use, connecting to URL first if needed.
func (p *NATS) conn(ctx context.Context) (*nats.Conn, error) {
	if p.cfg.Conn != nil {
		return p.cfg.Conn, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nc != nil && !p.nc.IsClosed() {
		return p.nc, nil
	}
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, &Error{Reason: ReasonTimeout, Msg: "nats connect: no time left before the deadline", Err: context.DeadlineExceeded}
	}
	opts := []nats.Option{nats.Name("jetmetrics-probe"), nats.Timeout(timeout), nats.MaxReconnects(-1)}
	if p.cfg.TLS != nil {
		opts = append(opts, nats.Secure(p.cfg.TLS.Clone()))
	}
	nc, err := nats.Connect(p.cfg.URL, opts...)
	if err != nil {
		return nil, fail("nats connect", err)
	}
	p.nc = nc
	return nc, nil
}

// Close closes the connection the probe made, if any; a borrowed Conn is
// left open.
func (p *NATS) Close() {
	if p.cfg.Conn != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nc != nil {
		p.nc.Close()
		p.nc = nil
	}
}
