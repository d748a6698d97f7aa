package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// composeFile is the compose example shipped in deploy/.
const composeFile = "../../deploy/compose/compose.yaml"

// Every node of the compose example, with its environment and its secrets
// in place of /run/secrets, passes --check-config: the cluster example
// keeps up with the safe defaults (authentication, route TLS).
func TestComposeNodesPassCheckConfig(t *testing.T) {
	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Secrets     []yaml.Node       `yaml:"secrets"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	pki := harness.TLSFiles(t)
	// The files the secrets' sources stand for.
	files := map[string]string{
		"nats-users":          writeSecret(t, "users:\n  - user: ops\n    password: \"$2a$11$abcdefghijklmnopqrstuu7SxQnTg1L8sEpVwwfTE8E5eRPd0YV7e\"\n    role: admin\n"),
		"nats-route-password": writeSecret(t, "route-password\n"),
		"route-ca":            pki.CAFile,
	}
	nodes := 0
	for name, svc := range compose.Services {
		if !strings.HasPrefix(name, "node-") {
			continue
		}
		nodes++
		files[name+"-cert"], files[name+"-key"] = pki.CertFile, pki.KeyFile
		t.Run(name, func(t *testing.T) {
			mounted := map[string]string{}
			for _, s := range svc.Secrets {
				var long struct{ Source, Target string }
				switch s.Kind {
				case yaml.ScalarNode:
					long.Source, long.Target = s.Value, s.Value
				default:
					if err := s.Decode(&long); err != nil {
						t.Fatal(err)
					}
				}
				f, ok := files[long.Source]
				if !ok {
					t.Fatalf("secret %s: unknown to the test", long.Source)
				}
				mounted["/run/secrets/"+long.Target] = f
			}
			for k, v := range svc.Environment {
				if strings.HasPrefix(v, "/run/secrets/") {
					f, ok := mounted[v]
					if !ok {
						t.Fatalf("%s=%s: no such secret mounted in %s", k, v, name)
					}
					v = f
				}
				t.Setenv(k, v)
			}
			t.Setenv("JETMETRICS_DATA_DIR", t.TempDir())
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), []string{"node", "--check-config"}, &stdout, &stderr); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
		})
	}
	if nodes != 3 {
		t.Errorf("%d node services, want 3", nodes)
	}
}
