package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// runMainEnv makes the test binary run main instead of the tests, so a
// test can run the real process with its own file descriptor limit.
const runMainEnv = "JETMETRICS_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// lines collects what a process writes, line by line.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.all = append(l.all, sc.Text())
		l.mu.Unlock()
	}
}

func (l *lines) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...)
}

// Write lets lines serve as an io.Writer of whole lines (zerolog writes
// one event per call).
func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, strings.Split(strings.TrimRight(string(p), "\n"), "\n")...)
	return len(p), nil
}

// find returns the first line, decoded, whose message contains msg.
func (l *lines) find(msg string) (map[string]any, bool) {
	for _, s := range l.snapshot() {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil && strings.Contains(fmt.Sprint(m["message"]), msg) {
			return m, true
		}
	}
	return nil, false
}

// checkOneStream fails on every line that is not a zerolog JSON event
// with a level, and on every key that appears twice in one event.
func checkOneStream(t *testing.T, all []string) {
	t.Helper()
	for _, s := range all {
		keys, err := jsonKeys(s)
		if err != nil {
			t.Errorf("not a JSON log line (%v): %s", err, s)
			continue
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] {
				t.Errorf("key %q twice: %s", k, s)
			}
			seen[k] = true
		}
		if !seen["level"] || !seen["message"] {
			t.Errorf("no level or message: %s", s)
		}
	}
}

// jsonKeys returns the top-level keys of a JSON object in order, repeats
// included (encoding/json keeps only the last).
func jsonKeys(s string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("want an object, got %v %v", tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	return keys, nil
}

// A real node process logs one JSON stream: every line an event of the one
// logger, with every key once (the node's name was added at several
// layers), including what the HTTP server says when the process runs out
// of file descriptors, which went to the log package's stderr before.
func TestLogsAreOneStream(t *testing.T) {
	var out lines
	cmd := exec.Command("sh", "-c", `ulimit -n 128 && exec "$0" "$@"`, os.Args[0], "node",
		"--node.name=logs", "--data.dir="+t.TempDir(), "--web.listen-address=127.0.0.1:0", "--nats.listen=127.0.0.1:0",
		"--log.format=json", "--log.level=debug", "--demo", "--demo.interval=50ms", "--snapshot.interval=200ms")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	collected := make(chan struct{})
	go func() {
		out.collect(stderr)
		close(collected)
	}()
	exited := make(chan error, 1)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-collected
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("node exited: %v", err)
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("node did not stop within a minute")
		}
	}
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(stop)

	var running map[string]any
	harness.Eventually(t, 60*time.Second, func() error {
		var ok bool
		if running, ok = out.find("node running"); !ok {
			return errors.New("no \"node running\" line yet")
		}
		return nil
	})
	web, natsURL := running["web"].(string), running["nats"].(string)

	// A rejected message and a few scrapes log from the aggregator, the
	// producer and the HTTP side too.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.Publish(ctx, "jetmetrics.delta.logs.bad", []byte("not json"))
		return err
	})
	harness.Eventually(t, 30*time.Second, func() error {
		if _, ok := out.find("dead-lettered"); !ok {
			return errors.New("no dead-letter line yet")
		}
		return nil
	})
	for range 3 {
		if resp, err := http.Get("http://" + web + "/metrics"); err == nil {
			resp.Body.Close()
		}
	}

	// Use up the process's file descriptors with idle connections: the
	// HTTP server's accept fails and says so.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	harness.Eventually(t, 30*time.Second, func() error {
		for _, l := range out.snapshot() {
			if strings.Contains(l, "Accept error") { // JSON or not
				return nil
			}
		}
		for range 20 {
			c, err := net.DialTimeout("tcp", web, time.Second)
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return fmt.Errorf("no accept error after %d connections", len(conns))
	})
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	stop()

	all := out.snapshot()
	checkOneStream(t, all)
	m, _ := out.find("Accept error")
	if m["level"] != "warn" || m["component"] != "http" || m["node"] != "logs" {
		t.Errorf("accept error logged as %v, want level warn, component http, node logs", m)
	}
	if _, ok := out.find("demo producer publishing"); !ok {
		t.Errorf("no demo producer line among %d", len(all))
	}
	if !t.Failed() {
		t.Logf("%d log lines, all JSON events with unique keys", len(all))
	}
}

// What the process writes through the standard log package while a node
// runs lands in the node's log, and the error that ends a run is logged
// there too.
func TestStdLogGoesThroughTheLogger(t *testing.T) {
	var out lines
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"node", "--node.name=stdlog", "--data.dir=" + t.TempDir(), "--web.listen-address=127.0.0.1:0",
			"--nats.listen=", "--log.format=json"}, &bytes.Buffer{}, &out)
	}()
	harness.Eventually(t, 60*time.Second, func() error {
		if _, ok := out.find("node running"); !ok {
			return errors.New("no \"node running\" line yet")
		}
		return nil
	})
	log.Print("hello from the log package")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m, ok := out.find("hello from the log package")
	if !ok || m["level"] != "warn" {
		t.Errorf("log package line = %v, want a warn event of the node's logger", m)
	}
	checkOneStream(t, out.snapshot())

	// A start that fails logs its error as an event, once.
	out = lines{}
	err := run(context.Background(), []string{"node", "--log.format=json", "--web.listen-address=:99999"}, &bytes.Buffer{}, &out)
	if err == nil || !errors.As(err, new(reportedError)) {
		t.Fatalf("error = %v, want one reported through the logger", err)
	}
	if m, ok := out.find("stopped"); !ok || !strings.Contains(fmt.Sprint(m["error"]), "--web.listen-address") {
		t.Errorf("the failed start is not logged: %q", out.snapshot())
	}
	checkOneStream(t, out.snapshot())
}
