package redisserver_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

const testTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitClosed fails the test unless ch is closed within testTimeout.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testTimeout):
		t.Fatalf("%s: not closed after %s", what, testTimeout)
	}
}

func TestStopRestartKeepsData(t *testing.T) {
	tests := []struct {
		name      string
		start     func(testing.TB) *redisserver.Server
		urlPrefix string
	}{
		{"unix socket", harness.Redis, "unix:///"},
		{"tcp", harness.RedisTCP, "redis://127.0.0.1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			s := tt.start(t)
			url := s.URL()
			if !strings.HasPrefix(url, tt.urlPrefix) {
				t.Fatalf("url %q, want prefix %q", url, tt.urlPrefix)
			}
			parsed, err := redis.ParseURL(url)
			if err != nil {
				t.Fatal(err)
			}
			if opts := s.Options(); parsed.Network != opts.Network || parsed.Addr != opts.Addr {
				t.Fatalf("url parses to %s %s, options say %s %s", parsed.Network, parsed.Addr, opts.Network, opts.Addr)
			}
			c := harness.RedisClient(t, s)
			if err := c.Set(ctx, "series", "up{job=\"a\"}", 0).Err(); err != nil {
				t.Fatal(err)
			}

			exited := s.Exited()
			if err := s.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, exited, "exited after stop")
			if conn, err := net.Dial(s.Options().Network, s.Options().Addr); err == nil {
				conn.Close()
				t.Fatal("still listening after stop")
			}
			if err := s.Stop(ctx); err != nil {
				t.Fatalf("second stop: %v", err)
			}

			if err := s.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if s.URL() != url {
				t.Fatalf("url after restart %q, want %q", s.URL(), url)
			}
			if got, err := c.Get(ctx, "series").Result(); err != nil || got != "up{job=\"a\"}" {
				t.Fatalf("after restart got %q, %v", got, err)
			}

			// Restart of a running server stops it gracefully first.
			pid := s.PID()
			if err := s.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if s.PID() == pid {
				t.Fatal("restart of a running server kept the old process")
			}
			if got, err := c.Get(ctx, "series").Result(); err != nil || got != "up{job=\"a\"}" {
				t.Fatalf("after second restart got %q, %v", got, err)
			}
		})
	}
}

func TestKillThenRestart(t *testing.T) {
	ctx := testContext(t)
	// With appendfsync always, a write is on disk before it is acknowledged,
	// so it survives a kill whatever the timing.
	s, err := redisserver.Start(ctx, redisserver.Config{
		Dir:         t.TempDir(),
		AppendFsync: "always",
		Logger:      harness.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	c := harness.RedisClient(t, s)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	exited := s.Exited()
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, exited, "exited after kill")
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after kill and restart got %q, %v", got, err)
	}
}

func TestStartFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	tests := []struct {
		name string
		cfg  redisserver.Config
		want string
	}{
		{"no dir", redisserver.Config{}, "dir is required"},
		{"bad appendfsync", redisserver.Config{AppendFsync: "sometimes"}, "appendfsync"},
		{"socket path too long", redisserver.Config{Socket: "/tmp/" + strings.Repeat("s", 120)}, "longer than"},
		{"port in use", redisserver.Config{Port: busy.Addr().(*net.TCPAddr).Port}, "Address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name != "no dir" {
				tt.cfg.Dir = t.TempDir()
			}
			tt.cfg.Logger = harness.Logger(t)
			s, err := redisserver.Start(testContext(t), tt.cfg)
			if err == nil {
				_ = s.Stop(context.Background())
				t.Fatal("Start succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestMissingBinary(t *testing.T) {
	_, err := redisserver.Start(testContext(t), redisserver.Config{
		Dir:    filepath.Join(t.TempDir(), "data"),
		Binary: "/nonexistent/redis-server",
	})
	if !errors.Is(err, redisserver.ErrNotInstalled) {
		t.Fatalf("error %v, want ErrNotInstalled", err)
	}
	if !strings.Contains(err.Error(), "sudo apt-get install redis-server") {
		t.Fatalf("error %q does not say how to install", err)
	}
}

func TestSuperviseRestartsKilledChild(t *testing.T) {
	ctx := testContext(t)
	s := harness.Redis(t)
	c := harness.RedisClient(t, s)

	superviseCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Supervise(superviseCtx) }()

	// Killed from outside, as the OOM killer would.
	pid, exited := s.PID(), s.Exited()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, exited, "exited after external kill")
	harness.Eventually(t, testTimeout, func() error {
		if s.PID() == pid {
			return errors.New("not restarted yet")
		}
		return c.Ping(ctx).Err()
	})

	// Kill counts as a crash too.
	pid = s.PID()
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, testTimeout, func() error {
		if s.PID() == pid {
			return errors.New("not restarted yet")
		}
		return c.Ping(ctx).Err()
	})

	// A child stopped on purpose stays stopped; Supervise returns nil when
	// its context ends, and no child is restarted meanwhile.
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	pid = s.PID()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("supervise returned %v, want nil", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("supervise did not return after its context ended")
	}
	if s.PID() != pid {
		t.Fatal("supervise restarted a stopped child")
	}
}

func TestSuperviseStopsChildWhenDone(t *testing.T) {
	s := harness.RedisTCP(t)
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() { done <- s.Supervise(ctx) }()
	exited := s.Exited()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("supervise returned %v, want nil", err)
	}
	waitClosed(t, exited, "exited after supervise returned")
}
