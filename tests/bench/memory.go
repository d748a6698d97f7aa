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
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// memoryConfig is what the memory figure holds: series plain series per
// node (the exposition workload) and wideSeries series of 16 labels of
// 256 B per node (the wide workload; 0 skips it).
type memoryConfig struct {
	series, wideSeries int
	nodeBin            string
	// limit is the --memory.limit of a second wide node ("" skips it).
	limit string
	// heapProfile, when set, is where the figure writes the heap profile
	// of a node run in this process on the wide node's Redis, after it
	// served /metrics/cluster and /metrics.
	heapProfile string
}

// memoryFigure measures the resident memory of a jetmetrics node process
// holding its own n series and two peers' snapshots of n series each,
// after it has served /metrics and /metrics/cluster (so the peers'
// snapshots are decoded and kept, as a scraped node keeps them). The peer
// is a process holding the same 3·n series in a client_golang registry,
// after serving them once. It does so for the plain workload and the wide
// one, and for a node and a registry holding no series, the baseline the
// per-series figures subtract: (RSS − baseline RSS) / (3·n).
func memoryFigure(ctx context.Context, e *env, cfg memoryConfig, rep *report) error {
	nodeBin := cfg.nodeBin
	if nodeBin == "" {
		nodeBin = filepath.Join(e.dir, "jetmetrics")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", nodeBin, "github.com/jetmetrics/jetmetrics/cmd/jetmetrics")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build jetmetrics: %w\n%s", err, out)
		}
	}
	base, err := nodeRSS(ctx, e, "empty", workload{}, nodeBin, rep)
	if err != nil {
		return fmt.Errorf("node holding no series: %w", err)
	}
	regBase, err := registryRSS(ctx, 0, false)
	if err != nil {
		return err
	}
	n := cfg.series
	w := newWorkload(n)
	plain, err := nodeRSS(ctx, e, "plain", w, nodeBin, rep)
	if err != nil {
		return err
	}
	peer, err := registryRSS(ctx, n, false)
	if err != nil {
		return err
	}
	rep.add(
		newRow(fmt.Sprintf("memory: RSS of a node holding 3×%dk series", n/1000), "MB", float64(plain.RSS)/1e6, float64(peer.RSS)/1e6, goal{},
			"after serving /metrics/cluster and /metrics; peer: a process holding the same series in client_golang, after serving them"),
		newRow(fmt.Sprintf("memory: peak RSS of a node holding 3×%dk series", n/1000), "MB", float64(plain.HWM)/1e6, float64(peer.HWM)/1e6, goal{}, ""),
		perSeriesRow("plain", n, w.labelBytes(), plain, base, peer, regBase),
	)
	if cfg.wideSeries <= 0 {
		return nil
	}
	ww := newWideWorkload(cfg.wideSeries)
	wide, err := nodeRSS(ctx, e, "wide", ww, nodeBin, rep)
	if err != nil {
		return err
	}
	if cfg.heapProfile != "" {
		if err := nodeHeapProfile(ctx, e, wide.redisAddr, cfg.heapProfile); err != nil {
			return err
		}
	}
	widePeer, err := registryRSS(ctx, cfg.wideSeries, true)
	if err != nil {
		return err
	}
	if cfg.limit != "" {
		limited, err := nodeRSS(ctx, e, "wide-limit", ww, nodeBin, rep, "--memory.limit", cfg.limit)
		if err != nil {
			return err
		}
		rep.add(
			newRow(fmt.Sprintf("memory: RSS of a node holding 3×%dk wide series, --memory.limit=%s", cfg.wideSeries/1000, cfg.limit), "MB", float64(limited.RSS)/1e6, float64(widePeer.RSS)/1e6, goal{},
				fmt.Sprintf("peak %.0f MB; start to both views served %.1f s (without the limit %.1f s)", float64(limited.HWM)/1e6, limited.took.Seconds(), wide.took.Seconds())),
			perSeriesRow("wide", cfg.wideSeries, ww.labelBytes(), limited, base, widePeer, regBase, "--memory.limit="+cfg.limit),
		)
	}
	rep.add(
		newRow(fmt.Sprintf("memory: RSS of a node holding 3×%dk wide series", cfg.wideSeries/1000), "MB", float64(wide.RSS)/1e6, float64(widePeer.RSS)/1e6, goal{},
			"16 labels of 256 B, 13 shared across series, 3 unique"),
		newRow(fmt.Sprintf("memory: peak RSS of a node holding 3×%dk wide series", cfg.wideSeries/1000), "MB", float64(wide.HWM)/1e6, float64(widePeer.HWM)/1e6, goal{}, ""),
		perSeriesRow("wide", cfg.wideSeries, ww.labelBytes(), wide, base, widePeer, regBase),
	)
	return nil
}

// perSeriesRow is the RSS a series held costs a node beside a node holding
// none, against client_golang's, with its ratio to the series' label bytes
// in the note.
func perSeriesRow(kind string, n int, labelBytes float64, node, base, peer, peerBase rssReport, flags ...string) row {
	held := float64(3 * n)
	per := float64(node.RSS-base.RSS) / held
	perPeer := float64(peer.RSS-peerBase.RSS) / held
	at := ""
	if len(flags) > 0 {
		at = " " + strings.Join(flags, " ")
	}
	return newRow(fmt.Sprintf("memory: RSS per %s series held%s (3×%dk, less a node holding none)", kind, at, n/1000), "B", per, perPeer, goal{},
		fmt.Sprintf("%.0f label bytes per series: node %.2f× label bytes, client_golang %.2f×; baseline RSS node %.1f MB, client_golang %.1f MB",
			labelBytes, per/labelBytes, perPeer/labelBytes, float64(base.RSS)/1e6, float64(peerBase.RSS)/1e6))
}

