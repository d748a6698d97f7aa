package harness

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
)

const (
	// redisStartTimeout bounds starting a redis-server child.
	redisStartTimeout = 10 * time.Second
	// redisStopTimeout bounds the graceful stop at cleanup.
	redisStopTimeout = 10 * time.Second
	// maxSocketPath keeps socket paths clear of the sun_path limit.
	maxSocketPath = 100
)

// Redis starts a redis-server child listening on a unix socket, with AOF
// fsynced every second in a temporary directory, and stops it at cleanup.
// It fails the test, never skips it, when redis-server is not installed.
func Redis(t testing.TB) *redisserver.Server {
	t.Helper()
	return startRedis(t, redisserver.Config{Dir: t.TempDir(), Socket: socketPath(t)})
}

// RedisTCP is Redis on a free loopback TCP port instead of a socket.
func RedisTCP(t testing.TB) *redisserver.Server {
	t.Helper()
	return startRedis(t, redisserver.Config{Dir: t.TempDir()})
}

// startRedis starts cfg with the test's logger and stops it at cleanup.
func startRedis(t testing.TB, cfg redisserver.Config) *redisserver.Server {
	t.Helper()
	cfg.Logger = Logger(t)
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	s, err := redisserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), redisStopTimeout)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

// socketPath returns a socket path in a fresh directory, under t.TempDir
// when that is short enough and under the system temporary directory
// otherwise, since long test names make t.TempDir paths overflow sun_path.
func socketPath(t testing.TB) string {
	t.Helper()
	if p := filepath.Join(t.TempDir(), "redis.sock"); len(p) <= maxSocketPath {
		return p
	}
	dir, err := os.MkdirTemp("", "jm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "redis.sock")
}

// RedisClient returns a client of s, closed at cleanup.
func RedisClient(t testing.TB, s *redisserver.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(s.Options())
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}
