package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fileSecret is a credential in a secret file or written inline by
// mistake; no output of the command may hold it.
const fileSecret = "Ff1le-s3cret-92c4"

// configDir writes jetmetrics.yaml with content, and a secret file
// "password" beside it, into a new directory, and returns the file's path.
func configDir(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "jetmetrics.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Each class of mistake in --config.file stops both --check-config and a
// start with one line naming the file, the line and the key; the node does
// not start (its data directory is never made); no secret is shown.
func TestConfigFileMistakesStopTheNode(t *testing.T) {
	const netapp = "volumes:\n  - name: a\n    backend: netapp\n    endpoint: https://ontap.example\n    username: u\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "observers:\n  volume:\n    observe-intervall: 10s\n", ":3: observers.volume.observe-intervall: unknown key (did you mean observe-interval?)"},
		{"wrong type", "volumes: {name: a}\n", ":1: volumes: want a list"},
		{"bad duration", "observers:\n  volume:\n    cache-ttl: 10 s\n", `:3: observers.volume.cache-ttl: "10 s" is not a duration`},
		{"negative number", "observers:\n  volume:\n    history-depth: -1\n", ":3: observers.volume.history-depth: -1 is negative"},
		{"duplicate key", netapp + "    username: v\n", ":6: volumes[0].username: duplicate key (first at line 5)"},
		{"second document", "volumes: []\n---\n", ":2: a second YAML document"},
		{"not YAML", "volumes:\n\t- a\n", ":2: not valid YAML"},
		{"inline secret", netapp + "    password: " + fileSecret + "\n", ":6: volumes[0].password: an inline secret is refused"},
		{"missing secret file", netapp + "    password: {file: nope}\n", ":6: volumes[0].password.file: stat "},
		{"missing required key", "volumes:\n  - name: a\n    backend: purestorage\n", ":2: volumes[0].endpoint: required"},
		{"interval under 1s", "observers:\n  volume:\n    observe-interval: 100ms\n", ":3: observers.volume.observe-interval: 100ms is under the minimum of 1s"},
		{"endpoint with password", "volumes:\n  - name: a\n    backend: netapp\n    endpoint: https://u:" + fileSecret + "@ontap.example\n", ":4: volumes[0].endpoint: credentials in the URL are refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := configDir(t, tc.yaml)
			for _, mode := range []string{"check", "start", "env"} {
				data := filepath.Join(t.TempDir(), "data")
				args := []string{"node", "--data.dir=" + data, "--web.listen-address=127.0.0.1:0", "--nats.listen=", "--log.level=debug"}
				switch mode {
				case "check":
					args = append(args, "--config.file="+path, "--check-config")
				case "start":
					args = append(args, "--config.file="+path)
				case "env":
					t.Setenv("JETMETRICS_CONFIG_FILE", path)
				}
				// A start that is not refused would run: bound it.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				var stdout, stderr bytes.Buffer
				err := run(ctx, args, &stdout, &stderr)
				cancel()
				if err == nil || !strings.HasPrefix(err.Error(), path+tc.want) {
					t.Fatalf("%s: error = %v, want %s%s…", mode, err, path, tc.want)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("%s: error spans lines: %q", mode, err)
				}
				if exitCode(err) != 2 {
					t.Errorf("%s: exit code %d, want 2", mode, exitCode(err))
				}
				if strings.Contains(err.Error()+stdout.String()+stderr.String(), fileSecret) {
					t.Errorf("%s: a secret is shown: %v", mode, err)
				}
				if _, serr := os.Stat(data); !os.IsNotExist(serr) {
					t.Errorf("%s: the node started: its data directory exists (%v)", mode, serr)
				}
			}
		})
	}
}

// A good file passes --check-config, shows none of its secrets, and the
// node's Config carries it; an unreadable path names the flag.
func TestConfigFileCheck(t *testing.T) {
	path := configDir(t, `volumes:
  - name: a
    backend: netapp
    endpoint: https://ontap.example
    username: u
    password: {file: password}
  - name: b
    backend: local
    device: sda
`)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"node", "--config.file=" + path, "--check-config", "--log.level=debug"}, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "configuration is valid") {
		t.Errorf("stdout = %q", stdout.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), fileSecret) {
		t.Error("--check-config shows a secret")
	}

	missing := filepath.Join(t.TempDir(), "nope.yaml")
	err = run(context.Background(), []string{"node", "--config.file=" + missing, "--check-config"}, &stdout, &stderr)
	if err == nil || !strings.HasPrefix(err.Error(), "--config.file: open "+missing) || exitCode(err) != 2 {
		t.Errorf("error = %v, want one naming --config.file and the path", err)
	}
}