// nodeRSS runs a node holding w as its own aggregate and two peers'
// snapshots of w, scrapes /metrics/cluster and /metrics, checks the series
// counts, reads its memory and stops it. tag names its Redis servers and
// data dir.
func nodeRSS(ctx context.Context, e *env, tag string, w workload, nodeBin string, rep *report, flags ...string) (rssReport, error) {
	n := w.seriesCount()
	_, rdb, err := e.redis(ctx, "memory-"+tag)
	if err != nil {
		return rssReport{}, err
	}
	_, scratch, err := e.redis(ctx, "memory-peers-"+tag)
	if err != nil {
		return rssReport{}, err
	}
	if _, err := w.fillAt(ctx, aggregate.NewStore(rdb, "", "n1"), 0, 0); err != nil {
		return rssReport{}, err
	}
	peerStore := aggregate.NewPeers(rdb, "")
	for i, name := range []string{"n2", "n3"} {
		p := &peerNode{name: name, store: aggregate.NewStore(scratch, "", name)}
		if p.mark, err = w.fill(ctx, p.store, i+1, 0); err != nil {
			return rssReport{}, err
		}
		if n == 0 {
			continue
		}
		if err := p.publish(ctx, peerStore, streams.Config{}.Subjects().Snapshot(name)); err != nil {
			return rssReport{}, err
		}
	}
	port, err := freePort()
	if err != nil {
		return rssReport{}, err
	}
	web := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(nodeBin, append([]string{"node", "--node.name", "n1", "--data.dir", e.subdir("node-mem-" + tag),
		"--redis.url", "unix://" + rdb.Options().Addr, "--web.listen-address", web, "--nats.listen", "127.0.0.1:0",
		"--snapshot.interval", "1h", "--snapshot.ttl", "3h", "--log.level", "warn"}, flags...)...)
	start := time.Now()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return rssReport{}, fmt.Errorf("start %s: %w", nodeBin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
	e.onClose(stop)
	defer stop()
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
		return rssReport{}, err
	}
	for _, path := range []string{"/metrics/cluster", "/metrics"} {
		s, err := scrape(ctx, url+path, acceptText, true)
		if err != nil {
			return rssReport{}, err
		}
		if n == 0 {
			continue
		}
		counts, err := s.countSeries(workloadPrefix)
		if err != nil {
			return rssReport{}, fmt.Errorf("memory: %s: %w", path, err)
		}
		total := 0
		for _, c := range counts {
			total += c
		}
		if want := map[string]int{"/metrics": n, "/metrics/cluster": 3 * n}[path]; total != want {
			rep.fail("memory (%s): %s serves %d series, want %d", tag, path, total, want)
		}
	}
	r := rssReport{redisAddr: rdb.Options().Addr, took: time.Since(start)}
	if r.RSS, err = procStatus(cmd.Process.Pid, "VmRSS"); err != nil {
		return r, err
	}
	if r.HWM, err = procStatus(cmd.Process.Pid, "VmHWM"); err != nil {
		return r, err
	}
	return r, nil
}

// rssReport is a registry child's memory.
type rssReport struct {
	RSS int64 `json:"rss"`
	HWM int64 `json:"hwm"`
	// redisAddr is the node's Redis, and took the time from its start
	// until both views were served (nodeRSS only).
	redisAddr string
	took      time.Duration
}

// nodeHeapProfile runs a node in this process on the Redis at redisAddr
// (its own aggregate and its peers' snapshots), serves /metrics/cluster
// and /metrics once, and writes the heap profile after a full collection
// to path: what a node holds, by allocation site (the harness's own
// allocations are gone by then).
func nodeHeapProfile(ctx context.Context, e *env, redisAddr, path string) error {
	rn, err := e.startNode(ctx, node.Config{Name: "n1", RedisURL: "unix://" + redisAddr,
		SnapshotInterval: time.Hour, SnapshotTTL: 3 * time.Hour})
	if err != nil {
		return err
	}
	defer rn.stop()
	for _, p := range []string{"/metrics/cluster", "/metrics"} {
		if _, err := scrape(ctx, rn.url+p, acceptText, true); err != nil {
			return err
		}
	}
	runtime.GC()
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// registryRSS runs `bench child registry` and returns its report.
func registryRSS(ctx context.Context, n int, wide bool) (rssReport, error) {
	self, err := os.Executable()
	if err != nil {
		return rssReport{}, err
	}
	out, err := exec.CommandContext(ctx, self, childCommand, "registry", "-series", strconv.Itoa(n), "-wide="+strconv.FormatBool(wide)).Output()
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
	wide := fs.Bool("wide", false, "the wide workload: 16 labels of 256 B")
	if err := fs.Parse(args); err != nil {
		return err
	}
	w := newWorkload(*n)
	if *wide {
		w = newWideWorkload(*n)
	}
	reg, err := w.registry([]string{"n1", "n2", "n3"})
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
