package probes_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/probes"
)

func probeCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// check runs p once and compares its outcome with want ("" for success,
// else the reason), returning the error.
func check(t *testing.T, p probes.Prober, want string) error {
	t.Helper()
	lat, err := p.Probe(probeCtx(t, 5*time.Second))
	if got := probes.ReasonOf(err); got != want {
		t.Fatalf("reason %q (%v), want %q", got, err, want)
	}
	if err == nil && lat <= 0 {
		t.Fatalf("success with latency %v", lat)
	}
	if err != nil && lat != 0 {
		t.Fatalf("failure with latency %v: a failure has none", lat)
	}
	if err != nil && strings.ContainsAny(err.Error(), "\n\r") {
		t.Fatalf("message is not one line: %q", err)
	}
	return err
}

func newHTTP(t *testing.T, cfg probes.HTTPConfig) *probes.HTTP {
	t.Helper()
	p, err := probes.NewHTTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		_, _ = w.Write([]byte(`{"status":"healthy","version":"1.2.3"}`))
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/post-only", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 64<<10) + "needle"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name string
		cfg  probes.HTTPConfig
		want string
		msg  string
	}{
		{name: "default 200", cfg: probes.HTTPConfig{URL: srv.URL + "/ok"}},
		{name: "503 fails", cfg: probes.HTTPConfig{URL: srv.URL + "/down"}, want: probes.ReasonStatus, msg: "http: status 503, want 200 to 399"},
		{name: "503 expected", cfg: probes.HTTPConfig{URL: srv.URL + "/down", ExpectStatus: []int{503}}},
		{name: "200 not in list", cfg: probes.HTTPConfig{URL: srv.URL + "/ok", ExpectStatus: []int{204, 503}}, want: probes.ReasonStatus, msg: "http: status 200, want 204, 503"},
		{name: "redirect is the answer", cfg: probes.HTTPConfig{URL: srv.URL + "/moved", ExpectStatus: []int{302}}},
		{name: "redirect not followed", cfg: probes.HTTPConfig{URL: srv.URL + "/moved", ExpectStatus: []int{200}}, want: probes.ReasonStatus, msg: "http: status 302, want 200"},
		{name: "redirect followed", cfg: probes.HTTPConfig{URL: srv.URL + "/moved", ExpectStatus: []int{200}, FollowRedirects: true}},
		{name: "method", cfg: probes.HTTPConfig{URL: srv.URL + "/post-only", Method: http.MethodPost, ExpectStatus: []int{200}}},
		{name: "wrong method", cfg: probes.HTTPConfig{URL: srv.URL + "/post-only"}, want: probes.ReasonStatus, msg: "http: status 405, want 200 to 399"},
		{name: "substring", cfg: probes.HTTPConfig{URL: srv.URL + "/ok", BodyContains: `"healthy"`}},
		{name: "substring missing", cfg: probes.HTTPConfig{URL: srv.URL + "/ok", BodyContains: "sick"}, want: probes.ReasonBody, msg: `http: the body (38 bytes read) does not contain "sick"`},
		{name: "regexp", cfg: probes.HTTPConfig{URL: srv.URL + "/ok", BodyMatch: regexp.MustCompile(`"version":"1\.\d+`)}},
		{name: "regexp missing", cfg: probes.HTTPConfig{URL: srv.URL + "/ok", BodyMatch: regexp.MustCompile(`"version":"2\.`)}, want: probes.ReasonBody, msg: `http: the body (38 bytes read) does not match "\"version\":\"2\\."`},
		{name: "body read bounded", cfg: probes.HTTPConfig{URL: srv.URL + "/big", BodyContains: "needle", MaxBodyBytes: 1024}, want: probes.ReasonBody, msg: `http: the body (1024 bytes read) does not contain "needle"`},
		{name: "body within bound", cfg: probes.HTTPConfig{URL: srv.URL + "/big", BodyContains: "needle"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := check(t, newHTTP(t, tc.cfg), tc.want)
			if tc.msg != "" && err.Error() != tc.msg {
				t.Errorf("message %q, want %q", err, tc.msg)
			}
		})
	}
}

// A hanging server times the probe out at the context's deadline, and
// the message says so without the URL (which carries a token here).
func TestHTTPTimeoutHidesURL(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	p := newHTTP(t, probes.HTTPConfig{URL: srv.URL + "/?token=s3cr3t"})
	start := time.Now()
	lat, err := p.Probe(probeCtx(t, 100*time.Millisecond))
	if probes.ReasonOf(err) != probes.ReasonTimeout || lat != 0 {
		t.Fatalf("%v, %v: want a timeout", lat, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("probe returned after %v, its deadline was 100ms", took)
	}
	if err.Error() != "http GET: no answer before the deadline" {
		t.Errorf("message %q", err)
	}
}

func TestHTTPRefusedHidesURL(t *testing.T) {
	p := newHTTP(t, probes.HTTPConfig{URL: "http://" + closedPort(t) + "/health?token=s3cr3t"})
	err := check(t, p, probes.ReasonRefused)
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "/health") {
		t.Errorf("message shows the URL: %q", err)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("message %q does not say the connection was refused", err)
	}
}

