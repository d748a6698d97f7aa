package e2e_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// logLines keeps every JSON line a node logs, and copies it to the test.
type logLines struct {
	mu  sync.Mutex
	all []string
	t   io.Writer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.all = append(l.all, strings.TrimRight(string(p), "\n"))
	l.mu.Unlock()
	return l.t.Write(p)
}

func (l *logLines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// field returns the value of key in the first line whose message is msg.
func (l *logLines) field(msg, key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.all {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil && m["message"] == msg {
			return fmt.Sprint(m[key])
		}
	}
	return ""
}

// runRedisNode runs a node with cfg, logging at debug level into the
// returned lines, and waits until it is ready; ready false runs it until
// Run returns instead, at most a minute, and returns Run's error. The node
// is stopped at cleanup.
func runRedisNode(t *testing.T, cfg node.Config, ready bool) (*node.Node, *logLines, error) {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "rn"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.WebListen, cfg.NATSListen = "127.0.0.1:0", "127.0.0.1:0"
	logs := &logLines{t: zerolog.NewTestWriter(t)}
	cfg.Logger = zerolog.New(logs).Level(zerolog.DebugLevel)
	n, err := node.New(cfg)
	if err != nil {
		return nil, logs, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	if !ready {
		defer cancel()
		select {
		case err := <-done:
			return n, logs, err
		case <-time.After(time.Minute):
			t.Fatal("node neither started nor failed within a minute")
		}
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("node did not stop within a minute")
		}
	})
	<-n.Started()
	if n.WebAddr() == "" {
		t.Fatalf("node stopped at start: %v", <-done)
	}
	rn := &harness.RunningNode{Node: n, URL: "http://" + n.WebAddr()}
	harness.Eventually(t, time.Minute, func() error {
		_, err := harness.Scrape(rn.URL + "/metrics")
		return err
	})
	return n, logs, nil
}

// The redis-server a node manages answers nobody but the node, however deep
// its data directory: it listens on a unix socket of mode 0700 only (in a
// private directory when the data directory is too deep for a socket path,
// where it used to fall back to TCP without a password), and a client
// without the node's password can run nothing, FLUSHALL and CONFIG least
// of all.
func TestManagedRedisRefusesStrangers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dataDir func(t *testing.T) string
	}{
		{"short data dir", func(t *testing.T) string {
			dir, err := os.MkdirTemp("", "jm")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}},
		{"long data dir", func(t *testing.T) string {
			return filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dataDir := tc.dataDir(t)
			_, logs, _ := runRedisNode(t, node.Config{DataDir: dataDir}, true)
			url := logs.field("redis-server started", "url")
			sock, ok := strings.CutPrefix(url, "unix://")
			if !ok {
				t.Fatalf("managed redis-server at %q, want a unix socket", url)
			}
			st, err := os.Lstat(sock)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode() != os.ModeSocket|0o700 {
				t.Errorf("socket mode %s, want %s", st.Mode(), os.ModeSocket|0o700)
			}
			if !strings.HasPrefix(sock, dataDir) {
				if st, err := os.Lstat(filepath.Dir(sock)); err != nil || st.Mode() != os.ModeDir|0o700 {
					t.Errorf("socket directory outside the data dir: %v %v, want mode %s", st.Mode(), err, os.ModeDir|0o700)
				}
			}
			opts, err := redis.ParseURL(url)
			if err != nil {
				t.Fatal(err)
			}
			c := redis.NewClient(opts)
			defer c.Close()
			for _, cmd := range [][]any{{"PING"}, {"FLUSHALL"}, {"CONFIG", "SET", "appendonly", "no"}, {"CONFIG", "GET", "requirepass"}, {"KEYS", "*"}} {
				if err := c.Do(ctx, cmd...).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
					t.Errorf("%v without the node's password: %v, want NOAUTH", cmd, err)
				}
			}
			for _, l := range []string{"requirepass", "Password"} {
				if strings.Contains(logs.text(), l) {
					t.Errorf("the log mentions %q", l)
				}
			}
		})
	}
}

// aclRedis starts a redis-server whose default user is off, whose user
// "jm" has password pw and the rights docs/operations.md lists, no more,
// and whose user "admin" may do anything.
func aclRedis(t *testing.T, pw string) *redisserver.Server {
	t.Helper()
	rs := harness.Redis(t)
	c := harness.RedisClient(t, rs)
	ctx := context.Background()
	if err := c.Do(ctx, "ACL", "SETUSER", "jm", "on", ">"+pw, "~jetmetrics:*", "+@read", "+@write", "+@scripting", "+@transaction", "+@connection").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "ACL", "SETUSER", "admin", "on", ">"+adminPassword, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "ACL", "SETUSER", "default", "off").Err(); err != nil {
		t.Fatal(err)
	}
	return rs
}

// adminPassword is the password of aclRedis's user "admin".
const adminPassword = "admin-pw"

