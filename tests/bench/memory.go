package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// memoryFigure measures the resident memory of a jetmetrics node process
// holding its own n series and two peers' snapshots of n series each,
// after it has served /metrics and /metrics/cluster (so the peers'
// snapshots are decoded and kept, as a scraped node keeps them). The peer
// is a process holding the same 3·n series in a client_golang registry,
// after serving them once.
func memoryFigure(ctx context.Context, e *env, n int, nodeBin string, rep *report) error {
	if nodeBin == "" {
		nodeBin = filepath.Join(e.dir, "jetmetrics")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", nodeBin, "github.com/jetmetrics/jetmetrics/cmd/jetmetrics")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build jetmetrics: %w\n%s", err, out)
		}
	}
	w := newWorkload(n)
	_, rdb, err := e.redis(ctx, "memory")
	if err != nil {
		return err
	}
	_, scratch, err := e.redis(ctx, "memory-peers")
	if err != nil {
		return err
	}
	if _, err := w.fillAt(ctx, aggregate.NewStore(rdb, "", "n1"), 0, 0); err != nil {
		return err
	}
	peerStore := aggregate.NewPeers(rdb, "")
	for i, name := range []string{"n2", "n3"} {
		p := &peerNode{name: name, store: aggregate.NewStore(scratch, "", name)}
		if p.mark, err = w.fill(ctx, p.store, i+1, 0); err != nil {
			return err
		}
		if err := p.publish(ctx, peerStore, streams.Config{}.Subjects().Snapshot(name)); err != nil {
			return err
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	web := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(nodeBin, "node", "--node.name", "n1", "--data.dir", e.subdir("node-mem"),
		"--redis.url", "unix://"+rdb.Options().Addr, "--web.listen-address", web, "--nats.listen", "127.0.0.1:0",
		"--snapshot.interval", "1h", "--snapshot.ttl", "3h", "--log.level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", nodeBin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	e.onClose(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	url := "http://" + web
	if err := poll(ctx, time.Minute, func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("%w: node exited: %v", errStop, err)
		default:
		}
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, path := range []string{"/metrics/cluster", "/metrics"} {
		s, err := scrape(ctx, url+path, acceptText, true)
		if err != nil {
			return err
		}
		counts, err := s.countSeries(workloadPrefix)
		if err != nil {
			return fmt.Errorf("memory: %s: %w", path, err)
		}
		total := 0
		for _, c := range counts {
			total += c
		}
		if want := map[string]int{"/metrics": n, "/metrics/cluster": 3 * n}[path]; total != want {
			rep.fail("memory: %s serves %d series, want %d", path, total, want)
		}
	}
	rss, err := procStatus(cmd.Process.Pid, "VmRSS")
	if err != nil {
		return err
	}
	hwm, err := procStatus(cmd.Process.Pid, "VmHWM")
	if err != nil {
		return err
	}
	peer, err := registryRSS(ctx, n)
	if err != nil {
		return err
	}
	rep.add(
		newRow(fmt.Sprintf("memory: RSS of a node holding 3×%dk series", n/1000), "MB", float64(rss)/1e6, float64(peer.RSS)/1e6, goal{},
			"after serving /metrics/cluster and /metrics; peer: a process holding the same series in client_golang, after serving them"),
		newRow(fmt.Sprintf("memory: peak RSS of a node holding 3×%dk series", n/1000), "MB", float64(hwm)/1e6, float64(peer.HWM)/1e6, goal{}, ""),
	)
	return nil
}

// rssReport is a registry child's memory.
type rssReport struct {
	RSS int64 `json:"rss"`
	HWM int64 `json:"hwm"`
}

// registryRSS runs `bench child registry` and returns its report.
func registryRSS(ctx context.Context, n int) (rssReport, error) {
	self, err := os.Executable()
	if err != nil {
		return rssReport{}, err
	}
	out, err := exec.CommandContext(ctx, self, childCommand, "registry", "-series", strconv.Itoa(n)).Output()
	if err != nil {
		return rssReport{}, fmt.Errorf("registry child: %w", err)
	}
	var r rssReport
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("registry child's report %q: %w", out, err)
	}
	return r, nil
}

// runRegistryChild holds the workload for three nodes in a client_golang
// registry, encodes it once as a scrape would, and reports its memory.
func runRegistryChild(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("child registry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("series", 100_000, "series per node")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reg, err := newWorkload(*n).registry([]string{"n1", "n2", "n3"})
	if err != nil {
		return err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(io.Discard, expfmt.FmtText)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	runtime.KeepAlive(mfs)
	var r rssReport
	if r.RSS, err = procStatus(0, "VmRSS"); err != nil {
		return err
	}
	if r.HWM, err = procStatus(0, "VmHWM"); err != nil {
		return err
	}
	runtime.KeepAlive(reg)
	return json.NewEncoder(stdout).Encode(r)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
