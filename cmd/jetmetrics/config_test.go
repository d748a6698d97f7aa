package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// secret is a password in URLs that no error may repeat.
const secret = "s3cret-pw"

// Every value below passed --check-config once and then failed the start
// or made it wait forever. Each must be refused by --check-config and by
// a start, in one line that names the flag, never echoing a password.
func TestConfigMistakesRefusedAtCheckAndStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	plainUsers := writeSecret(t, "users:\n  - user: billing\n    password: "+secret+"\n    role: producer\n    owners: [billing]\n")
	unknownKey := writeSecret(t, "users:\n  - user: billing\n    pasword: x\n    role: producer\n")
	routePW := writeSecret(t, "route-"+secret+"\n")
	pki := harness.TLSFiles(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"route not a URL", []string{"--nats.cluster.listen=127.0.0.1:16222", "--nats.cluster.routes=foo"}, "--nats.cluster.routes"},
		{"route without port", []string{"--nats.cluster.listen=127.0.0.1:16222", "--nats.cluster.routes=nats://10.0.0.2"}, "--nats.cluster.routes"},
		{"route port out of range", []string{"--nats.cluster.listen=127.0.0.1:16222", "--nats.cluster.routes=nats://10.0.0.2:99999"}, "--nats.cluster.routes"},
		{"route scheme", []string{"--nats.cluster.listen=127.0.0.1:16222", "--nats.cluster.routes=http://10.0.0.2:6222"}, "--nats.cluster.routes"},
		{"routes without cluster listen", []string{"--nats.cluster.routes=nats://10.0.0.2:6222"}, "--nats.cluster.routes"},
		{"routes only self", []string{"--nats.cluster.listen=127.0.0.1:16222", "--nats.cluster.routes=nats://127.0.0.1:16222"}, "--nats.cluster.routes"},
		{"routes only self, loopback names", []string{"--nats.cluster.listen=0.0.0.0:16222", "--nats.cluster.routes=nats://localhost:16222,nats://127.0.0.1:16222"}, "--nats.cluster.routes"},
		{"routes only self, host name", []string{"--nats.cluster.listen=:16222", "--nats.cluster.routes=nats://" + hostname(t) + ":16222"}, "--nats.cluster.routes"},
		{"cluster listen port out of range", []string{"--nats.cluster.listen=127.0.0.1:99999", "--nats.cluster.routes=nats://10.0.0.2:6222"}, "--nats.cluster.listen"},
		{"cluster listen with nats.url", []string{"--nats.url=nats://10.0.0.2:4222", "--nats.cluster.listen=127.0.0.1:16222", "--nats.cluster.routes=nats://10.0.0.2:6222"}, "--nats.cluster.listen"},
		{"cluster name with space", []string{"--nats.cluster.name=my cluster", "--nats.cluster.listen=127.0.0.1:16222", "--nats.cluster.routes=nats://10.0.0.2:6222"}, "--nats.cluster.name"},
		{"web port out of range", []string{"--web.listen-address=:99999"}, "--web.listen-address"},
		{"web port negative", []string{"--web.listen-address=127.0.0.1:-1"}, "--web.listen-address"},
		{"web host not a host", []string{"--web.listen-address=no such host:80"}, "--web.listen-address"},
		{"nats listen port out of range", []string{"--nats.listen=127.0.0.1:70000"}, "--nats.listen"},
		{"web address not this machine's", []string{"--web.listen-address=192.0.2.1:9480"}, "--web.listen-address"},
		{"nats listen address not this machine's", []string{"--nats.listen=192.0.2.1:4222"}, "--nats.listen"},
		{"cluster listen address not this machine's", []string{"--nats.cluster.listen=192.0.2.1:6222", "--nats.cluster.routes=nats://10.0.0.2:6222"}, "--nats.cluster.listen"},
		{"nats listen not host:port", []string{"--nats.listen=4222"}, "--nats.listen"},
		{"web and nats on one port", []string{"--web.listen-address=:14222", "--nats.listen=127.0.0.1:14222"}, "--nats.listen"},
		{"redis url port out of range", []string{"--redis.url=redis://:" + secret + "@127.0.0.1:99999"}, "--redis.url"},
		{"redis url unparsable", []string{"--redis.url=redis://:" + secret + "@[::1"}, "--redis.url"},
		{"redis url scheme", []string{"--redis.url=http://user:" + secret + "@127.0.0.1:6379"}, "--redis.url"},
		{"redis url database", []string{"--redis.url=redis://:" + secret + "@127.0.0.1:6379/db"}, "--redis.url"},
		{"redis url without host", []string{"--redis.url=127.0.0.1:6379"}, "--redis.url"},
		{"nats url port", []string{"--nats.url=nats://user:" + secret + "@127.0.0.1:0"}, "--nats.url"},
		{"nats url scheme", []string{"--nats.url=http://127.0.0.1:4222"}, "--nats.url"},
		{"nats url empty element", []string{"--nats.url=nats://a:4222,,nats://b:4222"}, "--nats.url"},
		{"nats url, second password", []string{"--nats.url=nats://u:pw@a:4222,nats://u:" + secret + "@b:99999"}, "--nats.url"},
		{"replicas without a cluster", []string{"--streams.replicas=3"}, "--streams.replicas"},
		{"replicas beyond the routes", []string{"--streams.replicas=3", "--nats.cluster.listen=127.0.0.1:16222", "--nats.cluster.routes=nats://127.0.0.1:16222,nats://10.0.0.2:6222"}, "--streams.replicas"},
		{"duplicate window over max age", []string{"--streams.delta-max-age=1h", "--streams.duplicate-window=2h"}, "--streams.duplicate-window"},
		{"snapshot interval zero", []string{"--snapshot.interval=0s"}, "--snapshot.interval"},
		{"snapshot ttl negative", []string{"--snapshot.ttl=-1s"}, "--snapshot.ttl"},
		{"snapshot ttl under interval", []string{"--snapshot.interval=10s", "--snapshot.ttl=5s"}, "--snapshot.ttl"},
		{"redis connect timeout zero", []string{"--redis.connect-timeout=0s"}, "--redis.connect-timeout"},
		{"nats connect timeout negative", []string{"--nats.connect-timeout=-1s"}, "--nats.connect-timeout"},
		{"data dir a file", []string{"--data.dir=" + file}, "--data.dir"},
		{"data dir under a file", []string{"--data.dir=" + file + "/data"}, "--data.dir"},
		{"data dir empty", []string{"--data.dir="}, "--data.dir"},
		{"nats listen on every interface without users", []string{"--nats.listen=0.0.0.0:14222"}, "--nats.listen"},
		{"nats listen on an empty host without users", []string{"--nats.listen=:14222"}, "--nats.listen"},
		{"cluster listen on every interface without route credentials", []string{"--nats.cluster.listen=0.0.0.0:16222", "--nats.cluster.routes=nats://10.0.0.2:6222"}, "--nats.cluster.listen"},
		{"cluster user without password", []string{"--nats.cluster.listen=127.0.0.1:16222", "--nats.cluster.routes=nats://10.0.0.2:6222", "--nats.cluster.user=route"}, "--nats.cluster.user"},
		{"cluster listen on every interface without route TLS", []string{"--nats.cluster.listen=0.0.0.0:16222", "--nats.cluster.routes=nats://10.0.0.2:6222", "--nats.cluster.user=route", "--nats.cluster.password-file=" + routePW}, "--nats.cluster.tls.cert-file"},
		{"route TLS without its CA", []string{"--nats.cluster.listen=0.0.0.0:16222", "--nats.cluster.routes=nats://10.0.0.2:6222", "--nats.cluster.user=route", "--nats.cluster.password-file=" + routePW, "--nats.cluster.tls.cert-file=" + pki.CertFile, "--nats.cluster.tls.key-file=" + pki.KeyFile}, "--nats.cluster.tls.ca-file"},
		{"route TLS key not the certificate's", []string{"--nats.cluster.listen=127.0.0.1:16222", "--nats.cluster.routes=nats://10.0.0.2:6222", "--nats.cluster.tls.cert-file=" + pki.CertFile, "--nats.cluster.tls.key-file=" + pki.ClientKeyFile, "--nats.cluster.tls.ca-file=" + pki.CAFile}, "--nats.cluster.tls"},
		{"client TLS CA without a certificate", []string{"--nats.listen=127.0.0.1:14222", "--nats.tls.ca-file=" + pki.CAFile}, "--nats.tls.ca-file"},
		{"route TLS with nats.url", []string{"--nats.url=nats://10.0.0.2:4222", "--nats.cluster.tls.key-file=" + pki.KeyFile}, "--nats.cluster.tls.key-file"},
		{"users file with a plain password", []string{"--nats.users.file=" + plainUsers}, "--nats.users.file"},
		{"users file with an unknown key", []string{"--nats.users.file=" + unknownKey}, "--nats.users.file"},
		{"client credentials without nats.url", []string{"--nats.user=u", "--nats.password-file=" + file}, "--nats.user"},
		{"users file with nats.url", []string{"--nats.url=nats://10.0.0.2:4222", "--nats.users.file=" + plainUsers}, "--nats.users.file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := []string{"node", "--data.dir=" + t.TempDir(), "--web.listen-address=127.0.0.1:0", "--nats.listen="}
			for _, mode := range []string{"check", "start"} {
				args := append(append([]string(nil), base...), tc.args...)
				if mode == "check" {
					args = append(args, "--check-config")
				}
				// A start that is not refused would run: bound it.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				var stdout, stderr bytes.Buffer
				err := run(ctx, args, &stdout, &stderr)
				cancel()
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%s: error = %v, want one naming %s", mode, err, tc.want)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("%s: error spans lines: %q", mode, err)
				}
				if exitCode(err) != 2 {
					t.Errorf("%s: exit code %d, want 2", mode, exitCode(err))
				}
				if strings.Contains(err.Error()+stderr.String()+stdout.String(), secret) {
					t.Errorf("%s: the password is echoed: %v", mode, err)
				}
			}
		})
	}
}