func TestHTTPDNS(t *testing.T) {
	p := newHTTP(t, probes.HTTPConfig{URL: "http://no-such-host.invalid/"})
	check(t, p, probes.ReasonDNS)
}

func TestNewHTTPRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  probes.HTTPConfig
		want string
	}{
		{probes.HTTPConfig{URL: "ftp://x/?token=s3cr3t"}, "http probe: want an http:// or https:// URL with a host"},
		{probes.HTTPConfig{URL: "http:///path"}, "http probe: want an http:// or https:// URL with a host"},
		{probes.HTTPConfig{URL: "http://x", ExpectStatus: []int{200, 999}}, "http probe: expected status 999 is not an HTTP status code (100 to 599)"},
	} {
		if _, err := probes.NewHTTP(tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// closedPort is a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// writeCA writes srv's certificate, which is its own CA, as a PEM file.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func tlsConfig(t *testing.T, c probes.TLS) *tls.Config {
	t.Helper()
	cfg, err := c.Config()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TLS is verified by default: a server whose CA is unknown fails with
// reason tls and a message that says what to do; its CA configured, or
// verification turned off, the probe passes; a name the certificate does
// not carry fails.
func TestHTTPSVerification(t *testing.T) {
	srv := tlsServer(t, nil)

	err := check(t, newHTTP(t, probes.HTTPConfig{URL: srv.URL}), probes.ReasonTLS)
	if want := "http GET: TLS: the server's certificate is signed by an unknown authority: give its CA (tls ca-file)"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	ca := writeCA(t, srv)
	check(t, newHTTP(t, probes.HTTPConfig{URL: srv.URL, TLS: tlsConfig(t, probes.TLS{CAFile: ca})}), "")
	check(t, newHTTP(t, probes.HTTPConfig{URL: srv.URL, TLS: tlsConfig(t, probes.TLS{InsecureSkipVerify: true})}), "")
	err = check(t, newHTTP(t, probes.HTTPConfig{URL: srv.URL, TLS: tlsConfig(t, probes.TLS{CAFile: ca, ServerName: "other.test"})}), probes.ReasonTLS)
	if !strings.Contains(err.Error(), "not valid for the name asked") {
		t.Errorf("message %q does not name the mismatch", err)
	}
}

// tlsServer is an HTTPS server whose handshake errors (which the tests
// cause on purpose) are not logged.
func tlsServer(t *testing.T, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// A server that requires a client certificate refuses the probe without
// one (reason tls) and accepts it with the configured cert-file and
// key-file.
func TestHTTPSClientCertificate(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "prober"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	srv := tlsServer(t, &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	ca := writeCA(t, srv)

	err = check(t, newHTTP(t, probes.HTTPConfig{URL: srv.URL, TLS: tlsConfig(t, probes.TLS{CAFile: ca})}), probes.ReasonTLS)
	if want := "http GET: TLS: the server requires a client certificate: give tls cert-file and key-file"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	check(t, newHTTP(t, probes.HTTPConfig{URL: srv.URL, TLS: tlsConfig(t, probes.TLS{CAFile: ca, CertFile: certFile, KeyFile: keyFile})}), "")
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tls  probes.TLS
		want string
	}{
		{probes.TLS{CAFile: notPEM}, "tls ca-file " + notPEM + " holds no PEM certificate"},
		{probes.TLS{CAFile: filepath.Join(dir, "missing.pem")}, "tls ca-file: open " + filepath.Join(dir, "missing.pem") + ": no such file or directory"},
		{probes.TLS{CertFile: notPEM}, "tls cert-file and key-file go together: give both or neither"},
	} {
		if _, err := tc.tls.Config(); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.tls, err, tc.want)
		}
	}
}

func TestReasonOf(t *testing.T) {
	if r := probes.ReasonOf(nil); r != "" {
		t.Errorf("nil: %q", r)
	}
	if r := probes.ReasonOf(errors.New("odd")); r != probes.ReasonError {
		t.Errorf("plain error: %q", r)
	}
	if r := probes.ReasonOf(context.DeadlineExceeded); r != probes.ReasonTimeout {
		t.Errorf("deadline: %q", r)
	}
}
