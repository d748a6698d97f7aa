package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/config"
)

// Every mistake in a probe is one line naming the file, the line and the
// key path, exactly as below.
func TestLoadRefusesProbeMistakes(t *testing.T) {
	files := map[string]string{"ca.pem": "not checked here\n"}
	const head = "probes:\n  - name: web\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		// Decoding.
		{"unknown key", head + "    kind: http\n    targt: http://x\n",
			`jetmetrics.yaml:4: probes[0].targt: unknown key (did you mean target?)`},
		{"interval on a probe", head + "    interval: 5s\n",
			`jetmetrics.yaml:3: probes[0].interval: unknown key: interval is set for every probe, under observers.probe (a probe's own bound is timeout)`},
		{"observer key on a probe", head + "    observe-timeout: 5s\n",
			`jetmetrics.yaml:3: probes[0].observe-timeout: unknown key: observe-timeout is set for every probe, under observers.probe (a probe's own bound is timeout)`},
		{"expect-status a number", head + "    expect-status: 200\n",
			`jetmetrics.yaml:3: probes[0].expect-status: want a list (lines starting with -), got a number`},
		{"expect-status a string", head + "    expect-status: [200, 2xx]\n",
			`jetmetrics.yaml:3: probes[0].expect-status[1]: want a whole number, got a string "2xx"`},
		{"explicit zero timeout", head + "    timeout: 0s\n",
			`jetmetrics.yaml:3: probes[0].timeout: 0 would mean the default (observers.probe.observe-timeout): leave the key out for it, or give more than 0`},
		{"probe observer zero", "observers:\n  probe:\n    observe-interval: 0s\n",
			`jetmetrics.yaml:3: observers.probe.observe-interval: 0 would mean the default (10s): leave the key out for it, or give more than 0`},

		// Validation.
		{"probe observer interval", "observers:\n  probe:\n    observe-interval: 100ms\n",
			`jetmetrics.yaml:3: observers.probe.observe-interval: 100ms is under the minimum of 1s`},
		{"name missing", "probes:\n  - kind: tcp\n",
			`jetmetrics.yaml:2: probes[0].name: required: the service's name in the API and the metrics`},
		{"name token too long", "probes:\n  - name: " + strings.Repeat("a.", 20) + "\n",
			`jetmetrics.yaml:2: probes[0].name: "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a." maps to a 80-byte subject token, more than 64 (each byte other than A-Z, a-z, 0-9 and - takes three): shorten it`},
		{"name twice", head + "    kind: tcp\n    target: db:5432\n  - name: web\n    kind: tcp\n    target: db:5432\n",
			`jetmetrics.yaml:5: probes[1].name: "web" is also the name of probes[0] (line 2): names must be unique`},
		{"kind missing", head,
			`jetmetrics.yaml:2: probes[0].kind: required: one of http, tcp, nats`},
		{"kind misspelt", head + "    kind: htp\n",
			`jetmetrics.yaml:3: probes[0].kind: "htp" is not a probe kind (did you mean http?)`},
		{"kind unknown", head + "    kind: icmp-echo\n",
			`jetmetrics.yaml:3: probes[0].kind: "icmp-echo" is not a probe kind (want one of http, nats, tcp)`},
		{"target missing http", head + "    kind: http\n",
			`jetmetrics.yaml:2: probes[0].target: required for a http probe: the http:// or https:// URL to request`},
		{"target missing nats", head + "    kind: nats\n",
			`jetmetrics.yaml:2: probes[0].target: required for a nats probe: the subject to send a request to (a NATS micro service answers $SRV.PING.<name>)`},
		{"key of another kind", head + "    kind: tcp\n    target: db:5432\n    method: HEAD\n",
			`jetmetrics.yaml:5: probes[0].method: not used by a tcp probe (only by http): remove it, or fix the kind`},
		{"nats-url on http", head + "    kind: http\n    target: http://x\n    nats-url: nats://x:4222\n",
			`jetmetrics.yaml:5: probes[0].nats-url: not used by a http probe (only by nats): remove it, or fix the kind`},
		{"tls on tcp", head + "    kind: tcp\n    target: db:5432\n    tls: {server-name: db}\n",
			`jetmetrics.yaml:5: probes[0].tls: not used by a tcp probe (only by http, nats): remove it, or fix the kind`},
		{"http not a URL", head + "    kind: http\n    target: web.example/health?token=s3cr3t\n",
			`jetmetrics.yaml:4: probes[0].target: want an http:// or https:// URL with a host`},
		{"http credentials", head + "    kind: http\n    target: https://u:s3cr3t@web.example/\n",
			`jetmetrics.yaml:4: probes[0].target: credentials in the URL are refused: probe an endpoint that needs none`},
		{"http tls on http", head + "    kind: http\n    target: http://web.example/\n    tls: {insecure-skip-verify: true}\n",
			`jetmetrics.yaml:5: probes[0].tls: set, but the target is http://: use https:// or remove tls`},
		{"http method lowercase", head + "    kind: http\n    target: http://web.example/\n    method: get\n",
			`jetmetrics.yaml:5: probes[0].method: "get" is not an HTTP method: want one in capitals, e.g. GET, HEAD, POST`},
		{"http status out of range", head + "    kind: http\n    target: http://web.example/\n    expect-status:\n      - 200\n      - 2000\n",
			`jetmetrics.yaml:7: probes[0].expect-status[1]: 2000 is not an HTTP status code (100 to 599)`},
		{"http bad regexp", head + "    kind: http\n    target: http://web.example/\n    body-match: \"ok(\"\n",
			"jetmetrics.yaml:5: probes[0].body-match: not a regular expression (RE2 syntax: escape . ( [ * + ? with \\): error parsing regexp: missing closing ): `ok(`"},
		{"http tls ca missing", head + "    kind: http\n    target: https://web.example/\n    tls:\n      ca-file: missing.pem\n",
			`jetmetrics.yaml:6: probes[0].tls.ca-file: stat missing.pem: no such file or directory`},
		{"http tls insecure with ca", head + "    kind: http\n    target: https://web.example/\n    tls:\n      ca-file: ca.pem\n      insecure-skip-verify: true\n",
			`jetmetrics.yaml:7: probes[0].tls.insecure-skip-verify: turns verification off, so ca-file and server-name would be ignored: keep one or the other`},
		{"tcp no port", head + "    kind: tcp\n    target: db.example\n",
			`jetmetrics.yaml:4: probes[0].target: "db.example" is not host:port (e.g. db.example.com:5432, [::1]:6379)`},
		{"tcp port out of range", head + "    kind: tcp\n    target: db.example:70000\n",
			`jetmetrics.yaml:4: probes[0].target: "db.example:70000" is not host:port (e.g. db.example.com:5432, [::1]:6379)`},
		{"nats wildcard", head + "    kind: nats\n    target: orders.*\n",
			`jetmetrics.yaml:4: probes[0].target: "orders.*" is not a subject to send a request to: dot-separated tokens, no spaces or wildcards`},
		{"nats tls without url", head + "    kind: nats\n    target: $SRV.PING\n    tls: {ca-file: ca.pem}\n",
			`jetmetrics.yaml:5: probes[0].tls: set, but there is no nats-url: the node's own connection has its own TLS; give nats-url or remove tls`},
		{"nats url scheme", head + "    kind: nats\n    target: $SRV.PING\n    nats-url: http://nats.example:4222\n",
			`jetmetrics.yaml:5: probes[0].nats-url: want nats://, tls://, ws:// or wss:// URLs with a host, comma-separated`},
		{"nats url credentials", head + "    kind: nats\n    target: $SRV.PING\n    nats-url: nats://a:4222,nats://u:s3cr3t@b:4222\n",
			`jetmetrics.yaml:5: probes[0].nats-url: credentials in the URL are refused: probe through a server that needs none, or through the node's own connection (leave nats-url out)`},
		{"timeout over observer's", head + "    kind: tcp\n    target: db:5432\n    timeout: 6s\n",
			`jetmetrics.yaml:5: probes[0].timeout: 6s is longer than observers.probe.observe-timeout (5s), which bounds every probe: shorten it, or raise that`},
		{"timeout over set observer's", "observers:\n  probe:\n    observe-timeout: 1s\n" + head + "    kind: tcp\n    target: db:5432\n    timeout: 2s\n",
			`jetmetrics.yaml:8: probes[0].timeout: 2s is longer than observers.probe.observe-timeout (1s), which bounds every probe: shorten it, or raise that`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yaml, files)
			if err == nil {
				t.Fatalf("loaded; want %s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("the error shows a credential: %s", err)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.File != "jetmetrics.yaml" || ce.Line == 0 {
				t.Errorf("error %#v, want a *config.Error with file and line", err)
			}
		})
	}
}

