package redisserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

const (
	// waitDelay bounds how long Wait waits for the output pipe after the
	// child exits: an AOF rewrite fork inherits it and may outlive a
	// killed parent.
	waitDelay = 2 * time.Second
	// tailLines is how much output is kept for error messages.
	tailLines = 10
)

// process is one run of the redis-server child.
type process struct {
	cmd     *exec.Cmd
	out     *output
	started time.Time
	exited  chan struct{} // closed once Wait has returned
	err     error         // Wait's result; read only after exited is closed
}

// spawn starts redis-server as c describes, on port when c has no
// socket, and a goroutine that waits for it.
func spawn(c Config, port int, log zerolog.Logger) (*process, error) {
	out := &output{log: log}
	if c.Password != "" {
		// redis-server never prints its password, but should it ever
		// quote the line of its configuration that holds it (a FATAL
		// CONFIG FILE ERROR does), the log and the errors do not.
		out.secrets = []string{c.Password, strings.TrimSuffix(c.stdin(), "\n")}
	}
	bin := c.Binary
	cmd := exec.Command(bin, c.args(port)...)
	cmd.Dir = c.Dir
	cmd.Stdin = strings.NewReader(c.stdin())
	// One writer for both streams makes exec use one pipe and one copying
	// goroutine, and keeps lines in order.
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec %s: %w", bin, err)
	}
	p := &process{cmd: cmd, out: out, started: time.Now(), exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.flush()
		close(p.exited)
	}()
	return p, nil
}

// pid returns the child's process id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// done reports whether the child has exited.
func (p *process) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// signal sends sig to the child, ignoring a child that has already gone.
func (p *process) signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, syscall.ESRCH) && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// kill sends SIGKILL to the child's process group, which takes an AOF
// rewrite fork down with it.
func (p *process) kill() error {
	if p.done() {
		return nil
	}
	if err := syscall.Kill(-p.pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return p.signal(syscall.SIGKILL)
	}
	return nil
}

// exitError describes how the child ended, with its last output lines.
func (p *process) exitError() error {
	err := p.err
	if err == nil {
		err = errors.New("exit status 0")
	}
	if tail := p.out.tail(); tail != "" {
		return fmt.Errorf("redis-server exited: %w: %s", err, tail)
	}
	return fmt.Errorf("redis-server exited: %w", err)
}

// addrInUse reports whether the child exited because its port was taken.
func (p *process) addrInUse() bool {
	return strings.Contains(p.out.tail(), "Address already in use")
}

// output logs the child's output line by line at debug level and keeps
// the last lines for error messages.
type output struct {
	log zerolog.Logger
	// secrets are replaced by "xxxxx" in every line.
	secrets []string

	mu      sync.Mutex
	partial []byte
	last    []string
}

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, b...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		o.line(string(bytes.TrimRight(o.partial[:i], "\r")))
		o.partial = o.partial[i+1:]
	}
	return len(b), nil
}

// flush logs an unterminated last line.
func (o *output) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.partial) > 0 {
		o.line(string(o.partial))
		o.partial = nil
	}
}

// line logs one line; o.mu is held.
func (o *output) line(s string) {
	if s == "" {
		return
	}
	for _, secret := range o.secrets {
		s = strings.ReplaceAll(s, secret, "xxxxx")
	}
	o.log.Debug().Msg(s)
	o.last = append(o.last, s)
	if len(o.last) > tailLines {
		o.last = o.last[len(o.last)-tailLines:]
	}
}

// tail returns the last lines of output joined by " | ".
func (o *output) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.last, " | ")
}

// probe asks the server at network/addr whether it serves commands and
// which process it is: PING answers -LOADING while the AOF is replayed,
// and INFO names the pid, so a stranger holding our port is not mistaken
// for the child. With a password it authenticates first; AUTH is served
// while the AOF loads.
func probe(network, addr, password string, timeout time.Duration) (pid int, err error) {
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	var req []byte
	if password != "" {
		req = fmt.Appendf(req, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password)
	}
	req = append(req, "PING\r\nINFO server\r\n"...)
	if _, err := conn.Write(req); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	if password != "" {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if line = strings.TrimSpace(line); line != "+OK" {
			return 0, fmt.Errorf("auth: %s", line)
		}
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return 0, fmt.Errorf("ping: %s", line)
	}
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(head), "$"))
	if err != nil || !strings.HasPrefix(head, "$") {
		return 0, fmt.Errorf("info: unexpected reply %q", head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(l, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("info: no process_id")
}
