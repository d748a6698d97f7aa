package fault_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sys/unix"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// TestFileDescriptorsExhausted: a node process runs out of file
// descriptors. Its soft RLIMIT_NOFILE is lowered from outside (prlimit)
// below what it holds, and its Redis connections are killed, so it cannot
// dial Redis again. While it cannot, /-/ready answers 503 naming why; deltas keep
// arriving. Then the pressure goes (the limit is raised back): with nothing done to it, the node is ready again and
// applies every delta, acknowledged before, during and after, exactly once.
func TestFileDescriptorsExhausted(t *testing.T) {
	rs := harness.RedisTCP(t)
	rdb := harness.RedisClient(t, rs)
	p := harness.StartProcessNode(t, harness.ProcessNodeConfig{Name: nodeName, ExtraArgs: []string{
		"--redis.url=" + rs.URL(), "--log.level=warn",
	}})
	p.WaitReady(90 * time.Second)
	pid := p.Pid()

	nc := connect(t, p.NATSURL)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	led := newLedger()
	pub := newPublisher(t, led, nc, nodeName, "fd")
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	step := 0
	publish := func(n int) {
		for range n {
			pub.ack(ctx, pub.cut(mixed(pub.id, step)...))
			step++
		}
	}
	publish(20)
	settle(t, js, rdb)

	// One keep-alive connection to ask /-/ready through while the node
	// cannot accept another.
	web := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	defer web.CloseIdleConnections()
	ready := func() (int, string, error) {
		resp, err := web.Get(p.URL + "/-/ready")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	if code, body, err := ready(); err != nil || code != http.StatusOK {
		t.Fatalf("/-/ready before the pressure: %d %q %v", code, body, err)
	}

	// The pressure: a limit well below what the node holds, so that it can
	// open no descriptor more even once its Redis connections are gone. (Connections held open to its web port do not
	// last: its HTTP server times idle ones out.)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatal(err)
	}
	low := unix.Rlimit{Cur: uint64(len(fds)) / 2, Max: old.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &low, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("node holds %d descriptors; soft limit lowered from %d to %d", len(fds), old.Cur, low.Cur)
	defer func() { _ = unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil) }()
	killed, err := rdb.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %d redis connections", killed)

	// While the pressure lasts: not ready, saying why; deltas arrive.
	publish(20)
	var why string
	harness.Eventually(t, 30*time.Second, func() error {
		code, body, err := ready()
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable {
			fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			return fmt.Errorf("/-/ready %d while out of descriptors (%d open), want 503:\n%s", code, len(fds), body)
		}
		why = body
		return nil
	})
	t.Logf("/-/ready while out of descriptors:\n%s", why)
	if !strings.Contains(why, "too many open files") {
		t.Errorf("/-/ready while out of descriptors says:\n%s\nwant it to name the cause (too many open files)", why)
	}
	publish(20)

	// The pressure goes; nothing else is done to the node.
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 60*time.Second, func() error {
		code, body, err := ready()
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/-/ready %d after the pressure went:\n%s", code, body)
		}
		return nil
	})
	publish(20)
	settle(t, js, rdb)
	got, err := storedSamples(ctx, aggregate.NewStore(rdb, "", nodeName))
	if err != nil {
		t.Fatal(err)
	}
	if err := led.check(got); err != nil {
		t.Fatalf("aggregate differs from the ledger after the pressure went:\n%v\nnode log:\n%s", err, p.Output())
	}
}