// Configurations close to the mistakes above stay valid.
func TestConfigCheckAcceptsValid(t *testing.T) {
	pwFile := writeSecret(t, "route-secret\n")
	pki := harness.TLSFiles(t)
	usersFile := writeSecret(t, "users:\n  - user: admin\n    password: $2a$11$abcdefghijklmnopqrstuu7SxQnTg1L8sEpVwwfTE8E5eRPd0YV7e\n    role: admin\n")
	for _, args := range [][]string{
		{"--nats.cluster.listen=0.0.0.0:6222", "--nats.cluster.routes=nats://a:6222,nats://b:6222,nats://c:6222", "--streams.replicas=3", "--nats.insecure"},
		{"--nats.cluster.listen=0.0.0.0:6222", "--nats.cluster.routes=nats://a:6222,nats://b:6222", "--nats.cluster.user=route", "--nats.cluster.password-file=" + pwFile,
			"--nats.cluster.tls.cert-file=" + pki.CertFile, "--nats.cluster.tls.key-file=" + pki.KeyFile, "--nats.cluster.tls.ca-file=" + pki.CAFile},
		{"--nats.cluster.listen=0.0.0.0:6222", "--nats.cluster.routes=nats://a:6222,nats://b:6222", "--nats.cluster.user=route", "--nats.cluster.password-file=" + pwFile, "--nats.insecure"},
		{"--nats.listen=0.0.0.0:4222", "--nats.users.file=" + usersFile, "--nats.tls.cert-file=" + pki.CertFile, "--nats.tls.key-file=" + pki.KeyFile, "--nats.tls.ca-file=" + pki.CAFile},
		{"--nats.url=tls://a:4222", "--nats.user=node-a", "--nats.password-file=" + pwFile, "--nats.tls.ca-file=" + pki.CAFile, "--nats.tls.cert-file=" + pki.ClientCertFile, "--nats.tls.key-file=" + pki.ClientKeyFile},
		{"--nats.listen=0.0.0.0:4222", "--nats.users.file=" + usersFile},
		{"--nats.listen=0.0.0.0:4222", "--nats.insecure"},
		{"--nats.listen=localhost:4222"},
		{"--nats.url=nats://a:4222", "--nats.user=node-a", "--nats.password-file=" + pwFile},
		{"--nats.cluster.listen=127.0.0.1:16222", "--nats.cluster.routes=nats://127.0.0.1:16222,nats://127.0.0.1:16223"},
		{"--nats.url=nats://a:4222,nats://user:pw@b:4222,tls://c", "--streams.replicas=3"},
		{"--nats.url=localhost"},
		{"--redis.url=redis://:pw@localhost:6379/2", "--redis.connect-timeout=1s"},
		{"--redis.url=unix:///run/redis/redis.sock?db=1"},
		{"--web.listen-address=:9480", "--nats.listen=127.0.0.1:4222"},
		{"--web.listen-address=:http"},
		{"--snapshot.interval=10s"},
		{"--snapshot.interval=100ms"},
		{"--snapshot.interval=2s", "--snapshot.ttl=2s"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout bytes.Buffer
			all := append([]string{"node", "--check-config", "--data.dir=" + t.TempDir()}, args...)
			if err := run(context.Background(), all, &stdout, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stdout.String(), "configuration is valid") {
				t.Errorf("stdout = %q", stdout.String())
			}
		})
	}
}

