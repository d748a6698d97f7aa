package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

const webSecret = "w3b-Secr3t-91x"

// startTLSAuthNode runs a node whose --web.config.file asks for TLS with
// pki's certificate and basic auth of user "ops" with webSecret, and
// returns its https:// URL once it listens.
func startTLSAuthNode(t *testing.T, pki *harness.PKI) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(webSecret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(t.TempDir(), "web.yml")
	content := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  ops: %s\n", pki.CertFile, pki.KeyFile, hash)
	if err := os.WriteFile(webCfg, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	n := harness.LaunchNode(t, node.Config{Name: "secure", WebConfigFile: webCfg}).Node
	return "https://" + n.WebAddr()
}

// runCmd runs the CLI with args and returns stdout, stderr and the error.
func runCmd(args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// status and top reach a node with TLS signed by a private CA and basic
// auth: with the CA and the right password (from a file or
// JETMETRICS_WEB_PASSWORD) they work; a wrong or missing password is exit 1
// with one line naming HTTP 401; without the CA the certificate is refused
// unless --web.insecure-skip-verify, which warns. The password shows in no
// output.
func TestStatusBasicAuthAndPrivateCA(t *testing.T) {
	pki := harness.TLSFiles(t)
	url := startTLSAuthNode(t, pki)
	right := writeSecret(t, webSecret+"\n")
	wrong := writeSecret(t, "not-the-password")
	auth := []string{"--web.url=" + url, "--web.ca-file=" + pki.CAFile, "--web.username=ops"}

	var rep statusReport
	harness.Eventually(t, 60*time.Second, func() error {
		out, _, err := runCmd(append([]string{"status", "--output=json", "--web.password-file=" + right}, auth...)...)
		if err != nil {
			return err
		}
		rep = statusReport{}
		return json.Unmarshal([]byte(out), &rep)
	})
	if rep.Node != "secure" || !rep.Ready || len(rep.Nodes) != 1 || len(rep.Streams) == 0 {
		t.Errorf("status over TLS with basic auth: %+v", rep)
	}

	t.Setenv(webPasswordEnv, webSecret)
	out, errOut, err := runCmd(append([]string{"status"}, auth...)...)
	if err != nil || !strings.Contains(out, "node secure at "+url+": READY") {
		t.Errorf("status with %s: %v\n%s", webPasswordEnv, err, out)
	}
	if strings.Contains(out+errOut, webSecret) {
		t.Errorf("the password shows in the output:\n%s%s", out, errOut)
	}
	out, _, err = runCmd(append([]string{"top", "--once", "--interval=100ms", "--self"}, auth...)...)
	if err != nil || !strings.Contains(out, "jetmetrics top  "+url) {
		t.Errorf("top with %s: %v\n%s", webPasswordEnv, err, out)
	}
	// Both the variable and the file: refused, as is a user without a password.
	if _, _, err := runCmd(append([]string{"status", "--web.password-file=" + right}, auth...)...); exitCode(err) != 2 || !strings.Contains(err.Error(), "give it once") {
		t.Errorf("password in a file and in %s: %v (exit %d), want exit 2", webPasswordEnv, err, exitCode(err))
	}
	t.Setenv(webPasswordEnv, "")
	os.Unsetenv(webPasswordEnv)
	if _, _, err := runCmd(append([]string{"status"}, auth...)...); exitCode(err) != 2 || !strings.Contains(err.Error(), "--web.password-file") {
		t.Errorf("user without a password: %v (exit %d), want exit 2", err, exitCode(err))
	}

	for _, cmd := range [][]string{{"status"}, {"top", "--once"}} {
		for name, args := range map[string][]string{
			"wrong password": append([]string{"--web.password-file=" + wrong}, auth...),
			"no credentials": {"--web.url=" + url, "--web.ca-file=" + pki.CAFile},
		} {
			out, errOut, err := runCmd(append(cmd, args...)...)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if exitCode(err) != 1 || !strings.Contains(msg, "HTTP 401") || strings.Contains(msg, "\n") || strings.Contains(msg+out+errOut, webSecret) {
				t.Errorf("%s with %s: %q (exit %d), want exit 1 and one line naming HTTP 401", cmd[0], name, msg, exitCode(err))
			}
		}
	}

	_, _, err = runCmd("status", "--web.url="+url, "--web.username=ops", "--web.password-file="+right, "--timeout=5s")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("status without the CA: %v, want the certificate refused", err)
	}
	_, errOut, err = runCmd("status", "--web.url="+url, "--web.username=ops", "--web.password-file="+right, "--web.insecure-skip-verify")
	if err != nil || !strings.Contains(errOut, "warning: --web.insecure-skip-verify") {
		t.Errorf("status --web.insecure-skip-verify: %v, stderr %q: want it to work with a warning", err, errOut)
	}
	if _, _, err := runCmd("status", "--web.url=http://127.0.0.1:1", "--web.ca-file="+pki.CAFile); exitCode(err) != 2 {
		t.Errorf("--web.ca-file with http://: %v, want exit 2", err)
	}
}
