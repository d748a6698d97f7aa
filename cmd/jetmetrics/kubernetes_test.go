package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// statefulSetFile is the Kubernetes example shipped in deploy/.
const statefulSetFile = "../../deploy/kubernetes/statefulset.yaml"

// The StatefulSet's container args, with $(VAR) expanded as the kubelet
// does and its Secret mounts in place, pass --check-config for every
// replica: the args are real `jetmetrics node` flags and keep up with the
// safe defaults (authentication, route TLS).
func TestKubernetesArgsPassCheckConfig(t *testing.T) {
	raw, err := os.ReadFile(statefulSetFile)
	if err != nil {
		t.Fatal(err)
	}
	var sts appsv1.StatefulSet
	if err := yaml.UnmarshalStrict(raw, &sts); err != nil {
		t.Fatal(err)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	pki := harness.TLSFiles(t)
	// The files the Secrets' keys stand for, by mount path.
	secrets := map[string]string{
		"/etc/jetmetrics/nats/users.yaml":     writeSecret(t, "users:\n  - user: ops\n    password: \"$2a$11$abcdefghijklmnopqrstuu7SxQnTg1L8sEpVwwfTE8E5eRPd0YV7e\"\n    role: admin\n"),
		"/etc/jetmetrics/nats/route-password": writeSecret(t, "route-password\n"),
		"/etc/jetmetrics/route-tls/tls.crt":   pki.CertFile,
		"/etc/jetmetrics/route-tls/tls.key":   pki.KeyFile,
		"/etc/jetmetrics/route-tls/ca.crt":    pki.CAFile,
	}
	mounts := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = true
	}
	for i := range *sts.Spec.Replicas {
		pod := sts.Name + "-" + string(rune('0'+i))
		t.Run(pod, func(t *testing.T) {
			env := map[string]string{}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
					env[e.Name] = pod
				case e.ValueFrom == nil:
					env[e.Name] = e.Value
				default:
					t.Fatalf("env %s: a source the test does not know", e.Name)
				}
			}
			args := []string{"node", "--check-config"}
			for _, a := range c.Args {
				a = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(a, func(m string) string {
					v, ok := env[m[2:len(m)-1]]
					if !ok {
						t.Fatalf("%s: no env %s", a, m)
					}
					return v
				})
				k, v, _ := strings.Cut(a, "=")
				if strings.HasPrefix(v, "/etc/jetmetrics/") {
					f, ok := secrets[v]
					if !ok || !mounts[filepath.Dir(v)] {
						t.Fatalf("%s: %s is not a mounted Secret key the test knows", k, v)
					}
					a = k + "=" + f
				}
				if k == "--data.dir" {
					a = k + "=" + t.TempDir()
				}
				args = append(args, a)
			}
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
		})
	}
}
