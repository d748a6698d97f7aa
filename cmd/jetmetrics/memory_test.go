package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/memlimit"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

func TestMemoryLimitFlagValues(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		env   map[string]string
		want  memlimit.Setting
		ratio float64
	}{
		{nil, nil, memlimit.Setting{Auto: true}, 0.9},
		{[]string{"--memory.limit=auto", "--memory.limit-ratio=1"}, nil, memlimit.Setting{Auto: true}, 1},
		{[]string{"--memory.limit=none"}, nil, memlimit.Setting{}, 0.9},
		{[]string{"--memory.limit=0"}, nil, memlimit.Setting{}, 0.9},
		{[]string{"--memory.limit=512MiB"}, nil, memlimit.Setting{Bytes: 512 << 20}, 0.9},
		{[]string{"--memory.limit=1.5GB"}, nil, memlimit.Setting{Bytes: 1_500_000_000}, 0.9},
		{[]string{"--memory.limit=33554432"}, nil, memlimit.Setting{Bytes: 32 << 20}, 0.9},
		{nil, map[string]string{"JETMETRICS_MEMORY_LIMIT": "2GiB", "JETMETRICS_MEMORY_LIMIT_RATIO": "0.5"}, memlimit.Setting{Bytes: 2 << 30}, 0.5},
		{[]string{"--memory.limit=1GiB"}, map[string]string{"JETMETRICS_MEMORY_LIMIT": "2GiB"}, memlimit.Setting{Bytes: 1 << 30}, 0.9},
	} {
		t.Run(fmt.Sprint(tc.args, tc.env), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, opts, err := nodeConfig(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if opts.memoryLimit != tc.want || opts.memoryLimitRatio != tc.ratio {
				t.Errorf("limit %+v ratio %v, want %+v ratio %v", opts.memoryLimit, opts.memoryLimitRatio, tc.want, tc.ratio)
			}
		})
	}
}

// Every refused value is refused at --check-config, in one line naming
// the flag and what it wants.
func TestMemoryLimitFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--memory.limit=lots"}, nil, `invalid value "lots" for --memory.limit: want auto, none (or 0), or a size such as 512MiB`},
		{[]string{"--memory.limit=-1"}, nil, `invalid value "-1" for --memory.limit: want auto, none`},
		{[]string{"--memory.limit=512XB"}, nil, `invalid value "512XB" for --memory.limit: want auto, none`},
		{[]string{"--memory.limit="}, nil, `invalid value "" for --memory.limit: want auto, none`},
		{[]string{"--memory.limit=512"}, nil, `invalid value "512" for --memory.limit: want at least 32MiB, or none`},
		{[]string{"--memory.limit=16MiB"}, nil, `invalid value "16MiB" for --memory.limit: want at least 32MiB`},
		{[]string{"--memory.limit=9223372036854775808"}, nil, `invalid value "9223372036854775808" for --memory.limit: want at most 8EiB`},
		{nil, map[string]string{"JETMETRICS_MEMORY_LIMIT": "2 gigs"}, `invalid value "2 gigs" for --memory.limit`},
		{[]string{"--memory.limit-ratio=0"}, nil, `invalid value "0" for --memory.limit-ratio: want a fraction in (0, 1]`},
		{[]string{"--memory.limit-ratio=1.1"}, nil, `invalid value "1.1" for --memory.limit-ratio`},
		{[]string{"--memory.limit-ratio=-0.5"}, nil, `invalid value "-0.5" for --memory.limit-ratio`},
		{[]string{"--memory.limit-ratio=NaN"}, nil, `invalid value "NaN" for --memory.limit-ratio`},
		{[]string{"--memory.limit-ratio=most"}, nil, `-memory.limit-ratio`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"node", "--check-config"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if exitCode(err) != 2 {
				t.Errorf("exit code %d, want 2", exitCode(err))
			}
		})
	}
}

// A node process started with --memory.limit runs under that soft limit,
// GOMEMLIMIT in its environment notwithstanding, and /metrics shows it; with
// auto it leaves GOMEMLIMIT's. The log says which and why.
func TestMemoryLimitOnMetrics(t *testing.T) {
	harness.Binary(t)                // built without the variable below
	t.Setenv("GOMEMLIMIT", "400MiB") // the node processes inherit it
	for _, tc := range []struct {
		name   string
		args   []string
		want   float64
		source string
		msg    string
	}{
		{"given", []string{"--memory.limit=300MiB"}, 300 << 20, "flag", "overriding GOMEMLIMIT"},
		{"auto", nil, 400 << 20, "GOMEMLIMIT", "left to GOMEMLIMIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := harness.StartProcessNode(t, harness.ProcessNodeConfig{Name: "mem", ExtraArgs: tc.args})
			p.WaitReady(60 * time.Second)
			fams, err := harness.Scrape(p.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := harness.Samples(fams)["go_gc_gomemlimit_bytes"]; !ok || got != tc.want {
				t.Errorf("go_gc_gomemlimit_bytes = %v (present %v), want %v", got, ok, tc.want)
			}
			var logged map[string]any
			for line := range strings.Lines(p.Output()) {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) == nil && strings.Contains(fmt.Sprint(m["message"]), "soft memory limit") {
					logged = m
					break
				}
			}
			if logged == nil || logged["level"] != "info" || logged["source"] != tc.source ||
				logged["memory_limit_bytes"] != tc.want || !strings.Contains(fmt.Sprint(logged["message"]), tc.msg) {
				t.Errorf("memory limit logged as %v, want at info from %s with %v bytes, saying %q\n%s", logged, tc.source, tc.want, tc.msg, p.Output())
			}
		})
	}
}
