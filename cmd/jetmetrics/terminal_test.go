package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// terminal is this test binary running main (runMainEnv) under a
// pseudo-terminal made by util-linux's script(1): what a command does on
// a real terminal, without a pty library. Everything the command writes
// to the terminal is collected; what is written to script's stdin is
// typed on the terminal (Ctrl-C is "\x03").
type terminal struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	err   error // script's exit, the command's exit status (-e); set once done is closed

	mu  sync.Mutex
	out bytes.Buffer
}

// startTerminal runs "jetmetrics args..." on a terminal, with stdout
// redirected to the file stdoutTo when it is not "" (so that the
// terminal shows only stderr). The process is killed when the test ends.
// Without script the test is skipped, and fails when CI=true.
func startTerminal(t *testing.T, stdoutTo string, args ...string) *terminal {
	t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		const why = "script(1) from util-linux is not installed (apt-get install util-linux): no pseudo-terminal to run the command on"
		if os.Getenv("CI") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	line := "exec " + shellQuote(os.Args[0])
	for _, a := range args {
		line += " " + shellQuote(a)
	}
	if stdoutTo != "" {
		line += " >" + shellQuote(stdoutTo)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tm := &terminal{done: make(chan struct{})}
	tm.cmd = exec.CommandContext(ctx, script, "-qfec", line, "/dev/null")
	tm.cmd.Env = append(os.Environ(), runMainEnv+"=1", "SHELL=/bin/sh", "TERM=xterm")
	tm.cmd.Stdout = tm
	tm.cmd.Stderr = tm
	if tm.stdin, err = tm.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := tm.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		tm.err = tm.cmd.Wait()
		close(tm.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-tm.done
		if t.Failed() {
			t.Logf("terminal:\n%q", tm.output())
		}
	})
	return tm
}

func (tm *terminal) Write(p []byte) (int, error) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.Write(p)
}

func (tm *terminal) output() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.String()
}

// wait waits up to d for the command to exit and returns its exit error.
func (tm *terminal) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-tm.done:
		return tm.err
	case <-time.After(d):
		t.Fatalf("the command did not exit within %v", d)
		return nil
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// On a terminal top redraws in place: each frame starts with the escape
// codes that home the cursor and clear the screen, one frame every
// --interval, until Ctrl-C, which ends it with exit code 0.
func TestTopOnATerminal(t *testing.T) {
	rn := harness.StartNode(t, node.Config{})
	tm := startTerminal(t, "", "top", "--web.url="+rn.URL, "--interval=200ms", "--self")
	const clear = "\x1b[H\x1b[2J"
	harness.Eventually(t, 30*time.Second, func() error {
		select {
		case <-tm.done:
			t.Fatalf("top exited on a terminal before Ctrl-C: %v", tm.err)
		default:
		}
		out := tm.output()
		if n := strings.Count(out, clear+"jetmetrics top  "+rn.URL); n < 2 {
			return fmt.Errorf("%d frames drawn in place, want 2 or more", n)
		}
		return nil
	})
	if _, err := tm.stdin.Write([]byte{0x03}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	if err := tm.wait(t, 30*time.Second); err != nil {
		t.Fatalf("top after Ctrl-C: %v, want exit code 0", err)
	}
	if out := tm.output(); !strings.Contains(out, "RATE/S") || strings.Contains(out, "jetmetrics:") {
		t.Errorf("frames lack their table, or top reported an error: %q", out)
	}
}

// progressLine is a progress report rewritten in place: a carriage
// return, the verb and n/total.
var progressLine = regexp.MustCompile(`\r(read|checked) \d+/3`)

// On a terminal dlq ls and dlq replay write their progress to stderr,
// rewritten in place with "\r" and cleared at the end ("\r" and erase
// line), while stdout, a file here, gets the listing alone; in a pipe
// (dlqRun) they write nothing to stderr.
func TestDLQProgressOnATerminal(t *testing.T) {
	rn := harness.StartNode(t, node.Config{Name: "n1", RedisURL: harness.Redis(t).URL(), MaxSeriesPerMetric: 2, Limits: series.Limits{MaxLabels: 1}})
	produceRejected(t, rn)
	nats := "--nats.url=" + rn.NATSURL()
	harness.Eventually(t, 30*time.Second, func() error {
		out, err := dlqRun(t, "ls", nats)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "\n3 letters") {
			return errors.New("the 3 dead letters are not there yet")
		}
		return nil
	})

	for _, tc := range []struct {
		args []string
		verb string
		want string // on stdout
	}{
		{[]string{"ls", nats}, "read", "3 letters"},
		{[]string{"replay", nats, "--all", "--dry-run"}, "checked", "dry run: "},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			stdout := filepath.Join(t.TempDir(), "stdout")
			tm := startTerminal(t, stdout, append([]string{"dlq"}, tc.args...)...)
			if err := tm.wait(t, 60*time.Second); err != nil {
				t.Fatalf("dlq %s on a terminal: %v\n%q", tc.args[0], err, tm.output())
			}
			term := tm.output()
			m := progressLine.FindStringIndex(term)
			if m == nil || !strings.HasPrefix(term[m[0]:], "\r"+tc.verb+" ") {
				t.Fatalf("no %q progress rewritten in place on the terminal: %q", tc.verb, term)
			}
			if !strings.Contains(term[m[1]:], "\r\x1b[K") {
				t.Errorf("the progress line is not cleared at the end: %q", term)
			}
			b, err := os.ReadFile(stdout)
			if err != nil {
				t.Fatal(err)
			}
			if out := string(b); !strings.Contains(out, tc.want) || strings.ContainsAny(out, "\r\x1b") {
				t.Errorf("stdout %q: want %q, and no progress", out, tc.want)
			}
		})
	}
}
