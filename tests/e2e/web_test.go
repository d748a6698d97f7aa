package e2e_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// pki is a CA made for one test, with a server certificate for 127.0.0.1
// and a client certificate, written as PEM files into dir.
type pki struct {
	dir    string
	pool   *x509.CertPool
	client tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey := genKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "jetmetrics test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", caDER)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key := genKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	srvDER, srvKey := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	writePEM(t, filepath.Join(dir, "server.crt"), "CERTIFICATE", srvDER)
	writePEM(t, filepath.Join(dir, "server.key"), "EC PRIVATE KEY", marshalKey(t, srvKey))
	cliDER, cliKey := leaf(3, "prometheus", x509.ExtKeyUsageClientAuth)
	client, err := tls.X509KeyPair(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cliDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: marshalKey(t, cliKey)}))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &pki{dir: dir, pool: pool, client: client}
}

func genKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func marshalKey(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// webConfig writes an exporter-toolkit web configuration file into dir.
func webConfig(t *testing.T, dir, content string) string {
	t.Helper()
	path := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// client is an HTTPS client that verifies the node against pool and, with
// cert, presents a client certificate. It keeps no connection open.
func (p *pki) httpClient(withCert bool) *http.Client {
	cfg := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	if withCert {
		cfg.Certificates = []tls.Certificate{p.client}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true, ForceAttemptHTTP2: true}}
}

// startWebNode runs a node as harness.StartNode does, logging to
// cfg.Logger, but waits until
// ready, given the node's address, returns nil: the scheme, credentials and
// expected answer are the test's to choose. It returns the address.
func startWebNode(t *testing.T, cfg node.Config, ready func(addr string) error) string {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "web"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.WebListen = "127.0.0.1:0"
	cfg.NATSListen = "127.0.0.1:0"
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
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
	harness.Eventually(t, time.Minute, func() error { return ready(n.WebAddr()) })
	return n.WebAddr()
}

// get requests url and returns the status and protocol, or the
// transport's error.
func get(c *http.Client, method, url, user, pass string) (int, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Proto, nil
}

// TestWebConfigTLSAndAuth: with --web.config.file, every endpoint needs
// the basic auth the file lists, over TLS a client verifies with the test's
// CA; /-/healthy only when configured open; with client_auth_type
// RequireAndVerifyClientCert a client without a certificate is refused at
// the handshake.
func TestWebConfigTLSAndAuth(t *testing.T) {
	p := newPKI(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := fmt.Sprintf("basic_auth_users:\n  prometheus: %s\n", hash)
	type request struct {
		path, user, pass string
		cert             bool
		want             int // 0: the TLS handshake fails
	}
	for _, tc := range []struct {
		name        string
		tls         string
		healthyOpen bool
		proto       string // default HTTP/2.0, which the web config enables by default
		requests    []request
	}{
		{
			name:        "tls and basic auth, healthy open",
			tls:         "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
			healthyOpen: true,
			requests: []request{
				{path: "/metrics", want: 401},
				{path: "/metrics", user: "prometheus", pass: "wrong", want: 401},
				{path: "/metrics", user: "nobody", pass: "s3cret", want: 401},
				{path: "/metrics", user: "prometheus", pass: "s3cret", want: 200},
				{path: "/metrics/cluster?format=json", want: 401},
				{path: "/metrics/cluster?format=json", user: "prometheus", pass: "s3cret", want: 200},
				{path: "/api/v1/nodes", want: 401},
				{path: "/-/ready", want: 401},
				{path: "/-/ready", user: "prometheus", pass: "s3cret", want: 200},
				{path: "/", want: 401},
				{path: "/-/healthy", want: 200},
			},
		},
		{
			name: "mutual tls and basic auth",
			tls:  "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
			requests: []request{
				{path: "/metrics", user: "prometheus", pass: "s3cret", want: 0},
				{path: "/-/healthy", want: 0},
				{path: "/metrics", cert: true, want: 401},
				{path: "/metrics", cert: true, user: "prometheus", pass: "s3cret", want: 200},
				{path: "/-/healthy", cert: true, want: 401},
				{path: "/-/healthy", cert: true, user: "prometheus", pass: "s3cret", want: 200},
			},
		},
		{
			name:  "tls without http2",
			tls:   "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nhttp_server_config:\n  http2: false\n",
			proto: "HTTP/1.1",
			requests: []request{
				{path: "/metrics", want: 401},
				{path: "/metrics", user: "prometheus", pass: "s3cret", want: 200},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := webConfig(t, p.dir, tc.tls+users)
			withCert := p.httpClient(true)
			// exporter-toolkit's lines are events of the node's logger.
			var logs lockedBuffer
			logger := zerolog.New(zerolog.MultiLevelWriter(&logs, zerolog.NewTestWriter(t))).Level(zerolog.DebugLevel)
			addr := startWebNode(t, node.Config{WebConfigFile: path, WebHealthyWithoutAuth: tc.healthyOpen, Logger: logger}, func(addr string) error {
				code, _, err := get(withCert, http.MethodGet, "https://"+addr+"/-/ready", "prometheus", "s3cret")
				if err == nil && code != 200 {
					err = fmt.Errorf("/-/ready: %d", code)
				}
				return err
			})
			for _, r := range tc.requests {
				code, proto, err := get(p.httpClient(r.cert), http.MethodGet, "https://"+addr+r.path, r.user, r.pass)
				if want := cmp.Or(tc.proto, "HTTP/2.0"); err == nil && proto != want {
					t.Errorf("GET %s: %s, want %s", r.path, proto, want)
				}
				switch {
				case r.want == 0 && err == nil:
					t.Errorf("GET %s (cert %v) answered %d, want a refused handshake", r.path, r.cert, code)
				case r.want != 0 && err != nil:
					t.Errorf("GET %s (cert %v, user %q): %v", r.path, r.cert, r.user, err)
				case r.want != 0 && code != r.want:
					t.Errorf("GET %s (cert %v, user %q, password %q) = %d, want %d", r.path, r.cert, r.user, r.pass, code, r.want)
				}
			}
			if l := logs.String(); !strings.Contains(l, `"component":"http"`) || !strings.Contains(l, "TLS is enabled.") {
				t.Errorf("the node's log lacks exporter-toolkit's TLS line:\n%s", l)
			}
			// Neither a client that does not trust the CA nor a plain HTTP
			// one gets anything.
			untrusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			if code, _, err := get(untrusting, http.MethodGet, "https://"+addr+"/metrics", "prometheus", "s3cret"); err == nil {
				t.Errorf("a client without the CA got %d", code)
			}
			if code, _, err := get(untrusting, http.MethodGet, "http://"+addr+"/metrics", "prometheus", "s3cret"); err == nil && code == 200 {
				t.Errorf("plain HTTP got %d", code)
			}
		})
	}
}

// TestWebConfigRefused: a web configuration file the node cannot apply is
// refused by Validate (so by --check-config), naming the file and why.
func TestWebConfigRefused(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name, content, why string
	}{
		{"unknown key", "basic_auth_user:\n  a: b\n", "field basic_auth_user not found"},
		{"plain password", "basic_auth_users:\n  prometheus: s3cret\n", "bcrypt"},
		{"missing key file", "tls_server_config:\n  cert_file: server.crt\n", "missing one of key or key_file"},
		{"unreadable certificate", "tls_server_config:\n  cert_file: nowhere.crt\n  key_file: server.key\n", "nowhere.crt"},
		{"bad client auth type", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n", "Sometimes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := webConfig(t, p.dir, tc.content)
			err := node.Config{WebConfigFile: path}.Validate()
			if err == nil || !strings.Contains(err.Error(), "--web.config.file") || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("Validate = %v, want an error naming --web.config.file, %s and %q", err, path, tc.why)
			}
		})
	}
	if err := (node.Config{WebConfigFile: filepath.Join(p.dir, "absent.yml")}).Validate(); err == nil || !strings.Contains(err.Error(), "absent.yml") {
		t.Fatalf("Validate of a missing file = %v", err)
	}
}

