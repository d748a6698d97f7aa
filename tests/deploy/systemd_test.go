package deploy_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/tests/harness"
)

const unitFile = "../../deploy/systemd/jetmetrics.service"

// unitDirectives returns the [Service] section's directives, each with
// every value it is given.
func unitDirectives(t *testing.T) (map[string][]string, []byte) {
	t.Helper()
	raw, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	d := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			d[k] = append(d[k], v)
		}
	}
	return d, raw
}

// The unit runs the node under a dynamic user with its state directory,
// and the hardening operators expect of a network daemon.
func TestSystemdUnitHardening(t *testing.T) {
	d, _ := unitDirectives(t)
	for k, want := range map[string]string{
		"DynamicUser":             "yes",
		"StateDirectory":          "jetmetrics",
		"Environment":             "JETMETRICS_DATA_DIR=/var/lib/jetmetrics",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"NoNewPrivileges":         "yes",
		"PrivateTmp":              "yes",
		"CapabilityBoundingSet":   "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
	} {
		found := false
		for _, v := range d[k] {
			found = found || v == want
		}
		if !found {
			t.Errorf("[Service] %s=%s missing (have %q)", k, want, d[k])
		}
	}
	if v := d["LimitNOFILE"]; len(v) != 1 || v[0] == "" {
		t.Errorf("LimitNOFILE %q, want one value", v)
	}
	if _, ok := d["User"]; ok {
		t.Error("User= with DynamicUser: the dynamic user is the one to run as")
	}
}

// systemd-analyze verify accepts the unit: every directive known, every
// value parsed, the ExecStart binary present. verify needs no running
// systemd but does need the binary, so the unit is checked as a copy whose
// ExecStart is a freshly built jetmetrics; any warning fails the test
// (verify warns on unknown keys and bad values and still exits 0).
func TestSystemdUnitVerifies(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is not installed, and CI is set: run `go tool task systemd-analyze` (Debian's systemd package)")
		}
		t.Skip("systemd-analyze is not installed: run `go tool task systemd-analyze` (Debian's systemd package)")
	}
	_, raw := unitDirectives(t)
	execStart := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/jetmetrics `)
	if !execStart.Match(raw) {
		t.Fatal("ExecStart is not /usr/local/bin/jetmetrics")
	}
	unit := filepath.Join(t.TempDir(), "jetmetrics.service")
	if err := os.WriteFile(unit, execStart.ReplaceAll(raw, []byte("ExecStart="+harness.Binary(t)+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := osexec(tool, "verify", unit)
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func osexec(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	return cmd.CombinedOutput()
}
