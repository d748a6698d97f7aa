package redisserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

const (
	// readyTimeout bounds how long a start waits for the child to answer
	// when ctx has no earlier deadline.
	readyTimeout = 10 * time.Second
	// probeInterval paces readiness probes.
	probeInterval = 10 * time.Millisecond
	// probeTimeout bounds one probe. redis-server answers in well under a
	// millisecond, while a stranger on our port may never answer, and an
	// exiting child is only noticed between probes.
	probeTimeout = 250 * time.Millisecond
	// portAttempts is how often Start picks another free port when the one
	// it picked is taken before redis-server binds it.
	portAttempts = 3
)

// Server is a managed redis-server child process.
type Server struct {
	cfg Config // resolved; Port is fixed after Start
	log zerolog.Logger

	// ops serialises everything that starts or stops the child.
	ops sync.Mutex

	// socketDir is whether a TempSocket's directory was made, or taken
	// over, by this server and not removed since; s.ops is held.
	socketDir bool

	mu      sync.Mutex
	proc    *process      // current child, perhaps exited
	stopped bool          // proc was stopped by Stop, not by a crash or Kill
	started chan struct{} // closed, and replaced, when a new child runs
}

// Start runs redis-server as described by cfg and waits until it answers
// PING, at most ten seconds or until ctx ends. The child keeps running
// after ctx ends; Stop ends it.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, fmt.Errorf("start redis: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, started: make(chan struct{})}
	if cfg.Socket != "" || cfg.Port != 0 {
		if err := s.start(ctx); err != nil {
			s.removeSocketDir()
			return nil, fmt.Errorf("start redis: %w", err)
		}
		return s, nil
	}
	// A free port can be taken between picking and binding it; pick again.
	for attempt := 1; ; attempt++ {
		if s.cfg.Port, err = freePort(); err != nil {
			return nil, fmt.Errorf("start redis: %w", err)
		}
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errAddrInUse) || attempt == portAttempts {
			return nil, fmt.Errorf("start redis: %w", err)
		}
		s.log.Debug().Err(err).Int("port", s.cfg.Port).Msg("port taken, picking another")
	}
}

// errAddrInUse marks a start that failed because the port was taken.
var errAddrInUse = errors.New("address in use")

// start spawns a child and waits until it is ready; s.ops is held or s is
// not yet shared. On failure no child is left running.
func (s *Server) start(ctx context.Context) error {
	if err := s.cfg.makeSocketDir(); err != nil {
		return err
	}
	s.socketDir = s.cfg.TempSocket
	p, err := spawn(s.cfg, s.cfg.Port, s.log)
	if err != nil {
		return err
	}
	if err := s.waitReady(ctx, p); err != nil {
		_ = p.kill()
		<-p.exited
		if p.addrInUse() {
			return fmt.Errorf("%w: %w", errAddrInUse, err)
		}
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.stopped = false
	close(s.started)
	s.started = make(chan struct{})
	s.mu.Unlock()
	s.log.Debug().Int("pid", p.pid()).Str("url", s.URL()).Msg("redis-server ready")
	return nil
}

// waitReady probes p until it answers as itself, it exits, or the start
// deadline passes.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	network, addr := s.netAddr()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		pid, err := probe(network, addr, s.cfg.Password, probeTimeout)
		if err == nil && pid == p.pid() {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%s is served by pid %d, not the child %d", addr, pid, p.pid())
		}
		select {
		case <-p.exited:
			return p.exitError()
		case <-ctx.Done():
			return fmt.Errorf("wait for redis-server on %s: %w (last probe: %w)", addr, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// netAddr returns the network and address clients dial.
func (s *Server) netAddr() (network, addr string) {
	if s.cfg.Socket != "" {
		return "unix", s.cfg.Socket
	}
	return "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.Port))
}

// URL returns the server's address for redis.ParseURL and --redis.url:
// "unix:///path/to.sock" or "redis://127.0.0.1:PORT". It stays the same
// across restarts.
func (s *Server) URL() string {
	network, addr := s.netAddr()
	if network == "unix" {
		return "unix://" + addr
	}
	return "redis://" + addr
}

// Options returns client options for redis.NewClient, with the password,
// a new value on each call.
func (s *Server) Options() *redis.Options {
	network, addr := s.netAddr()
	return &redis.Options{Network: network, Addr: addr, Password: s.cfg.Password}
}

// PID returns the process id of the current child, which may have exited.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc.pid()
}

// Exited returns a channel closed when the current child exits. A child
// started later has a new channel.
func (s *Server) Exited() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc.exited
}

// current returns the current child.
func (s *Server) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Stop shuts the child down gracefully with SIGTERM, which makes
// redis-server fsync the AOF, and waits for it to exit. If ctx ends first
// the child is killed and Stop returns ctx's error wrapped. Stopping a
// stopped server returns nil; Supervise does not restart a stopped child.
func (s *Server) Stop(ctx context.Context) error {
	s.ops.Lock()
	defer s.ops.Unlock()
	if err := s.stop(ctx); err != nil {
		return fmt.Errorf("stop redis: %w", err)
	}
	return nil
}

// stop is Stop with s.ops held. Once the child is gone, a TempSocket's
// directory goes too.
func (s *Server) stop(ctx context.Context) error {
	s.mu.Lock()
	p := s.proc
	s.stopped = true
	s.mu.Unlock()
	if p.done() {
		s.removeSocketDir()
		return nil
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.exited:
		s.removeSocketDir()
		return nil
	case <-ctx.Done():
		err := p.kill()
		<-p.exited
		s.removeSocketDir()
		return errors.Join(fmt.Errorf("graceful shutdown of pid %d: %w", p.pid(), ctx.Err()), err)
	}
}

// removeSocketDir removes a TempSocket's directory, with a socket file a
// killed child left behind, unless it is not this server's to remove.
func (s *Server) removeSocketDir() {
	if !s.socketDir {
		return
	}
	s.socketDir = false
	dir := s.cfg.socketDir()
	if err := os.RemoveAll(dir); err != nil {
		s.log.Warn().Err(err).Str("dir", dir).Msg("remove redis-server socket directory")
	}
}

// Kill kills the child with SIGKILL and waits for it to exit, as a crash
// would: writes redis-server has not yet handed to the kernel are lost.
// Supervise treats it as a crash and restarts the child.
func (s *Server) Kill() error {
	s.ops.Lock()
	defer s.ops.Unlock()
	p := s.current()
	if err := p.kill(); err != nil {
		return fmt.Errorf("kill redis pid %d: %w", p.pid(), err)
	}
	<-p.exited
	return nil
}

// Restart starts the child again on the same directory and address, so
// URL is unchanged; a running child is stopped gracefully first. The AOF
// is replayed before Restart returns. If the new child does not come up,
// for instance because another process took the port, the server is left
// stopped and Restart can be tried again.
func (s *Server) Restart(ctx context.Context) error {
	s.ops.Lock()
	defer s.ops.Unlock()
	if err := s.stop(ctx); err != nil {
		return fmt.Errorf("restart redis: %w", err)
	}
	if err := s.start(ctx); err != nil {
		return fmt.Errorf("restart redis: %w", err)
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
