package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// publishRun runs "jetmetrics publish args..." and returns its stdout and
// error.
func publishRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"publish"}, args...), &stdout, &stderr)
	return stdout.String(), err
}

// wantSamples waits until /metrics of url holds want, then checks that it
// still does a few scrapes later (nothing counted twice).
func wantSamples(t *testing.T, url string, want map[string]float64) {
	t.Helper()
	check := func() error {
		fams, err := harness.Scrape(url + "/metrics")
		if err != nil {
			return err
		}
		s := harness.Samples(fams)
		for k, v := range want {
			if s[k] != v {
				return fmt.Errorf("%s = %v, want %v", k, s[k], v)
			}
		}
		return nil
	}
	harness.Eventually(t, 30*time.Second, check)
	for range 3 {
		if err := check(); err != nil {
			t.Fatal(err)
		}
	}
}

// Each publish is a producer of its own, acknowledged before exit 0, and
// counted exactly once: a counter twice adds up, a histogram observes.
// Flags may follow the arguments, a negative gauge value is a value.
func TestPublishCountsOnce(t *testing.T) {
	rn := harness.StartNode(t, node.Config{})
	for range 2 {
		out, err := publishRun(t, "--nats.url="+rn.NATSURL(), "--node=n1", "counter", "cli_deploys_total", "2.5", "service=billing", "--timeout=20s")
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if !strings.HasPrefix(out, "acknowledged: counter cli_deploys_total (producer cli-") {
			t.Errorf("stdout = %q", out)
		}
	}
	if _, err := publishRun(t, "--nats.url="+rn.NATSURL(), "--node=n1", "histogram", "cli_seconds", "0.7", "--buckets=0.5,1"); err != nil {
		t.Fatalf("publish histogram: %v", err)
	}
	if _, err := publishRun(t, "--nats.url="+rn.NATSURL(), "--node=n1", "gauge", "cli_temperature", "-4"); err != nil {
		t.Fatalf("publish gauge: %v", err)
	}
	wantSamples(t, rn.URL, map[string]float64{
		`cli_deploys_total{service="billing"}`: 5,
		`cli_seconds_bucket{le="0.5"}`:         0,
		`cli_seconds_bucket{le="1"}`:           1,
		`cli_seconds_count`:                    1,
		`cli_temperature`:                      -4,
	})
}

// Invalid input is refused (exit 1) or a usage error (exit 2) with one
// line naming what is wrong; an unreachable NATS is exit 3 after --timeout.
func TestPublishErrors(t *testing.T) {
	rn := harness.StartNode(t, node.Config{})
	url := "--nats.url=" + rn.NATSURL()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{url, "--node=n1", "counter", "bad-name", "1"}, 1, `refused: metric name "bad-name"`},
		{[]string{"--nats.url=nats://127.0.0.1:1", "--node=n1", "counter", "bad-name", "1"}, 1, `refused: metric name "bad-name"`},
		{[]string{url, "--node=n1", "counter", "x_total", "1", "__x=1"}, 1, `refused: label name "__x"`},
		{[]string{url, "--node=n1", "counter", "x_total", "1", "a=1", "a=2"}, 2, `label "a" given twice`},
		{[]string{url, "--node=n1", "counter", "jetmetrics_x_total", "1"}, 1, "reserved"},
		{[]string{url, "--node=n1", "counter", "x_total", "-1"}, 2, "a counter only goes up"},
		{[]string{url, "--node=n1", "counter", "x_total", "one"}, 2, `value "one"`},
		{[]string{url, "--node=n1", "summary", "x", "1"}, 2, `unknown metric kind "summary"`},
		{[]string{url, "--node=n1", "counter", "x_total"}, 2, "want KIND NAME VALUE"},
		{[]string{url, "--node=n1", "counter", "x_total", "1", "env"}, 2, `label "env"`},
		{[]string{url, "counter", "x_total", "1"}, 2, "--node"},
		{[]string{url, "--node=n1", "--buckets=1,x", "histogram", "x", "1"}, 2, "--buckets"},
		{[]string{url, "--node=n1", "--buckets=1", "counter", "x_total", "1"}, 2, "--buckets"},
		{[]string{"--nats.url=nats://127.0.0.1:1", "--node=n1", "--timeout=300ms", "counter", "x_total", "1"}, 3, "not reached within --timeout=300ms"},
	} {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			_, err := publishRun(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if got := exitCode(err); got != tc.code {
				t.Errorf("exit code %d, want %d", got, tc.code)
			}
		})
	}
}

