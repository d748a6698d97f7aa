package main

import (
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// webClientOf builds the web client of status and top from args, as
// their flags parse them.
func webClientOf(t *testing.T, args ...string) (*webClient, string, error) {
	t.Helper()
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	web := addWebFlags(fs)
	if err := parseFlags(fs, args, io.Discard); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	c, err := web.client(&stderr)
	if c != nil {
		t.Cleanup(c.close)
	}
	return c, stderr.String(), err
}

// A password goes over http:// only to a loopback host, silently; to any
// other host status and top refuse to start (exit 2, one line naming
// --web.url and why) unless --web.insecure-plaintext-auth, which warns on
// every run. Credentials in --web.url itself are refused, unechoed. No
// case reaches the network: the refusals come before any request, and the
// accepted non-loopback URL is only built, never asked.
func TestWebPasswordNeverInClearTextOffLoopback(t *testing.T) {
	t.Setenv(webPasswordEnv, webSecret)
	user := "--web.username=ops"

	for _, url := range []string{
		"http://127.0.0.1:9480", "http://127.3.4.5:9480", "http://[::1]:9480", "http://[::ffff:127.0.0.1]:9480",
		"http://localhost:9480", "http://LOCALHOST.:9480/",
	} {
		if _, warn, err := webClientOf(t, user, "--web.url="+url); err != nil || warn != "" {
			t.Errorf("password to loopback %s: %v, stderr %q: want accepted silently", url, err, warn)
		}
	}

	for _, url := range []string{
		"http://node-a:9480", "http://192.0.2.10:9480", "http://[2001:db8::1]:9480", "http://0.0.0.0:9480",
		"http://localhost.example.com:9480", "http://127.0.0.1.nip.io:9480", "HTTP://node-a:9480",
	} {
		for _, cmd := range []string{"status", "top"} {
			_, errOut, err := runCmd(cmd, user, "--web.url="+url, "--timeout=1s")
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if exitCode(err) != 2 || !strings.Contains(msg, "--web.url") || !strings.Contains(msg, "clear text") ||
				!strings.Contains(msg, "--web.insecure-plaintext-auth") || strings.Contains(msg, "\n") || strings.Contains(msg+errOut, webSecret) {
				t.Errorf("%s with a password to %s: %q (exit %d), want exit 2 naming --web.url, clear text and the opt-in", cmd, url, msg, exitCode(err))
			}
		}
		_, warn, err := webClientOf(t, user, "--web.url="+url, "--web.insecure-plaintext-auth")
		if err != nil || !strings.Contains(warn, "warning: --web.insecure-plaintext-auth") || !strings.Contains(warn, "clear text") || strings.Contains(warn, webSecret) {
			t.Errorf("--web.insecure-plaintext-auth to %s: %v, stderr %q: want accepted with a warning", url, err, warn)
		}
		// No password, nothing to leak: no refusal, no warning.
		t.Setenv(webPasswordEnv, "")
		if _, warn, err := webClientOf(t, "--web.url="+url); err != nil || warn != "" {
			t.Errorf("no credentials to %s: %v, stderr %q: want accepted silently", url, err, warn)
		}
		t.Setenv(webPasswordEnv, webSecret)
	}

	if _, _, err := runCmd("status", user, "--web.url=https://node-a:9480", "--web.insecure-plaintext-auth"); exitCode(err) != 2 || !strings.Contains(err.Error(), "--web.insecure-plaintext-auth") {
		t.Errorf("--web.insecure-plaintext-auth with https://: %v (exit %d), want exit 2 naming the flag", err, exitCode(err))
	}
	t.Setenv(webPasswordEnv, "")
	_, errOut, err := runCmd("status", "--web.url=http://ops:"+webSecret+"@127.0.0.1:9480")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "--web.password-file") || strings.Contains(err.Error()+errOut, webSecret) {
		t.Errorf("credentials in --web.url: %v (exit %d), want exit 2 without the password", err, exitCode(err))
	}
}