// A Redis that never answers fails the start after --redis.connect-timeout,
// naming the flag and the URL without its password, instead of a node
// warning forever.
func TestUnansweringRedisFailsTheStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"nothing listens", closedPort},
		{"accepts and never answers", silentListener},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := "redis://:" + secret + "@" + tc.addr(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := run(ctx, []string{"node", "--data.dir=" + t.TempDir(), "--web.listen-address=127.0.0.1:0", "--nats.listen=",
				"--redis.url=" + url, "--redis.connect-timeout=1s"}, &bytes.Buffer{}, &bytes.Buffer{})
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "--redis.url") || !strings.Contains(err.Error(), "--redis.connect-timeout") {
				t.Fatalf("error = %v, want one naming --redis.url and --redis.connect-timeout", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the password is echoed: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if took > 5*time.Second {
				t.Errorf("the start failed after %s, want about the 1s timeout", took)
			}
			t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
		})
	}
}

// The same for an external NATS that never answers.
func TestUnansweringNATSFailsTheStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"nothing listens", closedPort},
		{"accepts and never answers", silentListener},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := run(ctx, []string{"node", "--data.dir=" + t.TempDir(), "--web.listen-address=127.0.0.1:0",
				"--nats.url=nats://user:" + secret + "@" + tc.addr(t), "--nats.connect-timeout=1s"}, &bytes.Buffer{}, &bytes.Buffer{})
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "--nats.url") || !strings.Contains(err.Error(), "--nats.connect-timeout") {
				t.Fatalf("error = %v, want one naming --nats.url and --nats.connect-timeout", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the password is echoed: %v", err)
			}
			if took > 5*time.Second {
				t.Errorf("the start failed after %s, want about the 1s timeout", took)
			}
			t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentListener returns the address of a listener that accepts
// connections and never writes a byte.
func silentListener(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String()
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A Redis that answers "wrong password" fails the start at once: waiting
// for it changes nothing.
func TestRedisRefusingThePasswordFailsAtOnce(t *testing.T) {
	rs := harness.RedisTCP(t)
	if err := harness.RedisClient(t, rs).ConfigSet(context.Background(), "requirepass", "right-pw").Err(); err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(rs.URL(), "redis://", "redis://:"+secret+"@", 1)
	start := time.Now()
	err := run(context.Background(), []string{"node", "--data.dir=" + t.TempDir(), "--web.listen-address=127.0.0.1:0", "--nats.listen=",
		"--redis.url=" + url, "--redis.connect-timeout=20s"}, &bytes.Buffer{}, &bytes.Buffer{})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "--redis.url") || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("error = %v, want one naming --redis.url and the refusal", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the password is echoed: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("the start failed after %s, want at once, not after the 20s timeout", took)
	}
}

// A NATS without JetStream fails the start, naming --nats.url, instead of
// a node retrying to create its streams forever.
func TestNATSWithoutJetStreamFailsTheStart(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, []string{"node", "--data.dir=" + t.TempDir(), "--web.listen-address=127.0.0.1:0", "--nats.url=" + ns.ClientURL()}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--nats.url") || !strings.Contains(err.Error(), "JetStream") {
		t.Fatalf("error = %v, want one naming --nats.url and JetStream", err)
	}
}

// A listener whose port is taken fails the start naming its flag.
func TestPortInUseNamesTheFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for _, flag := range []string{"--web.listen-address", "--nats.listen"} {
		t.Run(flag, func(t *testing.T) {
			args := []string{"node", "--data.dir=" + t.TempDir(), "--web.listen-address=127.0.0.1:0", "--nats.listen=127.0.0.1:0", flag + "=" + addr}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := run(ctx, args, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), flag) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error = %v, want one line naming %s", err, flag)
			}
		})
	}
}