func TestLoadDecodesProbes(t *testing.T) {
	f, err := load(t, `
observers:
  probe:
    observe-interval: 30s
    observe-timeout: 10s
probes:
  - name: shop/home
    kind: http
    target: https://shop.example/health
    method: HEAD
    expect-status: [200, 204]
    body-match: '"status":\s*"ok"'
    follow-redirects: true
    timeout: 2s
    tls:
      ca-file: ca.pem
  - name: db
    kind: tcp
    target: "[::1]:5432"
  - name: orders
    kind: nats
    target: $SRV.PING.orders
  - name: billing
    kind: nats
    target: billing.health
    nats-url: tls://nats-a.example:4222, tls://nats-b.example:4222
    tls: {server-name: nats.example}
`, map[string]string{"ca.pem": "x\n"})
	if err != nil {
		t.Fatal(err)
	}
	if o := f.Observers.Probe; o.ObserveInterval != 30*time.Second || o.ObserveTimeout != 10*time.Second {
		t.Errorf("observer = %+v", o)
	}
	if len(f.Probes) != 4 {
		t.Fatalf("probes = %+v", f.Probes)
	}
	want := config.Probe{Name: "shop/home", Kind: config.ProbeHTTP, Target: "https://shop.example/health", Method: "HEAD",
		ExpectStatus: []int{200, 204}, BodyMatch: `"status":\s*"ok"`, FollowRedirects: true, Timeout: 2 * time.Second,
		TLS: config.TLS{CAFile: "ca.pem"}} // beside the file, loaded as ./jetmetrics.yaml
	if got := f.Probes[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("probe 0\n got %+v\nwant %+v", got, want)
	}
	if p := f.Probes[1]; p.Kind != config.ProbeTCP || p.Target != "[::1]:5432" {
		t.Errorf("probe 1 = %+v", p)
	}
	if p := f.Probes[2]; p.Kind != config.ProbeNATS || p.Target != "$SRV.PING.orders" || p.NATSURL != "" {
		t.Errorf("probe 2 = %+v", p)
	}
	if p := f.Probes[3]; p.NATSURL != "tls://nats-a.example:4222, tls://nats-b.example:4222" || p.TLS.ServerName != "nats.example" {
		t.Errorf("probe 3 = %+v", p)
	}
}

// A probe's TLS files are relative to the configuration file's directory.
func TestLoadResolvesProbePathsBesideTheFile(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"ca.pem": "x\n", "c.pem": "x\n", "k.pem": "x\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "jetmetrics.yaml")
	content := "probes:\n  - name: a\n    kind: http\n    target: https://a.example\n    tls: {ca-file: ca.pem, cert-file: c.pem, key-file: k.pem}\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := config.TLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "k.pem")}
	if got := f.Probes[0].TLS; got != want {
		t.Errorf("tls = %+v, want %+v", got, want)
	}
}
