package redisserver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// password has bytes a configuration line could trip on: a quote, a
// backslash, white space, a newline and a directive of its own.
const password = "Zq9-secret \"q\" \\ x\nrequirepass other"

// secretPart is a part of password no log line or command line may hold.
const secretPart = "Zq9-secret"

// lockedBuffer collects what a logger writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startWith starts cfg in a temporary Dir, logging at debug level to the
// test and to the returned buffer, and stops it at cleanup.
func startWith(t *testing.T, cfg redisserver.Config) (*redisserver.Server, *lockedBuffer) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	logs := &lockedBuffer{}
	cfg.Logger = zerolog.New(zerolog.MultiLevelWriter(logs, zerolog.NewTestWriter(t))).Level(zerolog.DebugLevel)
	s, err := redisserver.Start(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s, logs
}

// A server with a password refuses every command of a client that has not
// authenticated, on a socket and on TCP alike, and across restarts; the
// password is on no command line and in no log line.
func TestPasswordRequired(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  redisserver.Config
	}{
		{"tcp", redisserver.Config{}},
		{"socket", redisserver.Config{Socket: filepath.Join(shortDir(t), "r.sock")}},
		{"temp socket", redisserver.Config{TempSocket: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			var argsFile string
			tc.cfg.Password = password
			tc.cfg.Binary, argsFile = recordingBinary(t)
			s, logs := startWith(t, tc.cfg)
			if strings.Contains(s.URL(), secretPart) {
				t.Errorf("url %q carries the password", s.URL())
			}
			check := func() {
				t.Helper()
				opts := s.Options()
				opts.Password = ""
				anon := redis.NewClient(opts)
				defer anon.Close()
				for _, cmd := range [][]any{{"PING"}, {"CONFIG", "SET", "appendonly", "no"}, {"FLUSHALL"}, {"GET", "k"}} {
					if err := anon.Do(ctx, cmd...).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
						t.Errorf("%v without a password: %v, want NOAUTH", cmd, err)
					}
				}
				opts.Password = "wrong"
				wrong := redis.NewClient(opts)
				defer wrong.Close()
				if err := wrong.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
					t.Errorf("PING with a wrong password: %v, want WRONGPASS", err)
				}
				c := redis.NewClient(s.Options())
				defer c.Close()
				if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
					t.Errorf("SET with the password: %v", err)
				}
				// redis-server overwrites its command line once it runs,
				// but every user could read it before: the wrapper saw it.
				args, err := os.ReadFile(argsFile)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(args, []byte(secretPart)) || !bytes.Contains(args, []byte("--dir")) {
					t.Errorf("command line %q: want one without the password", args)
				}
			}
			check()
			if err := s.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			check()
			if err := s.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if l := logs.String(); !strings.Contains(strings.ToLower(l), "ready to accept connections") || strings.Contains(l, secretPart) {
				t.Errorf("logs hold no ready line or the password:\n%s", l)
			}
		})
	}
}

// recordingBinary returns a redis-server that writes its command line to
// argsFile before it runs the real one.
func recordingBinary(t *testing.T) (bin, argsFile string) {
	t.Helper()
	real, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, argsFile = filepath.Join(dir, "redis-server"), filepath.Join(dir, "args")
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" >>%s\nexec %s \"$@\"\n", argsFile, real)
	if err := os.WriteFile(bin, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return bin, argsFile
}

// shortDir is a fresh directory with a short path, for a socket.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TempSocket listens on a short socket whatever the depth of Dir, in a
// directory only its owner can enter, removed at stop, made again at
// restart, and refused if someone else has made it meanwhile.
func TestTempSocket(t *testing.T) {
	ctx := testContext(t)
	deep := filepath.Join(t.TempDir(), strings.Repeat("d", 100), strings.Repeat("e", 100))
	s, _ := startWith(t, redisserver.Config{Dir: deep, TempSocket: true})
	sock, ok := strings.CutPrefix(s.URL(), "unix://")
	if !ok || len(sock) > 103 {
		t.Fatalf("url %q, want a unix socket of at most 103 bytes", s.URL())
	}
	dir := filepath.Dir(sock)
	checkMode := func() {
		t.Helper()
		for path, want := range map[string]os.FileMode{dir: os.ModeDir | 0o700, sock: os.ModeSocket | 0o700} {
			st, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode() != want {
				t.Errorf("%s: mode %s, want %s", path, st.Mode(), want)
			}
		}
	}
	checkMode()
	c := harness.RedisClient(t, s)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// A crash leaves the directory and a stale socket; the restart
	// takes them over.
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	checkMode()
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after kill and restart got %q, %v", got, err)
	}

	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket directory after stop: %v, want it gone", err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	checkMode()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// Someone made the directory while the server was stopped: it is not
	// ours to listen in.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	if err := s.Restart(ctx); err == nil || !strings.Contains(err.Error(), "mode 0700") {
		t.Fatalf("restart in a directory made by someone else: %v, want a refusal", err)
	}
}

// A TempSocket that the system temporary directory makes too long is
// refused, saying what to do about it.
func TestTempSocketTooLong(t *testing.T) {
	tmp := filepath.Join(t.TempDir(), strings.Repeat("t", 110))
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	_, err := redisserver.Start(testContext(t), redisserver.Config{Dir: t.TempDir(), TempSocket: true, Logger: harness.Logger(t)})
	if err == nil || !strings.Contains(err.Error(), "TMPDIR") {
		t.Fatalf("error %v, want one naming TMPDIR", err)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// The child's output never shows the password, in the log or in the
// error of a failed start, even where redis-server quotes a line of its
// configuration that holds it.
func TestPasswordNotInChildOutput(t *testing.T) {
	const pw = "Xk3mP9qLw2"
	logs := &lockedBuffer{}
	_, err := redisserver.Start(testContext(t), redisserver.Config{
		Dir:      t.TempDir(),
		Password: pw,
		Logger:   zerolog.New(zerolog.MultiLevelWriter(logs, zerolog.NewTestWriter(t))).Level(zerolog.DebugLevel),
		// An unknown directive makes redis-server quote it, value and all.
		ExtraArgs: []string{"--no-such-directive", pw},
	})
	if err == nil {
		t.Fatal("start with an unknown directive succeeded")
	}
	if !strings.Contains(err.Error(), "no-such-directive") {
		t.Fatalf("error %v does not quote the bad directive", err)
	}
	for what, s := range map[string]string{"error": err.Error(), "log": logs.String()} {
		if strings.Contains(s, pw) {
			t.Errorf("the %s repeats the password: %s", what, s)
		}
	}
}