// heapPeak samples the heap's live and not yet collected objects until
// stop is closed and returns the highest figure.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// heapNow is the heap's objects after a collection.
func heapNow() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// burstSeries is the aggregate the burst test serves: enough series that
// each JSON view costs megabytes.
const burstSeries = 20000

// TestHTTPBurstBounded: 50 concurrent JSON views of the cluster against a
// node holding a sizeable aggregate get some 503s with Retry-After, the
// others the full view, and the heap grows by no more than the bound
// docs/operations.md gives for --web.max-requests.cluster views in flight.
// 50 concurrent HEADs of the same view all answer 200 without a body or
// any rendering.
func TestHTTPBurstBounded(t *testing.T) {
	rn := harness.StartNode(t, node.Config{WebMaxClusterRequests: 2})
	p, err := producers.New(producers.Config{Node: rn.Name(), Name: "burst", FlushInterval: 50 * time.Millisecond}, rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.NewCounterVec(producers.Opts{Name: "burst_requests_total", Help: "requests by path"}, "path")
	if err != nil {
		t.Fatal(err)
	}
	for i := range burstSeries {
		c.MustWith(fmt.Sprintf("/a/fairly/long/path/number/%06d", i)).Add(uint64(i + 1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	url := rn.URL + "/metrics/cluster?format=json"
	var size int64
	harness.Eventually(t, converge, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if want := fmt.Sprintf(`%06d`, burstSeries-1); resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			return fmt.Errorf("%s: %d, %d bytes, without the last series yet", url, resp.StatusCode, len(body))
		}
		size = int64(len(body))
		return nil
	})

	const burst = 50
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxConnsPerHost: burst, MaxIdleConnsPerHost: burst}}
	defer client.CloseIdleConnections()
	run := func(method string) (codes map[int]int, retryAfter bool, bodies int64) {
		codes = map[int]int{}
		var mu sync.Mutex
		var got atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range burst {
			wg.Go(func() {
				<-start
				req, _ := http.NewRequest(method, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				got.Add(n)
				mu.Lock()
				defer mu.Unlock()
				codes[resp.StatusCode]++
				if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
					retryAfter = true
				}
			})
		}
		close(start)
		wg.Wait()
		return codes, retryAfter, got.Load()
	}

	base := heapNow()
	stop := make(chan struct{})
	peak := heapPeak(stop)
	codes, retryAfter, _ := run(http.MethodGet)
	close(stop)
	growth := int64(<-peak) - int64(base)
	// The bound docs/operations.md states: 1 KiB per series of the view
	// for each view in flight (measured: about 0.7 KiB), with room for
	// the rejected requests' and the client's own buffers, and for garbage
	// not yet collected: GOGC lets the heap grow by the live heap first.
	bound := int64(2)*burstSeries<<10 + 32<<20 + int64(base)
	t.Logf("JSON view %d bytes; %d requests: %v; heap %d MiB before, peak growth %d MiB, bound %d MiB",
		size, burst, codes, base>>20, growth>>20, bound>>20)
	if codes[http.StatusServiceUnavailable] == 0 || !retryAfter {
		t.Errorf("burst of %d: %v, want some 503 with Retry-After", burst, codes)
	}
	if codes[http.StatusOK] == 0 {
		t.Errorf("burst of %d: %v, want some served", burst, codes)
	}
	if growth > bound {
		t.Errorf("heap grew by %d MiB in the burst, over the bound of %d MiB", growth>>20, bound>>20)
	}

	codes, _, bodies := run(http.MethodHead)
	if codes[http.StatusOK] != burst || bodies != 0 {
		t.Errorf("HEAD burst: %v, %d body bytes; want %d times 200 and no body", codes, bodies, burst)
	}
}

