package harness_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetmetrics/jetmetrics/tests/harness"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRedisSocketPathStaysShort(t *testing.T) {
	// t.TempDir paths start with GOTMPDIR and the test name, up to 64
	// bytes of it; a deep GOTMPDIR, as on macOS, overflows sun_path.
	deep := filepath.Join(t.TempDir(), strings.Repeat("d", 60))
	if err := os.MkdirAll(deep, 0o750); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOTMPDIR", deep)
	t.Run(strings.Repeat("a_rather_long_subtest_name_", 4), func(t *testing.T) {
		s := harness.Redis(t)
		path, ok := strings.CutPrefix(s.URL(), "unix://")
		if !ok || len(path) > 100 {
			t.Fatalf("url %q, want a unix socket path of at most 100 bytes", s.URL())
		}
		if err := harness.RedisClient(t, s).Ping(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestEventuallyPollsUntilNil(t *testing.T) {
	calls := 0
	harness.Eventually(t, 5*time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}