// writeUsers writes a users file of the embedded NATS.
func writeUsers(t *testing.T, users string, passwords map[string]string) string {
	t.Helper()
	for user, pw := range passwords {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		users = strings.ReplaceAll(users, "HASH("+user+")", string(h))
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// With a users file a producer credential publishes to its node, is
// refused (exit 1, at once, not at --timeout) for a node it may not
// publish to, and a wrong password is refused without echoing it.
func TestPublishWithProducerCredential(t *testing.T) {
	users := writeUsers(t, `users:
  - user: billing
    password: "HASH(billing)"
    role: producer
    owners: [billing]
    nodes: [n1]
`, map[string]string{"billing": "billing-pw"})
	rn := harness.StartNode(t, node.Config{Name: "n1", NATSUsersFile: users})
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("billing-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := []string{"--nats.url=" + rn.NATSURL(), "--nats.user=billing", "--nats.password-file=" + pwFile, "--name=billing"}
	if _, err := publishRun(t, append(creds, "--node=n1", "counter", "billing_invoices_total", "3")...); err != nil {
		t.Fatalf("publish with the producer credential: %v", err)
	}
	wantSamples(t, rn.URL, map[string]float64{"billing_invoices_total": 3})

	start := time.Now()
	_, err := publishRun(t, append(creds, "--node=n2", "--timeout=20s", "counter", "billing_invoices_total", "1")...)
	if err == nil || !strings.Contains(err.Error(), "refused: NATS denies this credential publishing to node n2") || exitCode(err) != 1 {
		t.Fatalf("publish to an unauthorised node: error %v (exit %d), want refused, exit 1", err, exitCode(err))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("refusal took %v, want it before --timeout", d)
	}

	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("Wr0ng-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = publishRun(t, "--nats.url="+rn.NATSURL(), "--nats.user=billing", "--nats.password-file="+wrong, "--name=billing", "--node=n1", "counter", "x_total", "1")
	if err == nil || !strings.Contains(err.Error(), "rejects the credentials") || exitCode(err) != 1 {
		t.Fatalf("wrong password: error %v (exit %d), want rejected credentials, exit 1", err, exitCode(err))
	}
	if strings.Contains(err.Error(), "Wr0ng-secret") {
		t.Errorf("error shows the password: %v", err)
	}
}

// The help of publish and status gives the syntax, an example and the
// exit codes; the top-level help lists both commands.
func TestCLIHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"publish", "-h"}, []string{"counter NAME VALUE [label=value ...]", "example:", "jetmetrics publish --nats.url=", "exit codes:", "3 not acknowledged", "--nats.password-file", "JETMETRICS_NODE"}},
		{[]string{"status", "-h"}, []string{"--web.url", "--output=json", "exit codes:", "1  a problem: the node is not ready"}},
		{[]string{"help"}, []string{"publish", "status", "exit codes:"}},
	} {
		var stdout bytes.Buffer
		if err := run(context.Background(), tc.args, &stdout, &bytes.Buffer{}); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		for _, want := range tc.want {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%v lacks %q:\n%s", tc.args, want, stdout.String())
			}
		}
	}
}

// Into a full delta stream publish is refused with exit 1 and says the
// stream is full and what raises it, once --timeout has passed.
func TestPublishStreamFull(t *testing.T) {
	rn := harness.StartNode(t, node.Config{Streams: streams.Config{DeltaMaxBytes: 16 << 10}})
	help := "--help-text=" + strings.Repeat("h", 2000)
	var err error
	for i := 0; i < 100; i++ { // bounded: the stream holds about 8 of these
		_, err = publishRun(t, "--nats.url="+rn.NATSURL(), "--node=n1", "--timeout=1s", help, "counter", fmt.Sprintf("cli_fill_%d_total", i), "1")
		if err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "refused: the delta stream is full") || !strings.Contains(err.Error(), "--streams.delta-max-bytes") || exitCode(err) != 1 {
		t.Fatalf("publish into a full stream: error %v (exit %d), want it full, exit 1", err, exitCode(err))
	}
}
