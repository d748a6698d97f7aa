package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// A key that is also a flag takes the flag's value when given, else its
// variable's, else the file's, else the flag's default.
func TestFileLimitsPrecedence(t *testing.T) {
	path := configDir(t, "limits:\n  max-series: 500\n")
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want int
	}{
		{"default", nil, "", 1_000_000},
		{"file only", []string{"--config.file=" + path}, "", 500},
		{"flag over file", []string{"--config.file=" + path, "--limits.max-series=70"}, "", 70},
		{"env over file", []string{"--config.file=" + path}, "80", 80},
		{"flag over env", []string{"--config.file=" + path, "--limits.max-series=70"}, "80", 70},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("JETMETRICS_LIMITS_MAX_SERIES", tc.env)
			}
			cfg, _, err := nodeConfig(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MaxSeries != tc.want {
				t.Errorf("MaxSeries = %d, want %d", cfg.MaxSeries, tc.want)
			}
			// A reload decides it again the same way.
			if cfg.Reload != nil {
				t.Fatal("nodeConfig sets no Reload; runNode does")
			}
		})
	}
}

// SIGHUP rereads --config.file: a bad one is refused, and the metric
// says so.
func TestSIGHUPReloads(t *testing.T) {
	path := configDir(t, "limits:\n  max-series: 500\n")
	web := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		done <- run(ctx, []string{"node", "--data.dir=" + filepath.Join(t.TempDir(), "data"), "--web.listen-address=" + web,
			"--nats.listen=", "--config.file=" + path}, io.Discard, &out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node: %v", err)
		}
	})
	reloadOK := func() (float64, error) {
		fams, err := harness.Scrape("http://" + web + "/metrics")
		if err != nil {
			return 0, err
		}
		v, ok := harness.Samples(fams)["jetmetrics_config_last_reload_successful"]
		if !ok {
			return 0, fmt.Errorf("no jetmetrics_config_last_reload_successful")
		}
		return v, nil
	}
	harness.Eventually(t, 60*time.Second, func() error {
		_, err := reloadOK()
		return err
	})
	if err := os.WriteFile(path, []byte("limits:\n  max-series: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 20*time.Second, func() error {
		v, err := reloadOK()
		if err == nil && v != 0 {
			err = fmt.Errorf("jetmetrics_config_last_reload_successful = %v, want 0", v)
		}
		return err
	})
}