// status reaches a node with basic auth and no TLS on loopback, by address
// or as localhost, without a word on stderr: the laptop and test setups.
func TestWebPasswordOverLoopbackHTTP(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte(webSecret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webCfg, fmt.Appendf(nil, "basic_auth_users:\n  ops: %s\n", hash), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := harness.LaunchNode(t, node.Config{Name: "plain", WebConfigFile: webCfg}).Node.WebAddr()
	_, port, _ := strings.Cut(addr, ":")
	t.Setenv(webPasswordEnv, webSecret)
	harness.Eventually(t, 60*time.Second, func() error {
		_, _, err := runCmd("status", "--web.username=ops", "--web.url=http://"+addr)
		return err
	})
	for _, url := range []string{"http://" + addr, "http://localhost:" + port} {
		out, errOut, err := runCmd("status", "--web.username=ops", "--web.url="+url)
		if err != nil || errOut != "" || !strings.Contains(out, "READY") {
			t.Errorf("status over http:// to %s: %v, stderr %q\n%s", url, err, errOut, out)
		}
	}
}

// plainServer is an http:// server on loopback that records the
// Authorization header of each request it gets.
type plainServer struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
}

func newPlainServer(t *testing.T) *plainServer {
	s := &plainServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.auths = append(s.auths, r.Header.Get("Authorization"))
		s.mu.Unlock()
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *plainServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

// A redirect from https:// to http:// on the same host (which net/http
// follows keeping the Authorization header: it drops it only for another
// host) is not followed while the request carries the password: status and
// top stop with exit 1 and one line saying why, and the http:// server
// gets no request. Without credentials the redirect is followed, and a
// redirect that stays on https:// keeps working with the password.
func TestWebPasswordNotSentAfterRedirectToHTTP(t *testing.T) {
	plain := newPlainServer(t)
	var tlsAuths []string
	var mu sync.Mutex
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tlsAuths = append(tlsAuths, r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/moved"):
			// Same scheme, same host: the password goes along.
			http.Redirect(w, r, strings.TrimPrefix(r.URL.Path, "/moved"), http.StatusFound)
		case r.URL.Path == "/-/ready" || r.URL.Path == "/metrics":
			// The same host, http://: net/http would keep the header.
			http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusMovedPermanently)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(secure.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(webPasswordEnv, webSecret)
	auth := []string{"--web.url=" + secure.URL, "--web.ca-file=" + ca, "--web.username=ops", "--timeout=10s"}

	for _, cmd := range [][]string{{"status"}, {"top", "--once", "--interval=100ms", "--self"}} {
		out, errOut, err := runCmd(append(cmd, auth...)...)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if exitCode(err) != 1 || !strings.Contains(msg, "redirect") || !strings.Contains(msg, "clear text") || strings.Contains(msg, "\n") ||
			strings.Contains(msg+out+errOut, webSecret) {
			t.Errorf("%s redirected from https:// to http://: %q (exit %d), want exit 1 and one line saying why", cmd[0], msg, exitCode(err))
		}
	}
	if got := plain.requests(); len(got) != 0 {
		t.Fatalf("the http:// server got %d requests (Authorization %q), want none", len(got), got)
	}

	// No credentials: nothing to leak, the redirect is followed.
	t.Setenv(webPasswordEnv, "")
	c, _, err := webClientOf(t, "--web.url="+secure.URL, "--web.ca-file="+ca)
	if err != nil {
		t.Fatal(err)
	}
	if _, code, err := c.get(t.Context(), "/-/ready", "", 1<<10); err != nil || code != http.StatusOK {
		t.Errorf("redirect to http:// without credentials: %d %v, want followed", code, err)
	}
	if got := plain.requests(); len(got) != 1 || got[0] != "" {
		t.Errorf("the http:// server got Authorization %q, want one request without it", got)
	}

	// https:// to https:// on the same host keeps the password.
	t.Setenv(webPasswordEnv, webSecret)
	c, _, err = webClientOf(t, auth[:3]...)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	tlsAuths = nil
	mu.Unlock()
	if _, code, err := c.get(t.Context(), "/moved/elsewhere", "", 1<<10); err != nil || code != http.StatusNotFound {
		t.Errorf("redirect within https://: %d %v, want followed to a 404", code, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tlsAuths) != 2 || !strings.HasPrefix(tlsAuths[1], "/elsewhere Basic ") {
		t.Errorf("requests to the https:// server: %q, want the redirect followed with the password", tlsAuths)
	}
}
