package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// redisSecret is a Redis password no output of the command may hold.
const redisSecret = "Sekr1t-7d4e9a"

// aclSocket starts a redis-server whose default user is off and whose
// user "jm" has password pw, and returns its socket path.
func aclSocket(t *testing.T, pw string) string {
	t.Helper()
	rs := harness.Redis(t)
	c := harness.RedisClient(t, rs)
	ctx := context.Background()
	for _, cmd := range [][]any{
		{"ACL", "SETUSER", "jm", "on", ">" + pw, "~*", "&*", "+@all"},
		{"ACL", "SETUSER", "default", "off"},
	} {
		if err := c.Do(ctx, cmd...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return strings.TrimPrefix(rs.URL(), "unix://")
}

// writeSecret writes content to a file of mode 0600 and returns its path.
func writeSecret(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A node given its Redis password in the URL, in a file or in
// JETMETRICS_REDIS_PASSWORD runs, and nothing it writes or serves holds
// the password: not a log line at debug level, not /metrics, the
// cluster view, the API, or the help. A wrong password fails the start at once, without echoing it.
func TestRedisPasswordNeverShown(t *testing.T) {
	sock := aclSocket(t, redisSecret)
	for _, tc := range []struct {
		name string
		// args and env for the password pw.
		args func(t *testing.T, pw string) []string
		env  bool
	}{
		{"url", func(_ *testing.T, pw string) []string { return []string{"--redis.url=unix://jm:" + pw + "@" + sock} }, false},
		{"file", func(t *testing.T, pw string) []string {
			return []string{"--redis.url=unix://jm@" + sock, "--redis.password-file=" + writeSecret(t, pw+"\n")}
		}, false},
		{"env", func(_ *testing.T, _ string) []string { return []string{"--redis.url=unix://jm@" + sock} }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := []string{"node", "--node.name=secrets", "--data.dir=" + t.TempDir(), "--web.listen-address=127.0.0.1:0",
				"--nats.listen=", "--log.format=json", "--log.level=debug", "--redis.connect-timeout=20s", "--snapshot.interval=200ms"}
			var shown bytes.Buffer

			// A wrong password is refused at once.
			const wrong = "Wr0ng-" + redisSecret
			if tc.env {
				t.Setenv(redisPasswordEnv, wrong)
			}
			var out lines
			start := time.Now()
			err := run(context.Background(), append(base, tc.args(t, wrong)...), &shown, &out)
			if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
				t.Fatalf("start with a wrong password: %v, want WRONGPASS", err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("refused after %s, want at once", took)
			}
			shown.WriteString(err.Error() + "\n" + strings.Join(out.snapshot(), "\n"))

			if tc.env {
				t.Setenv(redisPasswordEnv, redisSecret)
			}
			out = lines{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- run(ctx, append(base, tc.args(t, redisSecret)...), &shown, &out) }()
			var web string
			harness.Eventually(t, 60*time.Second, func() error {
				select {
				case err := <-done:
					t.Fatalf("node stopped: %v\n%s", err, strings.Join(out.snapshot(), "\n"))
				default:
				}
				m, ok := out.find("node running")
				if !ok {
					return errors.New("no \"node running\" line yet")
				}
				web = "http://" + m["web"].(string)
				return nil
			})
			harness.Eventually(t, 60*time.Second, func() error {
				resp, err := http.Get(web + "/-/ready")
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return errors.New(resp.Status)
				}
				return nil
			})
			for _, path := range []string{"/", "/metrics", "/metrics/cluster", "/metrics/cluster?format=json", "/api/v1/nodes", "/-/ready", "/-/healthy"} {
				resp, err := http.Get(web + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if path == "/metrics" && !bytes.Contains(body, []byte("go_goroutines")) {
					t.Errorf("/metrics holds no go_goroutines: is it the process's?")
				}
				shown.Write(body)
			}
			if err := run(context.Background(), []string{"node", "-h"}, &shown, &shown); err != nil {
				t.Fatal(err)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			all := strings.Join(out.snapshot(), "\n")
			if !strings.Contains(all, "node running") || !strings.Contains(all, "node stopping") {
				t.Fatalf("the log is not the whole run:\n%s", all)
			}
			shown.WriteString(all)
			if i := strings.Index(shown.String(), redisSecret); i >= 0 {
				s := shown.String()
				t.Fatalf("the password is shown: …%s…", s[max(0, i-200):min(len(s), i+50)])
			}
			t.Logf("%d bytes of logs, errors and answers scanned", shown.Len())
		})
	}
}

// Every misuse of the Redis password and TLS settings is refused by
// --check-config and by a start, in one line naming the flag, never
// echoing the password.
func TestRedisSecretSettingsRefused(t *testing.T) {
	pwFile := writeSecret(t, redisSecret)
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"url unparsable", []string{"--redis.url=redis://jm:" + redisSecret + "@[::1"}, "", "--redis.url"},
		{"password in url and file", []string{"--redis.url=redis://jm:" + redisSecret + "@127.0.0.1:6379", "--redis.password-file=" + pwFile}, "", "--redis.password-file"},
		{"password in url and env", []string{"--redis.url=redis://jm:" + redisSecret + "@127.0.0.1:6379"}, redisSecret, "JETMETRICS_REDIS_PASSWORD"},
		{"password in file and env", []string{"--redis.url=redis://jm@127.0.0.1:6379", "--redis.password-file=" + pwFile}, redisSecret, "JETMETRICS_REDIS_PASSWORD"},
		{"password file missing", []string{"--redis.url=redis://jm@127.0.0.1:6379", "--redis.password-file=/nonexistent/pw"}, "", "--redis.password-file"},
		{"password file empty", []string{"--redis.url=redis://jm@127.0.0.1:6379", "--redis.password-file=" + writeSecret(t, "\n")}, "", "--redis.password-file"},
		{"password file without url", []string{"--redis.password-file=" + pwFile}, "", "--redis.password-file"},
		{"env without url", nil, redisSecret, "JETMETRICS_REDIS_PASSWORD"},
		{"tls ca without rediss", []string{"--redis.url=redis://jm:" + redisSecret + "@127.0.0.1:6379", "--redis.tls.ca-file=" + pwFile}, "", "--redis.tls.ca-file"},
		{"tls ca not PEM", []string{"--redis.url=rediss://jm:" + redisSecret + "@127.0.0.1:6379", "--redis.tls.ca-file=" + pwFile}, "", "--redis.tls.ca-file"},
		{"tls cert without key", []string{"--redis.url=rediss://jm@127.0.0.1:6379", "--redis.tls.cert-file=" + pwFile}, "", "--redis.tls.cert-file"},
		{"tls key not a key", []string{"--redis.url=rediss://jm@127.0.0.1:6379", "--redis.tls.cert-file=" + pwFile, "--redis.tls.key-file=" + pwFile}, "", "--redis.tls.cert-file"},
		{"tls server name without url", []string{"--redis.tls.server-name=redis.test"}, "", "--redis.tls.server-name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(redisPasswordEnv, tc.env)
			}
			for _, mode := range []string{"check", "start"} {
				args := []string{"node", "--data.dir=" + t.TempDir(), "--web.listen-address=127.0.0.1:0", "--nats.listen=", "--log.format=json", "--log.level=debug"}
				args = append(args, tc.args...)
				if mode == "check" {
					args = append(args, "--check-config")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				var stdout, stderr bytes.Buffer
				err := run(ctx, args, &stdout, &stderr)
				cancel()
				if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("%s: error = %v, want one line naming %s", mode, err, tc.want)
				}
				if exitCode(err) != 2 {
					t.Errorf("%s: exit code %d, want 2", mode, exitCode(err))
				}
				if strings.Contains(err.Error()+stderr.String()+stdout.String(), redisSecret) {
					t.Errorf("%s: the password is echoed: %v\n%s", mode, err, stderr.String())
				}
			}
		})
	}
}

// A valid password file, a rediss:// URL with an ACL user and the TLS
// files pass --check-config.
func TestRedisSecretSettingsAccepted(t *testing.T) {
	pwFile := writeSecret(t, redisSecret+"\n")
	for _, args := range [][]string{
		{"--redis.url=redis://jm@127.0.0.1:6379", "--redis.password-file=" + pwFile},
		{"--redis.url=rediss://jm@redis.example:6380", "--redis.tls.server-name=redis.internal"},
		{"--redis.url=unix://jm@/run/redis.sock", "--redis.password-file=" + pwFile},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout bytes.Buffer
			all := append([]string{"node", "--check-config", "--data.dir=" + t.TempDir()}, args...)
			if err := run(context.Background(), all, &stdout, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stdout.String(), "configuration is valid") || strings.Contains(stdout.String(), redisSecret) {
				t.Errorf("stdout = %q", stdout.String())
			}
		})
	}
}
