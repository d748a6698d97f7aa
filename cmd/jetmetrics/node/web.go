package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/rs/zerolog"
	"golang.org/x/net/netutil"
)

// Defaults of the HTTP server's bounds.
const (
	DefaultWebMaxConnections     = 256
	DefaultWebMaxMetricsRequests = 8
	DefaultWebMaxClusterRequests = 2
	DefaultWebReadTimeout        = 30 * time.Second
	DefaultWebWriteTimeout       = 60 * time.Second
	DefaultWebIdleTimeout        = 60 * time.Second
	DefaultReadyStallAfter       = 30 * time.Second
	// webMaxHeaderBytes bounds a request's header: a scrape's is well
	// under 1 KiB, basic auth included.
	webMaxHeaderBytes = 64 << 10
	// webReadHeaderTimeout bounds the wait for a new connection's first
	// request header, so a connection that sends nothing is closed soon.
	webReadHeaderTimeout = 10 * time.Second
)

func (c *Config) webDefaults() {
	if c.WebMaxConnections == 0 {
		c.WebMaxConnections = DefaultWebMaxConnections
	}
	if c.WebMaxMetricsRequests == 0 {
		c.WebMaxMetricsRequests = DefaultWebMaxMetricsRequests
	}
	if c.WebMaxClusterRequests == 0 {
		c.WebMaxClusterRequests = DefaultWebMaxClusterRequests
	}
	if c.WebReadTimeout == 0 {
		c.WebReadTimeout = DefaultWebReadTimeout
	}
	if c.WebWriteTimeout == 0 {
		c.WebWriteTimeout = DefaultWebWriteTimeout
	}
	if c.WebIdleTimeout == 0 {
		c.WebIdleTimeout = DefaultWebIdleTimeout
	}
	if c.ReadyStallAfter == 0 {
		c.ReadyStallAfter = DefaultReadyStallAfter
	}
}

// checkWebLimits refuses negative bounds and a web configuration file
// exporter-toolkit would refuse at start (unreadable, unknown keys, a
// password that is not a bcrypt hash, certificates that do not load).
func (c Config) checkWebLimits() error {
	for _, l := range []struct {
		flag string
		v    int
	}{
		{"web.max-connections", c.WebMaxConnections},
		{"web.max-requests.metrics", c.WebMaxMetricsRequests},
		{"web.max-requests.cluster", c.WebMaxClusterRequests},
	} {
		if l.v < 0 {
			return invalid(l.flag, strconv.Itoa(l.v), "want at least 1")
		}
	}
	if c.WebConfigFile != "" {
		if err := web.Validate(c.WebConfigFile); err != nil {
			return invalid("web.config.file", c.WebConfigFile, err.Error())
		}
	}
	return nil
}

// webServer is the node's HTTP server.
type webServer struct {
	srv *http.Server
	ln  net.Listener
	tls bool
}

