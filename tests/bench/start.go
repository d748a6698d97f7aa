package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
)

// startFigure measures, for the largest aggregates the caps allow (1M
// plain series; 100k histograms of 64 buckets, 6.6M fields), a Dump and a
// Restore through pkg/aggregate with go-redis' default timeouts, and the
// start-to-ready time of a node process whose Redis holds the aggregate.
func startFigure(ctx context.Context, e *env, plain, hists int, nodeBin string, rep *report) error {
	if nodeBin == "" {
		nodeBin = filepath.Join(e.dir, "jetmetrics")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", nodeBin, "github.com/jetmetrics/jetmetrics/cmd/jetmetrics")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build jetmetrics: %w\n%s", err, out)
		}
	}
	for _, c := range []struct {
		name   string
		fields int
		fill   func(context.Context, *aggregate.Store) error
	}{
		{fmt.Sprintf("%dk plain series", plain/1000), plain, func(ctx context.Context, s *aggregate.Store) error {
			_, err := plainWorkload(plain).fillAt(ctx, s, 0, 0)
			return err
		}},
		{fmt.Sprintf("%dk histograms of 64 buckets", hists/1000), hists * 66, func(ctx context.Context, s *aggregate.Store) error {
			return fillHistograms(ctx, s, hists)
		}},
	} {
		_, rdb, err := e.redis(ctx, "start-"+strconv.Itoa(c.fields))
		if err != nil {
			return err
		}
		store := aggregate.NewStore(rdb, "", "n1")
		if err := c.fill(ctx, store); err != nil {
			return err
		}
		start := time.Now()
		d, err := store.Dump(ctx)
		if err != nil {
			return fmt.Errorf("start: dump of %s: %w", c.name, err)
		}
		dump := time.Since(start).Seconds()
		_, scratch, err := e.redis(ctx, "start-restore-"+strconv.Itoa(c.fields))
		if err != nil {
			return err
		}
		start = time.Now()
		if err := aggregate.NewStore(scratch, "", "n1").Restore(ctx, d); err != nil {
			return fmt.Errorf("start: restore of %s: %w", c.name, err)
		}
		restore := time.Since(start).Seconds()
		if err := scratch.FlushAll(ctx).Err(); err != nil {
			return err
		}
		d = nil
		ready, err := startToReady(ctx, e, nodeBin, rdb, c.fields)
		if err != nil {
			return fmt.Errorf("start: node holding %s: %w", c.name, err)
		}
		note := fmt.Sprintf("%d series-hash fields; go-redis default timeouts", c.fields)
		rep.add(
			newRow("start: Dump of "+c.name, "s", dump, math.NaN(), goal{}, note),
			newRow("start: Restore of "+c.name, "s", restore, math.NaN(), goal{}, note),
			newRow("start: node start-to-ready holding "+c.name, "s", ready, math.NaN(), goal{}, "process start until /-/ready is 200"),
		)
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			return err
		}
	}
	return nil
}

// plainWorkload is the workload without its histograms: n counters and
// gauges.
func plainWorkload(n int) workload {
	w := newWorkload(n)
	fams := w.families[:0]
	for _, f := range w.families {
		if f.kind != aggregate.Histogram {
			fams = append(fams, f)
		}
	}
	fams[len(fams)-1].n += n - workload{families: fams}.seriesCount()
	return workload{families: fams}
}

// fillHistograms writes n histogram series of 64 buckets, every bucket
// counting, leaving the stream mark at 0 (see fillAt).
func fillHistograms(ctx context.Context, s *aggregate.Store, n int) error {
	bounds := make([]float64, 63)
	for i := range bounds {
		bounds[i] = float64(i+1) / 100
	}
	const name = workloadPrefix + "wide_histogram_seconds"
	u := aggregate.NewUpdate()
	u.Describe(name, aggregate.Meta{Kind: aggregate.Histogram, Help: "Histogram of 64 buckets.", Buckets: bounds})
	for i := range n {
		key := name + `{shard="` + strconv.Itoa(i) + `"}`
		for b := range 64 {
			u.SetBucket(key, b, uint64(1+(i+b)%7))
		}
		u.SetSum(key, float64(i))
		if u.Ops() >= 20_000 || i == n-1 {
			if err := s.Apply(ctx, u); err != nil {
				return fmt.Errorf("fill histograms: %w", err)
			}
			u.Reset()
		}
	}
	return nil
}

// startToReady starts a node on rdb and times it until /-/ready says 200.
func startToReady(ctx context.Context, e *env, nodeBin string, rdb *redis.Client, fields int) (float64, error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	web := "127.0.0.1:" + strconv.Itoa(port)
	start := time.Now()
	cmd := exec.Command(nodeBin, "node", "--node.name", "n1", "--data.dir", e.subdir("node-start-"+strconv.Itoa(fields)),
		"--redis.url", "unix://"+rdb.Options().Addr, "--web.listen-address", web, "--nats.listen", "127.0.0.1:0",
		"--snapshot.interval", "1h", "--snapshot.ttl", "3h", "--log.level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", nodeBin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	err = poll(ctx, 5*time.Minute, func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("%w: node exited: %v", errStop, err)
		default:
		}
		resp, err := http.Get("http://" + web + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	})
	return time.Since(start).Seconds(), err
}
