package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/consumers/snapshot"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// simConfig is the sim figure's: one real node (the jetmetrics binary, a
// child process with its embedded NATS and its own redis-server) receiving
// the snapshots of N simulated peers of S series each, published by the
// real snapshot publisher (consumers/snapshot) from aggregates held in
// memory, 10% of each peer's series changing every interval.
type simConfig struct {
	peers  []int
	series []int
	// rounds are the intervals measured after the first, full, one.
	rounds int
	// interval is the nominal snapshot interval the figures are reported
	// at: the harness publishes a round as fast as the node stores it
	// (two cores cannot run 100 peers in real time), and divides what the
	// node received and spent by rounds × interval.
	interval time.Duration
	// fullEvery is the simulated peers' --snapshot.full-every.
	fullEvery int
	nodeBin   string
}

// simScrapeName is the one-series metric every simulated peer holds, the
// ?name= of the filtered cluster scrape.
const simScrapeName = "bench_build_info"

// simChange is the part of a peer's series that changes every interval.
const simChange = 10

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		mult := 1
		if v, ok := strings.CutSuffix(f, "k"); ok {
			f, mult = v, 1000
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		out = append(out, n*mult)
	}
	return out, nil
}

// simFigure runs every (N, S) case of cfg in its own node.
func simFigure(ctx context.Context, e *env, cfg simConfig, log zerolog.Logger, rep *report) error {
	if cfg.nodeBin == "" {
		cfg.nodeBin = filepath.Join(e.dir, "jetmetrics")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", cfg.nodeBin, "github.com/jetmetrics/jetmetrics/cmd/jetmetrics")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build jetmetrics: %w\n%s", err, out)
		}
	}
	_, scratch, err := e.redis(ctx, "sim-scratch")
	if err != nil {
		return err
	}
	for _, s := range cfg.series {
		held, err := simHeld(ctx, scratch, s)
		if err != nil {
			return err
		}
		for _, n := range cfg.peers {
			fmt.Fprintf(os.Stderr, "bench: sim N=%d S=%d…\n", n, s)
			if err := simCase(ctx, e, cfg, log, held, scratch, n, s, rep); err != nil {
				return fmt.Errorf("sim with %d peers of %d series: %w", n, s, err)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

// simHeld is the workload of s series, plus simScrapeName, as an
// aggregator holds it in memory.
func simHeld(ctx context.Context, scratch *redis.Client, s int) (aggregate.Held, error) {
	if err := scratch.FlushAll(ctx).Err(); err != nil {
		return aggregate.Held{}, err
	}
	store := aggregate.NewStore(scratch, "", "sim")
	mark, err := newWorkload(s).fill(ctx, store, 0, 0)
	if err != nil {
		return aggregate.Held{}, err
	}
	u := aggregate.NewUpdate()
	u.Expect, u.Mark = mark, mark+1
	u.Describe(simScrapeName, aggregate.Meta{Kind: aggregate.Gauge, Help: "Build of the simulated peer."})
	u.SetValue(series.Key(simScrapeName, []series.Label{{Name: "version", Value: "sim"}}), 1)
	if err := store.Apply(ctx, u); err != nil {
		return aggregate.Held{}, err
	}
	d, err := store.Dump(ctx)
	if err != nil {
		return aggregate.Held{}, err
	}
	return heldOf(d)
}

// simPeer is one simulated peer: its own state header over the shared
// families, and the real publisher.
type simPeer struct {
	held aggregate.Held
	pub  *snapshot.Publisher
}

func (p *simPeer) Held() (aggregate.Held, bool) { return p.held, true }

// simChangeRound changes every simChange-th series of the shared families
// (a different tenth each round), as a tenth of a node's series do in an
// interval.
func simChangeRound(st *aggregate.State, round int) {
	for fi := range st.Families {
		f := &st.Families[fi]
		for j := range f.Series {
			if (j+round)%simChange != 0 || f.Name == simScrapeName {
				continue
			}
			s := &f.Series[j]
			if f.Kind == aggregate.Histogram {
				s.Counts[0]++
				s.Sum += 0.5
				continue
			}
			s.Value++
		}
	}
}

type simResult struct {
	wireBytes  float64 // per round
	msgs       float64 // per round
	cpu        time.Duration
	wall       time.Duration
	rss, hwm   int64
	redisBytes int64
	scrapes    []float64 // ms
}

func simCase(ctx context.Context, e *env, cfg simConfig, log zerolog.Logger, base aggregate.Held, scratch *redis.Client, n, s int, rep *report) error {
	_, rdb, err := e.redis(ctx, fmt.Sprintf("sim-node-%d-%d", n, s))
	if err != nil {
		return err
	}
	webPort, err := freePort()
	if err != nil {
		return err
	}
	natsPort, err := freePort()
	if err != nil {
		return err
	}
	web := "127.0.0.1:" + strconv.Itoa(webPort)
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	// The node's own snapshot TTL decides the longest it honours (twice
	// its own): long, since a measured round of 100 peers takes longer
	// than the nominal interval.
	cmd := exec.Command(cfg.nodeBin, "node", "--node.name", "sim-node", "--data.dir", e.subdir("sim-node"),
		"--redis.url", "unix://"+rdb.Options().Addr, "--web.listen-address", web, "--nats.listen", "127.0.0.1:"+strconv.Itoa(natsPort),
		"--snapshot.interval", "1h", "--snapshot.ttl", "2h", "--log.level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cfg.nodeBin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	defer stop()
	url := "http://" + web
	if err := waitReady(ctx, url, done); err != nil {
		return err
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	peers := make([]*simPeer, n)
	for i := range peers {
		st := *base.State
		st.Node = fmt.Sprintf("sim-%03d", i)
		h := base
		h.State = &st
		p := &simPeer{held: h}
		p.pub, err = snapshot.New(snapshot.Config{
			Node: st.Node, Interval: cfg.interval, TTL: time.Hour, CheckpointInterval: 24 * time.Hour,
			FullEvery: cfg.fullEvery, Memory: p, Logger: log,
		}, js, aggregate.NewStore(scratch, "", st.Node), prometheus.NewRegistry())
		if err != nil {
			return err
		}
		peers[i] = p
	}
	stored := func() (float64, error) {
		return scrapeCounter(ctx, url+"/metrics", "jetmetrics_broadcast_snapshots_total", "result", "stored")
	}
	// publishRound publishes every peer's snapshot once and waits until
	// the node stored them all.
	publishRound := func(round int) error {
		before, err := stored()
		if err != nil {
			return err
		}
		for _, p := range peers {
			p.held.State.Mark = base.State.Mark + uint64(round)
			if err := p.pub.Publish(ctx); err != nil {
				return err
			}
		}
		return poll(ctx, 10*time.Minute, func() error {
			now, err := stored()
			if err == nil && now < before+float64(n) {
				err = fmt.Errorf("node stored %v of %d snapshots", now-before, n)
			}
			return err
		})
	}
	// The first round is every peer's first, full, snapshot (and its
	// checkpoint), as when peers start; it is not measured.
	if err := publishRound(0); err != nil {
		return err
	}
	if _, err := timeScrape(ctx, url+"/metrics/cluster?name="+simScrapeName, acceptText, true); err != nil {
		return err
	}
	var res simResult
	pid := cmd.Process.Pid
	for r := 1; r <= cfg.rounds; r++ {
		simChangeRound(base.State, r)
		out0 := nc.Stats().OutBytes
		msgs0 := nc.Stats().OutMsgs
		cpu0, err := procCPU(pid)
		if err != nil {
			return err
		}
		start := time.Now()
		if err := publishRound(r); err != nil {
			return err
		}
		cpu1, err := procCPU(pid)
		if err != nil {
			return err
		}
		res.wall += time.Since(start)
		res.cpu += cpu1 - cpu0
		res.wireBytes += float64(nc.Stats().OutBytes - out0)
		res.msgs += float64(nc.Stats().OutMsgs - msgs0)
		// Every peer's version changed: the scrape decodes what it must.
		sc, err := timeScrape(ctx, url+"/metrics/cluster?name="+simScrapeName, acceptText, true)
		if err != nil {
			return err
		}
		res.scrapes = append(res.scrapes, sc.dur.Seconds()*1000)
	}
	res.wireBytes /= float64(cfg.rounds)
	res.msgs /= float64(cfg.rounds)
	if res.rss, err = procStatus(pid, "VmRSS"); err != nil {
		return err
	}
	if res.hwm, err = procStatus(pid, "VmHWM"); err != nil {
		return err
	}
	if res.redisBytes, err = redisUsedMemory(ctx, rdb); err != nil {
		return err
	}
	stop()
	sec := cfg.interval.Seconds() * float64(cfg.rounds)
	label := fmt.Sprintf("sim N=%d S=%dk", n, s/1000)
	full := n == 100 && s == 100_000
	g := func(v float64, unit string) goal {
		if !full {
			return goal{}
		}
		return goal{kind: atMost, value: v, unit: unit}
	}
	slices.Sort(res.scrapes)
	fullEvery := cfg.fullEvery
	if fullEvery == 0 {
		fullEvery = snapshot.DefaultFullEvery
	}
	note := fmt.Sprintf("%d rounds at a nominal %s interval; full every %d", cfg.rounds, cfg.interval, fullEvery)
	rep.add(
		newRow(label+": broadcast ingress", "MB/s", res.wireBytes/cfg.interval.Seconds()/1e6, math.NaN(), g(10, "MB/s"),
			fmt.Sprintf("%.0f messages per interval; %s", res.msgs, note)),
		newRow(label+": node CPU", "cores", res.cpu.Seconds()/sec, math.NaN(), goal{},
			fmt.Sprintf("CPU time to store a round / nominal interval; a round took %s of wall time", (res.wall/time.Duration(cfg.rounds)).Round(time.Millisecond))),
		newRow(label+": node RSS", "MB", float64(res.rss)/1e6, math.NaN(), g(2000, "MB"), fmt.Sprintf("peak %.0f MB, after the cluster scrapes", float64(res.hwm)/1e6)),
		newRow(label+": Redis used_memory", "MB", float64(res.redisBytes)/1e6, math.NaN(), goal{}, "the node's Redis: peers' snapshots (its own aggregate is empty)"),
		newRow(label+": /metrics/cluster?name= p50", "ms", median(res.scrapes), math.NaN(), goal{}, "one scrape after each round, every peer at a new version"),
		newRow(label+": /metrics/cluster?name= max", "ms", slices.Max(res.scrapes), math.NaN(), g(1000, "ms"), ""),
	)
	return nil
}

func waitReady(ctx context.Context, url string, done chan error) error {
	return poll(ctx, time.Minute, func() error {
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
	})
}

// scrapeCounter sums the samples of name whose label is value, from a text
// exposition at url.
func scrapeCounter(ctx context.Context, url, name, label, value string) (float64, error) {
	s, err := scrape(ctx, url, acceptText, false)
	if err != nil {
		return 0, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(s.body))
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum, nil
}

// redisUsedMemory is INFO memory's used_memory.
func redisUsedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO memory: no used_memory")
}
