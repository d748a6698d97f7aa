package natsserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// tlsTimeout bounds a TLS handshake on the client and route listeners.
const tlsTimeout = 2 * time.Second

// pollInterval paces the readiness checks in Start and WaitJetStreamReady.
const pollInterval = 20 * time.Millisecond

// Server is a running embedded nats-server.
type Server struct {
	ns  *server.Server
	cfg Config // effective: defaults applied, name and ports resolved
}

// Start starts a nats-server with JetStream described by cfg and waits,
// at most ten seconds, until its listeners accept connections. In a
// cluster it does not wait for a JetStream meta leader, which needs the
// other nodes; use WaitJetStreamReady for that.
func Start(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	opts, err := serverOptions(cfg)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	log := cfg.Logger.With().Str("node", cfg.Name).Logger()
	bridge := &logBridge{log: log}
	ns.SetLoggerV2(bridge, levelEnabled(log, zerolog.DebugLevel), levelEnabled(log, zerolog.TraceLevel), false)
	ns.Start()

	if err := waitListening(ns, bridge, cfg.listenAddrs()); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("start nats %s: %w", cfg.Name, err)
	}
	s := &Server{ns: ns, cfg: cfg}
	s.resolvePorts()
	return s, nil
}

// serverOptions translates cfg into nats-server options.
func serverOptions(cfg Config) (*server.Options, error) {
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		Port:       cfg.Port,
		DontListen: cfg.DontListen,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: cfg.SyncAlways,
		MaxPayload: cfg.MaxPayload,
		Users:      cfg.Users,
		Nkeys:      cfg.Nkeys,
	}
	if cfg.TLS != nil {
		opts.TLSConfig = cfg.TLS
		opts.TLSVerify = cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert
		opts.TLSTimeout = tlsTimeout.Seconds()
	}
	if cfg.ClusterListen == "" {
		return opts, nil
	}
	host, port, err := cfg.clusterHostPort()
	if err != nil {
		return nil, err
	}
	if port == 0 {
		// Port 0 would mean "no cluster" to the server.
		port = server.RANDOM_PORT
	}
	opts.Cluster = server.ClusterOpts{
		Name: cfg.ClusterName, Host: host, Port: port,
		Username: cfg.ClusterUser, Password: cfg.ClusterPassword,
	}
	if cfg.ClusterTLS != nil {
		t := cfg.ClusterTLS.Clone()
		// The same CAs verify the peers this server dials.
		if t.RootCAs == nil {
			t.RootCAs = t.ClientCAs
		}
		opts.Cluster.TLSConfig = t
		opts.Cluster.TLSTimeout = tlsTimeout.Seconds()
	}
	for _, r := range cfg.Routes {
		u, err := url.Parse(r)
		if err != nil {
			// url's error quotes the URL, which may hold a password.
			return nil, errors.New("a route is not a URL")
		}
		if u.User == nil && cfg.ClusterUser != "" {
			u.User = url.UserPassword(cfg.ClusterUser, cfg.ClusterPassword)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return opts, nil
}

// waitListening waits until ns accepts client and route connections, or
// until the server reports that it cannot. addrs describes the listeners
// for the timeout error.
func waitListening(ns *server.Server, bridge *logBridge, addrs string) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		if err := bridge.fatalErr(); err != nil {
			return err
		}
		if ns.ReadyForConnections(pollInterval) {
			// A fatal error can race with the listener that did come up.
			return bridge.fatalErr()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready for connections after %s (%s)", readyTimeout, addrs)
		}
	}
}

// resolvePorts records the ports the server actually bound, so that Config
// can restart the same node on the same addresses.
func (s *Server) resolvePorts() {
	if !s.cfg.DontListen {
		if a, ok := s.ns.Addr().(*net.TCPAddr); ok {
			s.cfg.Port = a.Port
		}
	}
	if a := s.ns.ClusterAddr(); a != nil {
		host, _, _ := s.cfg.clusterHostPort()
		s.cfg.ClusterListen = net.JoinHostPort(host, strconv.Itoa(a.Port))
	}
}

// Config returns the effective configuration: defaults applied and the
// name and ports that were picked at random filled in. Start(s.Config())
// after Shutdown brings the same node back on the same addresses.
func (s *Server) Config() Config {
	c := s.cfg
	c.Routes = append([]string(nil), s.cfg.Routes...)
	return c
}

// ClientURL returns the URL TCP clients connect to, such as
// "nats://127.0.0.1:4222", or "" when the server does not listen.
func (s *Server) ClientURL() string {
	if s.cfg.DontListen {
		return ""
	}
	return "nats://" + net.JoinHostPort(dialHost(s.cfg.Host), strconv.Itoa(s.cfg.Port))
}

// ClusterURL returns the route URL other nodes list in Config.Routes, or ""
// when the server is not clustered.
func (s *Server) ClusterURL() string {
	if s.cfg.ClusterListen == "" {
		return ""
	}
	host, port, _ := s.cfg.clusterHostPort()
	return "nats://" + net.JoinHostPort(dialHost(host), strconv.Itoa(port))
}

// dialHost turns a wildcard listen host into one a client can dial.
func dialHost(host string) string {
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return host
}

// Connect opens an in-process client connection, which works with
// DontListen too. opts are applied after the in-process option.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{nats.InProcessServer(s.ns), nats.Name(s.cfg.Name + "-inprocess")}, opts...)
	nc, err := nats.Connect("", all...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s in-process: %w", s.cfg.Name, err)
	}
	return nc, nil
}

// WaitJetStreamReady waits until JetStream is enabled and, in a cluster,
// this node knows the meta leader and has caught up with it, so JetStream
// API requests sent through it are answered. It returns ctx's error
// wrapped if ctx ends first.
func (s *Server) WaitJetStreamReady(ctx context.Context) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := s.jetStreamReady()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait jetstream on %s: %w: %w", s.cfg.Name, err, ctx.Err())
		case <-t.C:
		}
	}
}

// jetStreamReady returns why JetStream is not ready yet, or nil.
func (s *Server) jetStreamReady() error {
	if !s.ns.JetStreamEnabled() {
		return errors.New("jetstream not enabled")
	}
	if !s.ns.JetStreamIsClustered() {
		return nil
	}
	// JetStreamIsCurrent alone is not enough: a restarted node that has
	// applied its own log looks current before it has heard from a leader.
	info, err := s.ns.Jsz(&server.JSzOptions{})
	if err != nil {
		return fmt.Errorf("jetstream info: %w", err)
	}
	if info.Meta == nil || info.Meta.Leader == "" {
		return errors.New("no jetstream meta leader")
	}
	if !s.ns.JetStreamIsCurrent() {
		return fmt.Errorf("not current with jetstream meta leader %s", info.Meta.Leader)
	}
	return nil
}

// Shutdown stops the server and waits until it has stopped. It is safe to
// call more than once.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Server returns the underlying nats-server, for tests that need its
// cluster or JetStream state.
func (s *Server) Server() *server.Server {
	return s.ns
}
