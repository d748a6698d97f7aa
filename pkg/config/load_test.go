package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/config"
)

// inlineSecret is a credential written inline; no error may show it.
const inlineSecret = "hunter2-b7f3c1"

// load writes content to jetmetrics.yaml in a new working directory,
// with the files given beside it, and loads it by its relative name.
func load(t *testing.T, content string, files map[string]string) (config.File, error) {
	t.Helper()
	t.Chdir(t.TempDir())
	for name, body := range files {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile("jetmetrics.yaml", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Load("jetmetrics.yaml")
}

// Every class of mistake is one line naming the file, the line and the
// key path, exactly as below.
func TestLoadRefusesMistakes(t *testing.T) {
	secrets := map[string]string{"token": "T0ken\n", "empty": "", "pw": "pw\n"}
	for _, tc := range []struct {
		name, yaml, want string
	}{
		// Decoding.
		{"unknown top key", "observer:\n  volume: {}\n",
			`jetmetrics.yaml:1: observer: unknown key (did you mean observers?)`},
		{"unknown volume key", "volumes:\n  - name: a\n    backend: local\n    device: sda\n  - name: b\n    endpont: http://x\n",
			`jetmetrics.yaml:6: volumes[1].endpont: unknown key (did you mean endpoint?)`},
		{"unknown key, far from any", "observers:\n  volume:\n    zzzzzzzzzzzz: 1\n",
			`jetmetrics.yaml:3: observers.volume.zzzzzzzzzzzz: unknown key (want one of cache-ttl, history-depth, max-concurrent, observe-interval, observe-timeout)`},
		{"observer key on a volume", "volumes:\n  - name: a\n    observe-interval: 5s\n",
			`jetmetrics.yaml:3: volumes[0].observe-interval: unknown key: observe-interval is set for every volume, under observers.volume`},
		{"unknown key with odd characters", "observers:\n  \"vol ume\": {}\n",
			`jetmetrics.yaml:2: observers["vol ume"]: unknown key (did you mean volume?)`},
		{"duration with a space", "observers:\n  volume:\n    observe-interval: 10 s\n",
			`jetmetrics.yaml:3: observers.volume.observe-interval: "10 s" is not a duration (e.g. 10s, 1m30s)`},
		{"duration in words", "observers:\n  volume:\n    cache-ttl: ten\n",
			`jetmetrics.yaml:3: observers.volume.cache-ttl: "ten" is not a duration (e.g. 10s, 1m30s)`},
		{"duration without unit", "observers:\n  volume:\n    observe-timeout: 10\n",
			`jetmetrics.yaml:3: observers.volume.observe-timeout: "10" is not a duration (e.g. 10s, 1m30s)`},
		{"duration a list", "observers:\n  volume:\n    observe-timeout: [1s]\n",
			`jetmetrics.yaml:3: observers.volume.observe-timeout: want a duration (e.g. 10s, 1m30s), got a list`},
		{"negative duration", "observers:\n  volume:\n    observe-interval: -10s\n",
			`jetmetrics.yaml:3: observers.volume.observe-interval: -10s is negative`},
		{"negative number", "observers:\n  volume:\n    history-depth: -5\n",
			`jetmetrics.yaml:3: observers.volume.history-depth: -5 is negative`},
		{"number in words", "observers:\n  volume:\n    history-depth: ten\n",
			`jetmetrics.yaml:3: observers.volume.history-depth: want a whole number, got a string "ten"`},
		{"fraction", "observers:\n  volume:\n    max-concurrent: 1.5\n",
			`jetmetrics.yaml:3: observers.volume.max-concurrent: want a whole number, got a number "1.5"`},
		{"number out of range", "observers:\n  volume:\n    history-depth: 99999999999999999999\n",
			`jetmetrics.yaml:3: observers.volume.history-depth: "99999999999999999999" is out of range`},
		{"explicit zero", "observers:\n  volume:\n    cache-ttl: 0s\n",
			`jetmetrics.yaml:3: observers.volume.cache-ttl: 0 would mean the default (30s): leave the key out for it, or give more than 0`},
		{"volumes a mapping", "volumes:\n  name: a\n",
			`jetmetrics.yaml:2: volumes: want a list (lines starting with -), got a mapping`},
		{"volume a string", "volumes:\n  - a\n",
			`jetmetrics.yaml:2: volumes[0]: want a mapping (key: value lines), got a string`},
		{"string a mapping", "volumes:\n  - name: {a: b}\n",
			`jetmetrics.yaml:2: volumes[0].name: want a string, got a mapping`},
		{"bool a string", "volumes:\n  - name: a\n    tls:\n      insecure-skip-verify: maybe\n",
			`jetmetrics.yaml:4: volumes[0].tls.insecure-skip-verify: want true or false, got a string "maybe"`},
		{"top a list", "- a\n",
			`jetmetrics.yaml:1: want a mapping (key: value lines), got a list`},
		{"duplicate key", "volumes:\n  - name: a\n    backend: local\n    name: b\n",
			`jetmetrics.yaml:4: volumes[0].name: duplicate key (first at line 2): keep one`},
		{"duplicate top key", "observers: {}\nvolumes: []\nobservers: {}\n",
			`jetmetrics.yaml:3: observers: duplicate key (first at line 1): keep one`},
		{"second document", "volumes: []\n---\nvolumes: []\n",
			`jetmetrics.yaml:2: a second YAML document: put everything in one (remove the --- line)`},
		{"not YAML", "volumes:\n\t- name: a\n",
			`jetmetrics.yaml:2: not valid YAML: found character that cannot start any token`},
		{"alias", "volumes:\n  - &a {name: a, backend: local, device: sda}\n  - *a\n",
			`jetmetrics.yaml:3: volumes[1]: aliases (*a) are not supported: write the value out`},
		{"inline secret", "volumes:\n  - name: a\n    backend: netapp\n    password: " + inlineSecret + "\n",
			`jetmetrics.yaml:4: volumes[0].password: an inline secret is refused: give {file: PATH} or {env: VARIABLE} (and change the credential if this file was shared)`},
		{"inline header secret", "volumes:\n  - name: a\n    headers:\n      Authorization: Bearer " + inlineSecret + "\n",
			`jetmetrics.yaml:4: volumes[0].headers.Authorization: an inline secret is refused: give {file: PATH} or {env: VARIABLE} (and change the credential if this file was shared)`},

		// Validation.
		{"interval under 1s", "observers:\n  volume:\n    observe-interval: 500ms\n",
			`jetmetrics.yaml:3: observers.volume.observe-interval: 500ms is under the minimum of 1s`},
		{"timeout over interval", "observers:\n  volume:\n    observe-interval: 2s\n    observe-timeout: 3s\n",
			`jetmetrics.yaml:4: observers.volume.observe-timeout: 3s is longer than observe-interval (2s): a poll must end before the next one starts`},
		{"default timeout over interval", "observers:\n  volume:\n    observe-interval: 2s\n    observe-timeout: 5s\n",
			`jetmetrics.yaml:4: observers.volume.observe-timeout: 5s is longer than observe-interval (2s): a poll must end before the next one starts`},
		{"name missing", "volumes:\n  - backend: local\n    device: sda\n",
			`jetmetrics.yaml:2: volumes[0].name: required: the volume's name in the API and the metrics`},
		{"name too long", "volumes:\n  - name: " + strings.Repeat("n", 256) + "\n",
			`jetmetrics.yaml:2: volumes[0].name: 256 bytes long: want at most 255`},
		{"name twice", "volumes:\n  - name: a\n    backend: local\n    device: sda\n  - name: a\n    backend: local\n    device: sdb\n",
			`jetmetrics.yaml:5: volumes[1].name: "a" is also the name of volumes[0] (line 2): names must be unique`},
		{"backend missing", "volumes:\n  - name: a\n",
			`jetmetrics.yaml:2: volumes[0].backend: required: one of local, purestorage, netapp, http-json`},
		{"backend misspelt", "volumes:\n  - name: a\n    backend: pure-storage\n",
			`jetmetrics.yaml:3: volumes[0].backend: "pure-storage" is not a backend kind (did you mean purestorage?)`},
		{"backend unknown", "volumes:\n  - name: a\n    backend: gpfs\n",
			`jetmetrics.yaml:3: volumes[0].backend: "gpfs" is not a backend kind (want one of http-json, local, netapp, purestorage)`},
		{"key of another backend", "volumes:\n  - name: a\n    backend: netapp\n    device: sda\n",
			`jetmetrics.yaml:4: volumes[0].device: not used by a netapp volume (only by local): remove it, or fix the backend`},
		{"local without device", "volumes:\n  - name: a\n    backend: local\n",
			`jetmetrics.yaml:2: volumes[0]: a local volume needs device (a block device as /proc/diskstats names it, e.g. sda) or mount (an NFS mount point)`},
		{"local with both", "volumes:\n  - name: a\n    backend: local\n    device: sda\n    mount: /mnt\n",
			`jetmetrics.yaml:5: volumes[0].mount: give device or mount, not both`},
		{"local /dev path", "volumes:\n  - name: a\n    backend: local\n    device: /dev/sda\n",
			`jetmetrics.yaml:4: volumes[0].device: "/dev/sda": give the name /proc/diskstats shows (sda), not its /dev path`},
		{"local relative mount", "volumes:\n  - name: a\n    backend: local\n    mount: mnt/nfs\n",
			`jetmetrics.yaml:4: volumes[0].mount: "mnt/nfs" is not an absolute path`},
		{"pure without endpoint", "volumes:\n  - name: a\n    backend: purestorage\n",
			`jetmetrics.yaml:2: volumes[0].endpoint: required for a purestorage volume: the backend's http(s) URL`},
		{"pure without token", "volumes:\n  - name: a\n    backend: purestorage\n    endpoint: https://array.example\n",
			`jetmetrics.yaml:2: volumes[0].api-token: required: give {file: PATH} or {env: VARIABLE}`},
		{"endpoint not http", "volumes:\n  - name: a\n    backend: purestorage\n    endpoint: ftp://array.example\n",
			`jetmetrics.yaml:4: volumes[0].endpoint: want an http:// or https:// URL with a host`},
		{"endpoint without host", "volumes:\n  - name: a\n    backend: purestorage\n    endpoint: array.example/api\n",
			`jetmetrics.yaml:4: volumes[0].endpoint: want an http:// or https:// URL with a host`},
		{"endpoint with credentials", "volumes:\n  - name: a\n    backend: netapp\n    endpoint: https://admin:" + inlineSecret + "@ontap.example\n",
			`jetmetrics.yaml:4: volumes[0].endpoint: credentials in the URL are refused: give them as secrets (username and password, api-token, or headers)`},
		{"netapp without user", "volumes:\n  - name: a\n    backend: netapp\n    endpoint: https://ontap.example\n",
			`jetmetrics.yaml:2: volumes[0].username: required for a netapp volume: the ONTAP user`},
		{"netapp without password", "volumes:\n  - name: a\n    backend: netapp\n    endpoint: https://ontap.example\n    username: u\n",
			`jetmetrics.yaml:2: volumes[0].password: required: give {file: PATH} or {env: VARIABLE}`},
		{"secret empty mapping", "volumes:\n  - name: a\n    backend: netapp\n    endpoint: https://ontap.example\n    username: u\n    password: {}\n",
			`jetmetrics.yaml:6: volumes[0].password: required: give {file: PATH} or {env: VARIABLE}`},
		{"secret both", "volumes:\n  - name: a\n    backend: netapp\n    endpoint: https://ontap.example\n    username: u\n    password: {file: pw, env: PW}\n",
			`jetmetrics.yaml:6: volumes[0].password: give file or env, not both`},
		{"secret unknown key", "volumes:\n  - name: a\n    backend: netapp\n    password: {value: x}\n",
			`jetmetrics.yaml:4: volumes[0].password.value: unknown key (want one of env, file)`},
		{"secret file missing", "volumes:\n  - name: a\n    backend: purestorage\n    endpoint: https://array.example\n    api-token:\n      file: nope\n",
			`jetmetrics.yaml:6: volumes[0].api-token.file: stat nope: no such file or directory`},
		{"secret file empty", "volumes:\n  - name: a\n    backend: purestorage\n    endpoint: https://array.example\n    api-token:\n      file: empty\n",
			`jetmetrics.yaml:6: volumes[0].api-token.file: secret file empty is empty`},
		{"secret file a directory", "volumes:\n  - name: a\n    backend: purestorage\n    endpoint: https://array.example\n    api-token:\n      file: .\n",
			`jetmetrics.yaml:6: volumes[0].api-token.file: . is not a regular file`},
		{"secret env not a name", "volumes:\n  - name: a\n    backend: purestorage\n    endpoint: https://array.example\n    api-token:\n      env: " + inlineSecret + "\n",
			`jetmetrics.yaml:6: volumes[0].api-token.env: not an environment variable name (letters, digits and _, not starting with a digit): is it the secret itself? Then change it`},
		{"http-json without fields", "volumes:\n  - name: a\n    backend: http-json\n    endpoint: http://127.0.0.1:8080/perf\n",
			`jetmetrics.yaml:2: volumes[0].fields: required for an http-json volume: map at least one of iops-read, iops-write, throughput-read, throughput-write, latency-read, latency-write to a JSON path`},
		{"http-json unknown figure", "volumes:\n  - name: a\n    backend: http-json\n    endpoint: http://127.0.0.1:8080/perf\n    fields:\n      iops-red: data.iops\n",
			`jetmetrics.yaml:6: volumes[0].fields.iops-red: unknown figure (did you mean iops-read?)`},
		{"http-json bad path", "volumes:\n  - name: a\n    backend: http-json\n    endpoint: http://127.0.0.1:8080/perf\n    fields:\n      iops-read: data..iops\n",
			`jetmetrics.yaml:6: volumes[0].fields.iops-read: "data..iops" is not a JSON path: want dot-separated keys, e.g. data.read.iops`},
		{"http-json bad header", "volumes:\n  - name: a\n    backend: http-json\n    endpoint: http://127.0.0.1:8080/perf\n    headers:\n      \"X Token\": {env: TOKEN}\n    fields: {iops-read: a}\n",
			`jetmetrics.yaml:6: volumes[0].headers["X Token"]: not a valid HTTP header name`},
		{"tls on http", "volumes:\n  - name: a\n    backend: purestorage\n    endpoint: http://array.example\n    tls: {server-name: array}\n",
			`jetmetrics.yaml:5: volumes[0].tls: set, but the endpoint is http://: use https:// or remove tls`},
		{"tls cert without key", "volumes:\n  - name: a\n    backend: purestorage\n    endpoint: https://array.example\n    tls:\n      cert-file: token\n",
			`jetmetrics.yaml:5: volumes[0].tls: cert-file and key-file go together: give both or neither`},
		{"tls ca missing", "volumes:\n  - name: a\n    backend: purestorage\n    endpoint: https://array.example\n    tls:\n      ca-file: ca.pem\n",
			`jetmetrics.yaml:6: volumes[0].tls.ca-file: stat ca.pem: no such file or directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yaml, secrets)
			if err == nil {
				t.Fatalf("loaded; want %s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
			if strings.Contains(err.Error(), inlineSecret) || strings.Contains(err.Error(), "T0ken") {
				t.Errorf("the error shows a secret: %s", err)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.File != "jetmetrics.yaml" || ce.Line == 0 {
				t.Errorf("error %#v, want a *config.Error with file and line", err)
			}
		})
	}
}

func TestLoadDecodes(t *testing.T) {
	f, err := load(t, `
observers:
  volume:
    observe-interval: 1m30s
    observe-timeout: 20s
    history-depth: 0x10   # YAML integers in any base
volumes:
  - name: 2024        # a number is a fine name
    backend: netapp
    endpoint: https://ontap.example
    username: monitor
    password: {file: pw}
    tls:
      insecure-skip-verify: true
  - name: web
    backend: http-json
    endpoint: http://127.0.0.1:8080/perf
    headers:
      Authorization: {env: PERF_TOKEN}
    fields:
      iops-read: data.read.iops
  - name: null-keys
    backend: local
    device: sda
    endpoint:
`, map[string]string{"pw": "p\n"})
	if err != nil {
		t.Fatal(err)
	}
	o := f.Observers.Volume
	if o.ObserveInterval != 90*time.Second || o.ObserveTimeout != 20*time.Second || o.HistoryDepth != 16 || o.CacheTTL != 0 {
		t.Errorf("observer = %+v", o)
	}
	if len(f.Volumes) != 3 {
		t.Fatalf("volumes = %+v", f.Volumes)
	}
	v := f.Volumes[0]
	if v.Name != "2024" || v.Username != "monitor" || v.Password.File != "pw" || !v.TLS.InsecureSkipVerify {
		t.Errorf("volume 0 = %+v", v)
	}
	if got, err := v.Password.Value(); err != nil || got != "p" {
		t.Errorf("password = %q, %v", got, err)
	}
	if f.Volumes[1].Headers["Authorization"].Env != "PERF_TOKEN" || f.Volumes[1].Fields["iops-read"] != "data.read.iops" {
		t.Errorf("volume 1 = %+v", f.Volumes[1])
	}
}

// Relative secret and TLS paths are relative to the file's directory,
// not to the working directory.
func TestLoadResolvesPathsBesideTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "jetmetrics.yaml")
	if err := os.WriteFile(path, []byte("volumes:\n  - name: a\n    backend: purestorage\n    endpoint: https://array.example\n    api-token: {file: token}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Volumes[0].APIToken.File; got != filepath.Join(dir, "token") {
		t.Errorf("api-token file = %s, want it beside the configuration file", got)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	for _, content := range []string{"", "# nothing yet\n", "---\n", "observers:\nvolumes:\n"} {
		f, err := load(t, content, nil)
		if err != nil {
			t.Errorf("%q: %v", content, err)
		}
		if len(f.Volumes) != 0 {
			t.Errorf("%q: volumes %+v", content, f.Volumes)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error = %v, want one line naming the file", err)
	}
}

// A File built in Go is validated alike, its errors naming the key.
func TestValidateWithoutFile(t *testing.T) {
	f := config.File{
		Observers: config.Observers{Volume: config.Observer{CacheTTL: -time.Second}},
	}
	if err := f.Validate(); err == nil || err.Error() != "observers.volume.cache-ttl: -1s is negative" {
		t.Errorf("error = %v", err)
	}
	f = config.File{Volumes: []config.Volume{{Name: "a", Backend: config.BackendLocal, Device: "sda"}, {Name: "b", Backend: "x"}}}
	if err := f.Validate(); err == nil || err.Error() != `volumes[1].backend: "x" is not a backend kind (want one of http-json, local, netapp, purestorage)` {
		t.Errorf("error = %v", err)
	}
	if err := (config.File{}).Validate(); err != nil {
		t.Errorf("empty file: %v", err)
	}
}
