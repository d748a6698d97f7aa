package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// hotPathPackage holds the paired benchmarks: each Benchmark… runs the
// SDK (…/jetmetrics) and client_golang (…/client_golang) doing the same.
const hotPathPackage = "./producers/"

// hotPathConfig sets how the Go benchmarks run.
type hotPathConfig struct {
	benchtime string
	count     int
	// output, when set, is `go test -bench` output to read instead of
	// running the benchmarks.
	output string
}

// benchResult is one benchmark's runs.
type benchResult struct {
	nsPerOp []float64
	allocs  []float64
}

// benchLine matches a result line of `go test -bench -benchmem`.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op\s+([\d.]+) allocs/op)?`)

// parseBenchOutput collects the runs of every benchmark in out, by name
// without the GOMAXPROCS suffix.
func parseBenchOutput(out io.Reader) (map[string]*benchResult, error) {
	res := map[string]*benchResult{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ns, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, fmt.Errorf("benchmark line %q: %w", sc.Text(), err)
		}
		r := res[m[1]]
		if r == nil {
			r = &benchResult{}
			res[m[1]] = r
		}
		r.nsPerOp = append(r.nsPerOp, ns)
		allocs := math.NaN()
		if m[4] != "" {
			allocs, _ = strconv.ParseFloat(m[4], 64)
		}
		r.allocs = append(r.allocs, allocs)
	}
	return res, sc.Err()
}

// best is the fastest run: noise on a shared machine only adds time, so
// the fastest of runs interleaved with the peer's is the truest of each.
func best(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return slices.Min(v)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// hotPath runs the producers' paired benchmarks and the latency
// tracker's (or reads their output) and compares each of ours with
// client_golang's from the same run.
func hotPath(ctx context.Context, cfg hotPathConfig, log io.Writer) ([]row, error) {
	var out []byte
	if cfg.output != "" {
		out = []byte(cfg.output)
	} else {
		args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem",
			"-benchtime", cfg.benchtime, "-count", strconv.Itoa(cfg.count), hotPathPackage, trackerPackage}
		fmt.Fprintf(log, "hot path: go %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, "go", args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		var err error
		out, err = cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("hot path benchmarks: %w\n%s%s", err, out, stderr.Bytes())
		}
	}
	res, err := parseBenchOutput(bytes.NewReader(out))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(res))
	for name := range res {
		names = append(names, name)
	}
	slices.Sort(names)
	var rows []row
	worstAllocs, worstName := 0.0, ""
	for _, name := range names {
		base, variant, ok := strings.Cut(name, "/jetmetrics")
		if !ok {
			continue
		}
		peer := res[base+"/client_golang"]
		if peer == nil {
			continue
		}
		ours := res[name]
		op := strings.TrimPrefix(base, "Benchmark")
		if variant != "" {
			op += " (" + strings.TrimPrefix(variant, "_") + ")"
		}
		allocs := slices.Max(ours.allocs)
		if allocs > worstAllocs || worstName == "" {
			worstAllocs, worstName = allocs, op
		}
		note := fmt.Sprintf("best of %d interleaved runs (median %.3g vs %.3g); %.0f allocs/op (peer %.0f)",
			len(ours.nsPerOp), median(ours.nsPerOp), median(peer.nsPerOp), allocs, slices.Max(peer.allocs))
		rows = append(rows, newRow("hot path: "+op, "ns/op", best(ours.nsPerOp), best(peer.nsPerOp),
			goal{kind: ratioAtMost, value: 1}, note))
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("hot path: no paired benchmarks in the output of %s", hotPathPackage)
	}
	tracker, trackerAllocs, err := trackerRows(res, cfg.output != "")
	if err != nil {
		return nil, err
	}
	rows = append(rows, tracker...)
	if trackerAllocs > worstAllocs {
		worstAllocs, worstName = trackerAllocs, "latency Tracker.Observe"
	}
	rows = append(rows, newRow("hot path: allocations, worst operation", "allocs/op", worstAllocs, math.NaN(),
		goal{kind: atMost, value: 0, unit: "allocs/op"}, worstName))
	return rows, nil
}