// secretFile writes content to a file of mode 0600 and returns its path.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A node works as an ACL user of an external Redis whose default user is
// off, its password in the URL, in a file or given on its own; a wrong one
// fails the start at once, naming the flag, and no log line or error holds
// either password.
func TestRedisACLUser(t *testing.T) {
	const pw, wrong = "Acl-pw-8f3e1d", "Wrong-pw-77b2c0"
	rs := aclRedis(t, pw)
	sock := strings.TrimPrefix(rs.URL(), "unix://")
	for _, tc := range []struct {
		name string
		cfg  func(pw string) node.Config
		// source is how the refusal names where the password came from.
		source string
	}{
		{"password in the url", func(pw string) node.Config {
			return node.Config{RedisURL: "unix://jm:" + pw + "@" + sock}
		}, "unix://jm:xxxxx@"},
		{"password file", func(pw string) node.Config {
			return node.Config{RedisURL: "unix://jm@" + sock, RedisPasswordFile: secretFile(t, pw+"\n")}
		}, "password from --redis.password-file"},
		{"password on its own", func(pw string) node.Config {
			return node.Config{RedisURL: "unix://jm@" + sock, RedisPassword: pw}
		}, "password from JETMETRICS_REDIS_PASSWORD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg(wrong)
			cfg.RedisConnectTimeout = 20 * time.Second
			start := time.Now()
			_, logs, err := runRedisNode(t, cfg, false)
			if err == nil || !strings.Contains(err.Error(), "WRONGPASS") || !strings.Contains(err.Error(), "--redis.url") || !strings.Contains(err.Error(), tc.source) {
				t.Fatalf("start with a wrong password: %v, want WRONGPASS naming --redis.url and %q", err, tc.source)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("the refused password failed the start after %s, want at once", took)
			}
			if strings.Contains(err.Error()+logs.text(), wrong) {
				t.Errorf("the wrong password is in the error or the log: %v", err)
			}

			_, logs, _ = runRedisNode(t, tc.cfg(pw), true)
			if strings.Contains(logs.text(), pw) {
				t.Errorf("the password is in the log")
			}
		})
	}
}

// The password file is read for every new connection: a password rotated
// in Redis and in the file needs no restart.
func TestRedisPasswordFileRotates(t *testing.T) {
	ctx := context.Background()
	rs := aclRedis(t, "first-pw")
	file := secretFile(t, "first-pw")
	_, _, _ = runRedisNode(t, node.Config{RedisURL: "unix://jm@" + strings.TrimPrefix(rs.URL(), "unix://"), RedisPasswordFile: file}, true)

	admin := rs.Options()
	admin.Username, admin.Password = "admin", adminPassword
	c := redis.NewClient(admin)
	defer c.Close()
	if err := c.Do(ctx, "ACL", "SETUSER", "jm", "resetpass", ">second-pw").Err(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("second-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Close the node's connections: its next ones need the new password.
	if err := c.Do(ctx, "CLIENT", "KILL", "USER", "jm").Err(); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, func() error {
		list, err := c.ClientList(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(list, "user=jm") {
			return errors.New("no connection as jm: the node has not reconnected")
		}
		return nil
	})
}

// redisPKI is a test CA, a server certificate for the name redis.test only,
// and a client certificate, as PEM files in dir.
type redisPKI struct{ dir string }

func (p redisPKI) path(name string) string { return filepath.Join(p.dir, name) }

func newRedisPKI(t *testing.T) redisPKI {
	t.Helper()
	p := redisPKI{dir: t.TempDir()}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(p.path(name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redis test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.crt", "CERTIFICATE", caDER)
	for i, leaf := range []struct {
		name  string
		usage x509.ExtKeyUsage
		dns   []string
	}{
		{"server", x509.ExtKeyUsageServerAuth, []string{"redis.test"}},
		{"client", x509.ExtKeyUsageClientAuth, nil},
	} {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: leaf.name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{leaf.usage}, DNSNames: leaf.dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(leaf.name+".crt", "CERTIFICATE", der)
		write(leaf.name+".key", "EC PRIVATE KEY", kb)
	}
	return p
}

// A node reaches a Redis over TLS with rediss://, verifying the server's
// certificate with --redis.tls.ca-file under --redis.tls.server-name and
// presenting a client certificate, and the Redis asks for a password too.
// Leaving out any of them fails the start.
func TestRedisTLS(t *testing.T) {
	p := newRedisPKI(t)
	port := harness.FreePort(t)
	// The plain socket serves the readiness probe; clients use TLS. A
	// redis-server built without TLS refuses --tls-port, failing the test.
	rs := harness.RedisWith(t, redisserver.Config{ExtraArgs: []string{
		"--tls-port", fmt.Sprint(port),
		"--tls-cert-file", p.path("server.crt"), "--tls-key-file", p.path("server.key"),
		"--tls-ca-cert-file", p.path("ca.crt"), "--tls-auth-clients", "yes",
	}})
	if err := harness.RedisClient(t, rs).ConfigSet(context.Background(), "requirepass", "tls-pw-5d1c").Err(); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("rediss://127.0.0.1:%d", port)
	full := node.Config{
		RedisURL: url, RedisPassword: "tls-pw-5d1c",
		RedisTLSCAFile: p.path("ca.crt"), RedisTLSServerName: "redis.test",
		RedisTLSCertFile: p.path("client.crt"), RedisTLSKeyFile: p.path("client.key"),
		RedisConnectTimeout: 3 * time.Second,
	}
	for _, tc := range []struct {
		name   string
		change func(*node.Config)
		want   string
	}{
		{"no CA", func(c *node.Config) { c.RedisTLSCAFile = "" }, "certificate"},
		{"no server name", func(c *node.Config) { c.RedisTLSServerName = "" }, "certificate"},
		{"no client certificate", func(c *node.Config) { c.RedisTLSCertFile, c.RedisTLSKeyFile = "", "" }, "--redis.url"},
		{"plain redis://", func(c *node.Config) {
			c.RedisURL = fmt.Sprintf("redis://127.0.0.1:%d", port)
			c.RedisTLSCAFile, c.RedisTLSServerName, c.RedisTLSCertFile, c.RedisTLSKeyFile = "", "", "", ""
		}, "--redis.url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := full
			tc.change(&cfg)
			_, _, err := runRedisNode(t, cfg, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start: %v, want a failure mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("all of them", func(t *testing.T) {
		// Serving /metrics takes reading the aggregate from Redis.
		runRedisNode(t, full, true)
	})
}
