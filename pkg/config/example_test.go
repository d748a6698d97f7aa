package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/config"
)

// The example shipped in deploy/ loads and validates, and holds every
// backend kind: it is what operators copy.
func TestDeployExampleLoads(t *testing.T) {
	b, err := os.ReadFile("../../deploy/jetmetrics.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Installed as /etc/jetmetrics/jetmetrics.yaml with its secret file
	// and CA beside it.
	dir := t.TempDir()
	for name, content := range map[string]string{
		"jetmetrics.yaml": string(b),
		"netapp-password": "pw\n",
		"ontap-ca.pem":    "-----BEGIN CERTIFICATE-----\n",
		"shop-ca.pem":     "-----BEGIN CERTIFICATE-----\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := config.Load(filepath.Join(dir, "jetmetrics.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Observers.Volume.WithDefaults(); got != (config.Observer{}).WithDefaults() {
		t.Errorf("the example's observer settings %+v are not the defaults it documents", got)
	}
	if got := f.Observers.Probe.WithDefaults(); got != (config.Observer{}).WithDefaults() {
		t.Errorf("the example's probe observer settings %+v are not the defaults it documents", got)
	}
	probeKinds := map[string]bool{}
	for _, p := range f.Probes {
		probeKinds[p.Kind] = true
	}
	for _, k := range []string{config.ProbeHTTP, config.ProbeTCP, config.ProbeNATS} {
		if !probeKinds[k] {
			t.Errorf("the example has no %s probe", k)
		}
	}
	kinds := map[string]bool{}
	for _, v := range f.Volumes {
		kinds[v.Backend] = true
	}
	for _, k := range []string{config.BackendLocal, config.BackendPureStorage, config.BackendNetApp, config.BackendHTTPJSON} {
		if !kinds[k] {
			t.Errorf("the example has no %s volume", k)
		}
	}

	// Without the secret file beside it, it is refused, naming the key.
	if err := os.Remove(filepath.Join(dir, "netapp-password")); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(filepath.Join(dir, "jetmetrics.yaml")); err == nil || !strings.Contains(err.Error(), "volumes[3].password.file: stat ") {
		t.Errorf("error = %v, want one naming volumes[3].password.file", err)
	}
}