// TestHeadRendersNothing: HEAD /metrics answers GET's status and content
// type without a body and without rendering (promhttp counts every
// rendering /metrics serves).
func TestHeadRendersNothing(t *testing.T) {
	rn := harness.StartNode(t, node.Config{})
	rendered := func() float64 {
		fams, err := harness.Scrape(rn.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return harness.Samples(fams)[`promhttp_metric_handler_requests_total{code="200"}`]
	}
	before := rendered()
	for _, path := range []string{"/metrics", "/metrics/cluster", "/metrics/cluster?format=json", "/api/v1/nodes", "/-/ready", "/-/healthy"} {
		resp, err := http.Head(rn.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Type") == "" {
			t.Errorf("HEAD %s: %d, %d body bytes, Content-Type %q", path, resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
		}
	}
	// The scrape before counted itself once it was done.
	if after := rendered(); after != before+1 {
		t.Errorf("/metrics rendered %v times for the HEAD requests", after-before-1)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestIdleConnectionsBounded: hundreds of idle connections against a low
// --web.max-connections hold at most that many of the node's file
// descriptors; meanwhile the node keeps applying deltas, and once they are
// gone /metrics serves every delta and /-/ready is 200.
func TestIdleConnectionsBounded(t *testing.T) {
	const limit, idle = 16, 300
	rn := harness.StartNode(t, node.Config{WebMaxConnections: limit})
	p, err := producers.New(producers.Config{Node: rn.Name(), Name: "busy", FlushInterval: 20 * time.Millisecond}, rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.NewCounter(producers.Opts{Name: "busy_ticks_total", Help: "ticks"})
	if err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	addr := strings.TrimPrefix(rn.URL, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range idle {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	// Every connection is the test's client side; the node may hold at
	// most limit server sides, plus a few descriptors of its own.
	fdBound := func() {
		t.Helper()
		if grown := openFDs(t) - before; grown > idle+limit+32 {
			t.Fatalf("%d idle connections grew the process's descriptors by %d, over %d client sides and %d accepted", idle, grown, idle, limit)
		}
	}
	fdBound()
	const ticks = 2000
	for range ticks {
		c.Inc()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Applying goes on behind the idle connections: the node is ready,
	// which it is not while its aggregator stands still with deltas
	// pending.
	harness.Eventually(t, converge, func() error { return rn.Ready(ctx) })
	fdBound()
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	expectMetrics(t, rn.URL+"/metrics", map[string]float64{"busy_ticks_total": ticks}, nil)
	resp, err := http.Get(rn.URL + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/-/ready after the idle connections: %s", resp.Status)
	}
}

// TestReadyWhileStalled: /-/ready is 503, saying why, while the aggregator
// applies nothing although the stream holds deltas for the node (Redis
// refuses writes: CLIENT PAUSE WRITE keeps answering PING and reads), and
// 200 again once it has applied them.
func TestReadyWhileStalled(t *testing.T) {
	rs := harness.Redis(t)
	rc := harness.RedisClient(t, rs)
	rn := harness.StartNode(t, node.Config{RedisURL: rs.URL(), ReadyStallAfter: time.Second})
	p, err := producers.New(producers.Config{Node: rn.Name(), Name: "stalled", FlushInterval: 20 * time.Millisecond}, rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.NewCounter(producers.Opts{Name: "stalled_total", Help: "ticks"})
	if err != nil {
		t.Fatal(err)
	}
	c.Inc()
	expectMetrics(t, rn.URL+"/metrics", map[string]float64{"stalled_total": 1}, nil)

	ctx, cancel := context.WithTimeout(context.Background(), converge)
	defer cancel()
	if err := rc.Do(ctx, "CLIENT", "PAUSE", "60000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	paused := true
	defer func() {
		if paused {
			rc.Do(context.Background(), "CLIENT", "UNPAUSE")
		}
	}()
	c.Add(41)
	ready := func() (int, string) {
		resp, err := http.Get(rn.URL + "/-/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	harness.Eventually(t, converge, func() error {
		if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "not applying deltas") {
			return fmt.Errorf("/-/ready: %d %s", code, body)
		}
		return nil
	})
	if err := rc.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	paused = false
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	expectMetrics(t, rn.URL+"/metrics", map[string]float64{"stalled_total": 42}, nil)
	harness.Eventually(t, converge, func() error {
		if code, body := ready(); code != http.StatusOK {
			return fmt.Errorf("/-/ready: %d %s", code, body)
		}
		return nil
	})
}

// TestReadyWhileBehind: /-/ready is 503, saying why, while /metrics cannot
// serve the aggregate because it is older than one an earlier incarnation
// may have served (the node restarted on a Redis that holds less than the
// stream, and cannot write yet), though the aggregator is consuming and
// has not stood still for --web.ready-stall-after.
func TestReadyWhileBehind(t *testing.T) {
	rs := harness.Redis(t)
	rc := harness.RedisClient(t, rs)
	cfg := node.Config{Name: "behind", DataDir: t.TempDir(), RedisURL: rs.URL(), ReadyStallAfter: time.Hour, Logger: harness.Logger(t)}
	rn := harness.StartNode(t, cfg)
	p, err := producers.New(producers.Config{Node: rn.Name(), Name: "behind", FlushInterval: 20 * time.Millisecond}, rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.NewCounter(producers.Opts{Name: "behind_total", Help: "ticks"})
	if err != nil {
		t.Fatal(err)
	}
	c.Inc()
	expectMetrics(t, rn.URL+"/metrics", map[string]float64{"behind_total": 1}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), converge)
	defer cancel()
	if err := rc.Do(ctx, "CLIENT", "PAUSE", "60000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	paused := true
	defer func() {
		if paused {
			rc.Do(context.Background(), "CLIENT", "UNPAUSE")
		}
	}()
	c.Add(41)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rn.Stop(t)

	var url string
	startWebNode(t, cfg, func(addr string) error {
		url = "http://" + addr
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "/metrics: aggregate is at stream seq") {
			return fmt.Errorf("/-/ready: %d %s", resp.StatusCode, body)
		}
		return nil
	})
	if err := rc.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	paused = false
	expectMetrics(t, url+"/metrics", map[string]float64{"behind_total": 42}, nil)
	harness.Eventually(t, converge, func() error {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	})
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
