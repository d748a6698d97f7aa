// Command bench measures jetmetrics beside the software its users would
// otherwise pick, in the same run on the same machine, and prints one table
// of ratios (issue 4): the SDK's hot path against client_golang, ingest
// end to end against Redis's pipelined HINCRBY ceiling, exposition against
// client_golang's registry served by promhttp, snapshot size and spread,
// and a node's memory.
//
//	go run ./tests/bench [--out report.json] [--figures hotpath,ingest,...]
//
// Everything runs on loopback: an embedded nats-server, real redis-server
// children and nodes in this process (the memory figure runs the jetmetrics
// binary as a child). Every load loop is bounded in count and time.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// figureNames are the figures in the order they run.
var figureNames = []string{"hotpath", "ingest", "exposition", "snapshot", "memory", "start", "observe", "probes", "volume-api"}

// extraFigures run only when --figures names them: the sim figure
// (go tool task sim) takes from minutes to an hour.
var extraFigures = []string{"sim"}

type config struct {
	out                    string
	markdown               string
	figures                []string
	series                 int
	hot                    hotPathConfig
	expo                   expoConfig
	ingest                 ingestConfig
	observe                observeConfig
	probes                 probesConfig
	volumeAPI              volumeAPIConfig
	profileDir             string
	nodeBin                string
	startPlain, startHists int
	memoryWide             int
	memoryLimit            string
	memoryProfile          string
	sim                    simConfig
	verbose                bool
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	figures := fs.String("figures", strings.Join(figureNames, ","), "figures to run, comma separated: "+strings.Join(figureNames, ", "))
	hotOutput := fs.String("hotpath.from", "", "read `go test -bench` output of ./producers and ./pkg/latency from this file instead of running it")
	fs.StringVar(&cfg.out, "out", "", "also write the table as JSON to this file")
	fs.StringVar(&cfg.markdown, "markdown", "", "also write the table as Markdown to this file")
	fs.IntVar(&cfg.series, "series", 100_000, "series per node in the exposition, snapshot and memory figures")
	fs.StringVar(&cfg.hot.benchtime, "hotpath.benchtime", "100ms", "-benchtime of the hot path benchmarks")
	fs.IntVar(&cfg.hot.count, "hotpath.count", 5, "-count of the hot path benchmarks (the table shows the best run of each)")
	fs.IntVar(&cfg.expo.scrapes, "exposition.scrapes", 3, "timed scrapes per exposition case of /metrics; /metrics/cluster one fewer, at least 2")
	fs.IntVar(&cfg.ingest.producers, "ingest.producers", 4, "producer processes of the ingest figure")
	fs.IntVar(&cfg.ingest.series, "ingest.series", 25_000, "series each producer updates every flush at saturation")
	fs.DurationVar(&cfg.ingest.duration, "ingest.duration", 8*time.Second, "how long each ingest phase measures")
	fs.IntVar(&cfg.ingest.backlog, "ingest.backlog", 1_500_000, "deltas published before a node drains them")
	fs.Float64Var(&cfg.ingest.latencyAt, "ingest.latency-at", 0, "measure only publish→visible latency, with producers offering this many deltas/s (0: the whole figure)")
	fs.DurationVar(&cfg.ingest.latencyFlush, "ingest.latency-flush", 250*time.Millisecond, "the producers' flush interval with -ingest.latency-at")
	fs.IntVar(&cfg.observe.volumes, "observe.volumes", 1000, "volumes of the observe figure")
	fs.IntVar(&cfg.observe.nodes, "observe.nodes", 3, "nodes sharing the volumes in the observe figure")
	fs.DurationVar(&cfg.observe.interval, "observe.interval", 10*time.Second, "the observe figure's poll interval")
	fs.IntVar(&cfg.observe.intervals, "observe.intervals", 3, "intervals the observe figure measures once the leases settled")
	fs.DurationVar(&cfg.observe.leaseTTL, "observe.lease-ttl", 30*time.Second, "the observe figure's lease TTL")
	fs.IntVar(&cfg.probes.schedule.volumes, "probes.services", 1000, "services of the probes figure")
	fs.IntVar(&cfg.probes.schedule.nodes, "probes.nodes", 3, "nodes sharing the services in the probes figure")
	fs.DurationVar(&cfg.probes.schedule.interval, "probes.interval", 10*time.Second, "the probes figure's probe interval")
	fs.IntVar(&cfg.probes.schedule.intervals, "probes.intervals", 3, "intervals the probes figure measures once the leases settled")
	fs.DurationVar(&cfg.probes.schedule.leaseTTL, "probes.lease-ttl", 30*time.Second, "the probes figure's lease TTL")
	fs.IntVar(&cfg.probes.backlog, "probes.backlog", 100_000, "probe results the latency state writer folds in the probes figure")
	fs.IntVar(&cfg.volumeAPI.clients, "volume-api.clients", 200, "concurrent clients of the volume-api figure")
	fs.DurationVar(&cfg.volumeAPI.duration, "volume-api.duration", 5*time.Second, "how long each path of the volume-api figure is measured")
	fs.DurationVar(&cfg.volumeAPI.backendDelay, "volume-api.backend-delay", 50*time.Millisecond, "how long the volume-api figure's backend takes to answer")
	fs.IntVar(&cfg.startPlain, "start.series", 1_000_000, "plain series of the start figure")
	fs.IntVar(&cfg.startHists, "start.histograms", 100_000, "histogram series of 64 buckets of the start figure")
	simPeers := fs.String("sim.peers", "10,30,100", "simulated peers (N) of the sim figure, comma separated")
	simSeries := fs.String("sim.series", "10k,100k", "series per simulated peer (S) of the sim figure, comma separated")
	simQuick := fs.Bool("sim.quick", false, "the sim figure's quick mode: S=10k only and 2 rounds (a few minutes on 2 cores)")
	fs.IntVar(&cfg.sim.rounds, "sim.rounds", 4, "intervals the sim figure measures per case, after the first full one")
	fs.IntVar(&cfg.sim.fullEvery, "sim.full-every", 0, "the simulated peers' --snapshot.full-every (0: the default)")
	fs.DurationVar(&cfg.sim.interval, "sim.interval", 5*time.Second, "the nominal snapshot interval the sim figure reports rates at")
	fs.IntVar(&cfg.memoryWide, "memory.wide-series", 20_000, "wide series (16 labels of 256 B) per node in the memory figure; 0 skips them")
	fs.StringVar(&cfg.memoryLimit, "memory.limit", "512MiB", "the --memory.limit of a second wide node in the memory figure; empty skips it")
	fs.StringVar(&cfg.memoryProfile, "memory.heap-profile", "", "write the heap profile of a node holding the memory figure's wide series (run in this process) to this file")
	fs.StringVar(&cfg.nodeBin, "node.bin", "", "jetmetrics binary the memory figure runs; empty builds one")
	fs.StringVar(&cfg.profileDir, "profile", "", "write a CPU profile of this process per figure into this directory")
	fs.BoolVar(&cfg.verbose, "v", false, "log progress and the servers' warnings to stderr")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	for f := range strings.SplitSeq(*figures, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !slices.Contains(figureNames, f) && !slices.Contains(extraFigures, f) {
			return cfg, fmt.Errorf("--figures: unknown figure %q; want some of %s", f, strings.Join(append(figureNames, extraFigures...), ", "))
		}
		cfg.figures = append(cfg.figures, f)
	}
	if *hotOutput != "" {
		b, err := os.ReadFile(*hotOutput)
		if err != nil {
			return cfg, fmt.Errorf("--hotpath.from: %w", err)
		}
		cfg.hot.output = string(b)
	}
	cfg.expo.series = cfg.series
	if *simQuick {
		*simSeries = "10k"
		cfg.sim.rounds = 2
	}
	var err error
	if cfg.sim.peers, err = parseInts(*simPeers); err != nil {
		return cfg, fmt.Errorf("--sim.peers: %w", err)
	}
	if cfg.sim.series, err = parseInts(*simSeries); err != nil {
		return cfg, fmt.Errorf("--sim.series: %w", err)
	}
	if cfg.sim.rounds < 1 || cfg.sim.interval <= 0 {
		return cfg, fmt.Errorf("--sim.rounds must be at least 1 and --sim.interval positive")
	}
	cfg.sim.nodeBin = cfg.nodeBin
	if cfg.series < 1000 || cfg.expo.scrapes < 1 || cfg.hot.count < 1 || cfg.ingest.producers < 1 || cfg.ingest.series < 1 {
		return cfg, fmt.Errorf("--series must be at least 1000 and the counts at least 1")
	}
	if cfg.observe.volumes < 1 || cfg.observe.nodes < 1 || cfg.observe.intervals < 1 || cfg.observe.interval < time.Second || cfg.observe.leaseTTL < time.Second {
		return cfg, fmt.Errorf("--observe.volumes, --observe.nodes and --observe.intervals must be at least 1, --observe.interval and --observe.lease-ttl at least 1s")
	}
	if p := cfg.probes; p.schedule.volumes < 1 || p.schedule.nodes < 1 || p.schedule.intervals < 1 || p.schedule.interval < time.Second || p.schedule.leaseTTL < time.Second || p.backlog < 1 {
		return cfg, fmt.Errorf("--probes.services, --probes.nodes, --probes.intervals and --probes.backlog must be at least 1, --probes.interval and --probes.lease-ttl at least 1s")
	}
	if cfg.ingest.latencyAt < 0 || cfg.ingest.latencyFlush <= 0 {
		return cfg, fmt.Errorf("--ingest.latency-at must not be negative and --ingest.latency-flush must be positive")
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == childCommand {
		return runChild(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	level := zerolog.WarnLevel
	if cfg.verbose {
		level = zerolog.InfoLevel
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05.000"}).Level(level).With().Timestamp().Logger()
	rep := &report{Started: time.Now(), Machine: describeMachine()}
	for _, fig := range cfg.figures {
		fmt.Fprintf(stderr, "bench: %s…\n", fig)
		start := time.Now()
		if err := runFigure(ctx, fig, cfg, log, rep, stderr); err != nil {
			rep.fail("%s: %v", fig, err)
		}
		fmt.Fprintf(stderr, "bench: %s took %s\n", fig, time.Since(start).Round(time.Millisecond))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	rep.Duration = time.Since(rep.Started).Round(time.Second).String()
	rep.print(stdout)
	if cfg.out != "" {
		if err := rep.writeJSON(cfg.out); err != nil {
			return err
		}
	}
	if cfg.markdown != "" {
		if err := rep.writeMarkdown(cfg.markdown); err != nil {
			return err
		}
	}
	if len(rep.Failures) > 0 {
		return fmt.Errorf("%d checks failed", len(rep.Failures))
	}
	return nil
}

// runFigure runs one figure in its own environment, profiled when asked.
func runFigure(ctx context.Context, fig string, cfg config, log zerolog.Logger, rep *report, stderr io.Writer) error {
	if cfg.profileDir != "" && fig != "hotpath" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return err
		}
		f, err := os.Create(cfg.profileDir + "/" + fig + ".cpu.pprof")
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if fig == "hotpath" {
		rows, err := hotPath(ctx, cfg.hot, stderr)
		rep.add(rows...)
		return err
	}
	e, err := newEnv(log)
	if err != nil {
		return err
	}
	defer e.close()
	switch fig {
	case "exposition":
		return expositionFigure(ctx, e, cfg.expo, rep)
	case "ingest":
		return ingestFigure(ctx, e, cfg.ingest, rep)
	case "snapshot":
		return snapshotFigure(ctx, e, cfg.series, rep)
	case "memory":
		return memoryFigure(ctx, e, memoryConfig{series: cfg.series, wideSeries: cfg.memoryWide, limit: cfg.memoryLimit, nodeBin: cfg.nodeBin, heapProfile: cfg.memoryProfile}, rep)
	case "start":
		return startFigure(ctx, e, cfg.startPlain, cfg.startHists, cfg.nodeBin, rep)
	case "observe":
		return observeFigure(ctx, e, cfg.observe, rep)
	case "probes":
		return probesFigure(ctx, e, cfg.probes, rep)
	case "volume-api":
		return volumeAPIFigure(ctx, e, cfg.volumeAPI, rep)
	case "sim":
		return simFigure(ctx, e, cfg.sim, e.log, rep)
	}
	return fmt.Errorf("unknown figure %q", fig)
}