func (n *Node) listenWeb() (*webServer, error) {
	ln, err := net.Listen("tcp", n.cfg.WebListen)
	if err != nil {
		return nil, fmt.Errorf("--web.listen-address %q: %w", n.cfg.WebListen, err)
	}
	addr := ln.Addr().String()
	n.webAddr.Store(&addr)
	httpLog := n.log.With().Str("component", "http").Logger()
	w := &webServer{
		// Connections beyond the limit wait in the kernel's accept queue
		// and hold no file descriptor of this process, which it shares
		// with the embedded NATS server and the Redis clients.
		ln: netutil.LimitListener(ln, n.cfg.WebMaxConnections),
		srv: &http.Server{
			Handler:           n.routes(),
			ReadHeaderTimeout: webReadHeaderTimeout,
			ReadTimeout:       n.cfg.WebReadTimeout,
			WriteTimeout:      n.cfg.WebWriteTimeout,
			IdleTimeout:       n.cfg.WebIdleTimeout,
			MaxHeaderBytes:    webMaxHeaderBytes,
			// Accept errors (out of file descriptors), handler panics and
			// the like go to the node's log, not to the log package's.
			ErrorLog: stdLogger(httpLog, zerolog.WarnLevel),
		},
	}
	if n.cfg.WebConfigFile != "" {
		if err := w.secure(n.cfg.WebConfigFile, n.cfg.WebHealthyWithoutAuth, ln.Addr(), httpLog); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return w, nil
}

// secure applies an exporter-toolkit web configuration file to the server:
// its basic auth, headers and rate limit around the handler, and its TLS
// configuration, both reread on every request or handshake as in every
// Prometheus exporter. The toolkit applies them only inside web.Serve,
// which then serves on the listener it is given; it is run once on a
// listener that is already closed to take what it set, so that the node
// serves on its own bounded listener and can leave /-/healthy open.
func (w *webServer) secure(path string, healthyOpen bool, addr net.Addr, log zerolog.Logger) error {
	open := w.srv.Handler
	probe := &http.Server{Handler: open}
	flags := &web.FlagConfig{WebConfigFile: &path, WebListenAddresses: &[]string{addr.String()}}
	err := web.Serve(closedListener{addr}, probe, flags, slog.New(zerolog.NewSlogHandler(log)))
	if !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("--web.config.file %q: %w", path, err)
	}
	if probe.Handler == open {
		return fmt.Errorf("--web.config.file %q: exporter-toolkit left the handler unauthenticated", path)
	}
	w.srv.Handler = probe.Handler
	// The toolkit serves TLS only with a GetConfigForClient of its own
	// (rereading the file per handshake); without TLS it falls back to
	// plain Serve, which sets up HTTP/2 and with it a TLSConfig too.
	if probe.TLSConfig != nil && probe.TLSConfig.GetConfigForClient != nil {
		w.tls = true
		// Its GetConfigForClient offers h2 in ALPN only when the file
		// enables HTTP/2; the server sets up its own, with its own limits.
		w.srv.TLSConfig = probe.TLSConfig
	}
	if healthyOpen {
		mux := http.NewServeMux()
		mux.Handle("/", probe.Handler)
		mux.Handle("/-/healthy", open)
		w.srv.Handler = mux
	}
	return nil
}

// closedListener is a listener that was closed before anyone accepted.
type closedListener struct{ addr net.Addr }

func (closedListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (closedListener) Close() error              { return nil }
func (l closedListener) Addr() net.Addr          { return l.addr }

// Run serves until ctx ends, then shuts down gracefully.
func (w *webServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if w.tls {
			errc <- w.srv.ServeTLS(w.ln, "", "")
			return
		}
		errc <- w.srv.Serve(w.ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := w.srv.Shutdown(sctx); err != nil {
		w.srv.Close()
	}
	<-errc
	return nil
}

// limiter bounds the requests of one class served at once; the others are
// answered 503 with Retry-After at once, costing no memory beyond their
// connection.
type limiter struct {
	class, flag string
	slots       chan struct{}
	rejected    prometheus.Counter
}

func newLimiter(class, flag string, size int, rejected *prometheus.CounterVec) *limiter {
	return &limiter{class: class, flag: flag, slots: make(chan struct{}, size), rejected: rejected.WithLabelValues(class)}
}

func (l *limiter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case l.slots <- struct{}{}:
			defer func() { <-l.slots }()
			h.ServeHTTP(w, r)
		default:
			l.rejected.Inc()
			w.Header().Set("Retry-After", "1")
			http.Error(w, fmt.Sprintf("%d %s requests in progress, the most served at once (--%s): retry later", cap(l.slots), l.class, l.flag), http.StatusServiceUnavailable)
		}
	})
}

// progress tracks since when the aggregator's mark has not moved, as seen
// by the readiness checks: the mark only grows within a session, so a mark
// seen at two moments stood still in between.
type progress struct {
	mu    sync.Mutex
	mark  uint64
	since time.Time
}

// still returns how long mark has been the mark last seen.
func (p *progress) still(mark uint64, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.since.IsZero() || mark != p.mark {
		p.mark, p.since = mark, now
	}
	return now.Sub(p.since)
}
