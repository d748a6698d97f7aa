package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/producers"
)

// childCommand runs the harness's child processes: `bench child producers`
// is the ingest figure's load, instrumented processes publishing through
// the SDK in a process of their own, so the node's CPU and theirs are
// measured apart; `bench child registry` is the memory figure's peer.
const childCommand = "child"

func runChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "registry" {
		return runRegistryChild(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "producers" {
		return fmt.Errorf("child: want producers or registry")
	}
	fs := flag.NewFlagSet("child producers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadConfig
	fs.StringVar(&cfg.natsURL, "nats", "", "NATS URL")
	fs.StringVar(&cfg.node, "node", "", "node name")
	fs.IntVar(&cfg.producers, "producers", 1, "producers, each with its own connection")
	fs.IntVar(&cfg.series, "series", 1000, "series each producer updates every round")
	fs.DurationVar(&cfg.interval, "interval", 0, "flush interval; 0 flushes back to back, as fast as acknowledgements come")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to publish, at most")
	fs.IntVar(&cfg.rounds, "rounds", 0, "rounds each producer runs before it stops; 0 for no limit")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	res, err := runLoad(ctx, cfg)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// loadConfig is what a producers child does.
type loadConfig struct {
	natsURL   string
	node      string
	producers int
	series    int
	interval  time.Duration
	duration  time.Duration
	rounds    int
}

func (c loadConfig) args() []string {
	return []string{childCommand, "producers", "-nats", c.natsURL, "-node", c.node,
		"-producers", strconv.Itoa(c.producers), "-series", strconv.Itoa(c.series),
		"-interval", c.interval.String(), "-duration", c.duration.String(), "-rounds", strconv.Itoa(c.rounds)}
}

// loadResult is what a producers child reports when it is done.
type loadResult struct {
	Updates   uint64 `json:"updates"`
	Published uint64 `json:"published"`
	Retries   uint64 `json:"retries"`
	Dropped   uint64 `json:"dropped"`
	Rounds    uint64 `json:"rounds"`
	Seq       uint64 `json:"seq"`
}

// seriesPerMetric is the most series a load metric has.
const seriesPerMetric = 50_000

// runLoad runs the producers: each owns cfg.series counters of its own
// metrics and, every round, increments each once. Back to back (interval
// 0) a round ends with a Flush, so each producer publishes as fast as
// JetStream acknowledges; paced, a round starts every interval and the
// SDK's own timer cuts the batches. Paced producers start at random
// points of the interval, as independent processes do, so their batches
// do not all arrive at once.
func runLoad(ctx context.Context, cfg loadConfig) (loadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var updates atomic.Uint64
	var res loadResult
	var mu sync.Mutex
	errs := make([]error, cfg.producers)
	var wg sync.WaitGroup
	for i := range cfg.producers {
		wg.Go(func() {
			st, err := runProducer(ctx, cfg, i, &updates)
			mu.Lock()
			res.Published += st.Published
			res.Retries += st.Retries
			res.Dropped += st.Dropped
			res.Seq += st.Seq
			mu.Unlock()
			errs[i] = err
		})
	}
	wg.Wait()
	res.Updates = updates.Load()
	return res, errors.Join(errs...)
}

func runProducer(ctx context.Context, cfg loadConfig, i int, updates *atomic.Uint64) (producers.Stats, error) {
	if cfg.interval > 0 {
		t := time.NewTimer(rand.N(cfg.interval))
		select {
		case <-ctx.Done():
			t.Stop()
			return producers.Stats{}, nil
		case <-t.C:
		}
	}
	nc, err := nats.Connect(cfg.natsURL, nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		return producers.Stats{}, err
	}
	defer nc.Close()
	interval := cfg.interval
	if interval == 0 {
		interval = time.Hour // flushed by hand, back to back
	}
	p, err := producers.New(producers.Config{Node: cfg.node, Name: "load-" + strconv.Itoa(i), FlushInterval: interval}, nc)
	if err != nil {
		return producers.Stats{}, err
	}
	// Series spread over metrics of at most seriesPerMetric each, well
	// inside the node's per-metric cap.
	var vec *producers.CounterVec
	series := make([]*producers.Counter, cfg.series)
	for j := range series {
		if j%seriesPerMetric == 0 {
			name := fmt.Sprintf("bench_ingest_p%d_m%d_total", i, j/seriesPerMetric)
			if vec, err = p.NewCounterVec(producers.Opts{Name: name, Help: "Ingest load."}, "s"); err != nil {
				return producers.Stats{}, err
			}
		}
		if series[j], err = vec.With(strconv.Itoa(j)); err != nil {
			return producers.Stats{}, err
		}
	}
	var tick <-chan time.Time
	if cfg.interval > 0 {
		t := time.NewTicker(cfg.interval)
		defer t.Stop()
		tick = t.C
	}
	for round := 1; ctx.Err() == nil; round++ {
		for _, c := range series {
			c.Inc()
		}
		updates.Add(uint64(len(series)))
		if tick == nil {
			if err := p.Flush(ctx); err != nil && ctx.Err() == nil {
				return p.Stats(), err
			}
			if round == cfg.rounds {
				break
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-tick:
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = p.Close(cctx)
	return p.Stats(), err
}

// loadChild is a running producers child.
type loadChild struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

// startLoad runs a producers child with cfg.
func startLoad(ctx context.Context, cfg loadConfig) (*loadChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the harness binary: %w", err)
	}
	c := &loadChild{out: &lockedBuffer{}, done: make(chan error, 1)}
	c.cmd = exec.CommandContext(ctx, self, cfg.args()...)
	c.cmd.Stdout = c.out
	c.cmd.Stderr = os.Stderr
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start producers: %w", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	return c, nil
}

func (c *loadChild) pid() int { return c.cmd.Process.Pid }

// wait waits for the child to finish and returns its report.
func (c *loadChild) wait(timeout time.Duration) (loadResult, error) {
	select {
	case err := <-c.done:
		if err != nil {
			return loadResult{}, fmt.Errorf("producers: %w", err)
		}
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return loadResult{}, fmt.Errorf("producers did not finish within %s", timeout)
	}
	var res loadResult
	if err := json.Unmarshal(c.out.Bytes(), &res); err != nil {
		return res, fmt.Errorf("producers' report %q: %w", c.out.Bytes(), err)
	}
	return res, nil
}

// lockedBuffer is a bytes buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}
