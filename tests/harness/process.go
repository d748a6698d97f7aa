package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds the jetmetrics binary once per test process and returns
// its path. It lives in a directory named after the process, which nothing
// removes when the test process ends; each build first removes those of
// processes that have ended, so runs do not leave a 50 MB binary each.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		sweepBinaries()
		dir := filepath.Join(os.TempDir(), binDirPrefix+strconv.Itoa(os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "jetmetrics")
		cmd := exec.Command("go", "build", "-o", buildPath, "github.com/jetmetrics/jetmetrics/cmd/jetmetrics")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build jetmetrics: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

const binDirPrefix = "jetmetrics-bin-"

// sweepBinaries removes the binary directories of test processes that have
// ended (and those of the older, unnamed form, jetmetrics-bin<random>,
// after an hour).
func sweepBinaries() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "jetmetrics-bin*"))
	for _, dir := range dirs {
		name := filepath.Base(dir)
		if pid, err := strconv.Atoi(strings.TrimPrefix(name, binDirPrefix)); err == nil && strings.HasPrefix(name, binDirPrefix) {
			if pid != os.Getpid() && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
				_ = os.RemoveAll(dir)
			}
			continue
		}
		if st, err := os.Stat(dir); err == nil && time.Since(st.ModTime()) > time.Hour {
			_ = os.RemoveAll(dir)
		}
	}
}

// ProcessNode is a jetmetrics node running as a child process, so a test
// can kill it the way a crash would.
type ProcessNode struct {
	Name    string
	DataDir string
	// URL is the HTTP base URL; NATSURL the embedded server's client URL.
	URL, NATSURL string
	args         []string
	t            testing.TB

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
	out  *lockedBuffer
}

// ProcessNodeConfig describes a process node. Ports left zero are picked.
type ProcessNodeConfig struct {
	Name      string
	DataDir   string
	WebPort   int
	NATSPort  int
	ExtraArgs []string
}

// StartProcessNode starts `jetmetrics node` with cfg and waits until it is
// ready. It is killed at cleanup.
func StartProcessNode(t testing.TB, cfg ProcessNodeConfig) *ProcessNode {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.WebPort == 0 {
		cfg.WebPort = FreePort(t)
	}
	if cfg.NATSPort == 0 {
		cfg.NATSPort = FreePort(t)
	}
	p := &ProcessNode{
		Name:    cfg.Name,
		DataDir: cfg.DataDir,
		URL:     fmt.Sprintf("http://127.0.0.1:%d", cfg.WebPort),
		NATSURL: fmt.Sprintf("nats://127.0.0.1:%d", cfg.NATSPort),
		t:       t,
		args: append([]string{"node",
			"--node.name=" + cfg.Name,
			"--data.dir=" + cfg.DataDir,
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", cfg.WebPort),
			fmt.Sprintf("--nats.listen=127.0.0.1:%d", cfg.NATSPort),
			"--log.format=json",
		}, cfg.ExtraArgs...),
	}
	t.Cleanup(func() { p.Kill() })
	p.Start()
	return p
}

// Start starts the process (again, after Kill or Stop) without waiting.
func (p *ProcessNode) Start() {
	p.t.Helper()
	cmd := exec.Command(Binary(p.t), p.args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	p.mu.Lock()
	p.cmd, p.done, p.out = cmd, done, out
	p.mu.Unlock()
}

// WaitReady polls /-/ready until the node answers 200.
func (p *ProcessNode) WaitReady(timeout time.Duration) {
	p.t.Helper()
	Eventually(p.t, timeout, func() error {
		p.mu.Lock()
		done := p.done
		p.mu.Unlock()
		select {
		case err := <-done:
			done <- err
			p.t.Fatalf("node %s exited: %v\n%s", p.Name, err, p.Output())
		default:
		}
		return (&RunningNode{URL: p.URL}).ready()
	})
}

// Kill sends SIGKILL and waits: the node dies without a goodbye.
func (p *ProcessNode) Kill() {
	p.signal(syscall.SIGKILL)
}

// Stop sends SIGTERM and waits; the node must exit 0.
func (p *ProcessNode) Stop() {
	p.t.Helper()
	if err := p.signal(syscall.SIGTERM); err != nil {
		p.t.Errorf("node %s exited with %v\n%s", p.Name, err, p.Output())
	}
}

func (p *ProcessNode) signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return fmt.Errorf("node %s did not exit within 30s of %v", p.Name, sig)
	}
}

// Pid is the running process's id, 0 when it is not running.
func (p *ProcessNode) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Output is what the process has logged so far.
func (p *ProcessNode) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return ""
	}
	s := p.out.String()
	if lines := strings.Split(s, "\n"); len(lines) > 60 {
		s = strings.Join(lines[len(lines)-60:], "\n")
	}
	return s
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
