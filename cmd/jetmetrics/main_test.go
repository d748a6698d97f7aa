package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestFlagErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"node", "--web.listen-address=foo"}, nil, "--web.listen-address"},
		{[]string{"node", "--bogus"}, nil, "unknown flag -bogus"},
		{[]string{"node", "--log.level=loud"}, nil, `invalid value "loud" for --log.level`},
		{[]string{"node", "--streams.replicas=9"}, nil, "--streams.replicas"},
		{[]string{"node", "--node.name=a.b"}, nil, "--node.name"},
		{[]string{"node", "--snapshot.ttl=100ms"}, nil, "--snapshot.ttl"},
		{[]string{"node", "--nats.cluster.listen=127.0.0.1:6222"}, nil, "--nats.cluster.routes"},
		{[]string{"node"}, map[string]string{"JETMETRICS_STREAMS_REPLICAS": "x"}, "JETMETRICS_STREAMS_REPLICAS (from --streams.replicas)"},
		{[]string{"node"}, map[string]string{"JETMETRICS_DEMO_INTERVAL": "-1s"}, "--demo.interval"},
		{[]string{"node", "--cluster.peer-forget-after=0s"}, nil, "--cluster.peer-forget-after"},
		{[]string{"node"}, map[string]string{"JETMETRICS_CLUSTER_ORPHAN_SCAN_INTERVAL": "-1s"}, "--cluster.orphan-scan-interval"},
		{[]string{"frobnicate"}, nil, `unknown command "frobnicate"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one naming %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if exitCode(err) != 2 {
				t.Errorf("exit code %d, want 2 for a usage error", exitCode(err))
			}
		})
	}
}

func TestEnvTwinsAndCheckConfig(t *testing.T) {
	t.Setenv("JETMETRICS_NODE_NAME", "from-env")
	t.Setenv("JETMETRICS_STREAMS_REPLICAS", "1")
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"node", "--check-config"}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "configuration is valid") {
		t.Errorf("stdout = %q", stdout.String())
	}
}

// A machine without redis-server gets told how to install it, at once.
func TestMissingRedisSaysHowToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := run(context.Background(), []string{"node", "--data.dir=" + t.TempDir(), "--web.listen-address=127.0.0.1:0", "--nats.listen="}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "apt-get install redis-server") || !strings.Contains(err.Error(), "--redis.url") {
		t.Fatalf("error = %v, want install instructions", err)
	}
}

func TestHelpListsEnvTwins(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"node", "-h"}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--web.listen-address", "JETMETRICS_WEB_LISTEN_ADDRESS", "--redis.url", "--nats.cluster.routes"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %s", want)
		}
	}
}
