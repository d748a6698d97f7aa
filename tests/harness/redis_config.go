package harness

import (
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
)

// RedisWith starts a redis-server child described by cfg and stops it at
// cleanup, for tests that choose the AOF policy or need the data directory,
// to damage the AOF the way a power cut would. Empty fields get Redis's
// test defaults: a temporary Dir, a unix socket (unless Port is set) and
// the test's logger.
func RedisWith(t testing.TB, cfg redisserver.Config) *redisserver.Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Socket == "" && cfg.Port == 0 {
		cfg.Socket = socketPath(t)
	}
	return startRedis(t, cfg)
}
