package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// goal is a figure's target: a bound on the ratio ours/peer, a bound on
// ours alone, or none (the figure is reported, not judged).
type goal struct {
	kind  goalKind
	value float64
	unit  string // of an absolute bound, for printing
}

type goalKind int

const (
	noGoal       goalKind = iota
	ratioAtMost           // ours/peer ≤ value
	ratioAtLeast          // ours/peer ≥ value
	atMost                // ours ≤ value
)

func (g goal) String() string {
	switch g.kind {
	case ratioAtMost:
		return "≤ " + strconv.FormatFloat(g.value, 'f', -1, 64) + "×"
	case ratioAtLeast:
		return "≥ " + strconv.FormatFloat(g.value, 'f', -1, 64) + "×"
	case atMost:
		return "≤ " + formatValue(g.value, g.unit) + " " + g.unit
	}
	return "—"
}

// row is one line of the table: a figure, ours, the peer's from the same
// run, their ratio and the verdict.
type row struct {
	Figure string  `json:"figure"`
	Unit   string  `json:"unit"`
	Ours   float64 `json:"ours"`
	// Peer is NaN when the figure has no peer.
	Peer   float64 `json:"-"`
	Ratio  float64 `json:"-"`
	Target string  `json:"target"`
	// Verdict is "pass", "miss" or "" when the figure has no target.
	Verdict string `json:"verdict,omitempty"`
	Note    string `json:"note,omitempty"`
	goal    goal
}

// MarshalJSON writes Peer and Ratio only when they are numbers.
func (r row) MarshalJSON() ([]byte, error) {
	type plain row
	out := struct {
		plain
		Peer  *float64 `json:"peer,omitempty"`
		Ratio *float64 `json:"ratio,omitempty"`
	}{plain: plain(r)}
	if !math.IsNaN(r.Peer) {
		out.Peer = &r.Peer
	}
	if !math.IsNaN(r.Ratio) && !math.IsInf(r.Ratio, 0) {
		out.Ratio = &r.Ratio
	}
	return json.Marshal(out)
}

// newRow judges ours against peer (NaN for none) with g.
func newRow(figure, unit string, ours, peer float64, g goal, note string) row {
	r := row{Figure: figure, Unit: unit, Ours: ours, Peer: peer, Ratio: math.NaN(), Target: g.String(), Note: note, goal: g}
	if !math.IsNaN(peer) && peer != 0 {
		r.Ratio = ours / peer
	}
	pass := false
	switch g.kind {
	case noGoal:
		return r
	case ratioAtMost:
		pass = r.Ratio <= g.value
	case ratioAtLeast:
		pass = r.Ratio >= g.value
	case atMost:
		pass = ours <= g.value
	}
	r.Verdict = "miss"
	if pass {
		r.Verdict = "pass"
	}
	return r
}

// report is everything a run produces.
type report struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Machine  machine   `json:"machine"`
	Rows     []row     `json:"rows"`
	// Failures are checks that went wrong: a figure that could not be
	// measured or an exposition that did not parse back.
	Failures []string `json:"failures,omitempty"`
}

func (r *report) add(rows ...row) { r.Rows = append(r.Rows, rows...) }

func (r *report) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// machine describes where the run happened: the figures only compare
// within one run.
type machine struct {
	CPUs     int    `json:"nproc"`
	CPUModel string `json:"cpu_model"`
	MemTotal string `json:"mem_total"`
	Go       string `json:"go"`
	Commit   string `json:"commit,omitempty"`
}

func (r *report) print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "jetmetrics benchmarks, %s, %s (%s)\n", r.Started.Format(time.RFC3339), r.Duration, m.Commit)
	fmt.Fprintf(w, "machine: nproc %d, %s, memory %s, %s\n\n", m.CPUs, m.CPUModel, m.MemTotal, m.Go)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tunit\tours\tpeer\tratio\ttarget\t\tnote")
	for _, x := range r.Rows {
		peer, ratio := "—", "—"
		if !math.IsNaN(x.Peer) {
			peer = formatValue(x.Peer, x.Unit)
		}
		if !math.IsNaN(x.Ratio) {
			ratio = strconv.FormatFloat(x.Ratio, 'f', 2, 64) + "×"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Figure, x.Unit, formatValue(x.Ours, x.Unit), peer, ratio, x.Target, x.Verdict, x.Note)
	}
	tw.Flush()
	pass, miss := 0, 0
	for _, x := range r.Rows {
		switch x.Verdict {
		case "pass":
			pass++
		case "miss":
			miss++
		}
	}
	fmt.Fprintf(w, "\n%d targets met, %d missed\n", pass, miss)
	for _, f := range r.Failures {
		fmt.Fprintln(w, "FAILED:", f)
	}
}

// writeMarkdown writes the table as Markdown, for docs/performance.md.
func (r *report) writeMarkdown(path string) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "Run %s (%s, commit %s) on nproc %d, %s, memory %s, %s.\n\n", r.Started.Format("2006-01-02 15:04 MST"), r.Duration, m.Commit, m.CPUs, m.CPUModel, m.MemTotal, m.Go)
	b.WriteString("| figure | unit | ours | peer | ratio | target | | note |\n|---|---|--:|--:|--:|---|---|---|\n")
	for _, x := range r.Rows {
		peer, ratio := "—", "—"
		if !math.IsNaN(x.Peer) {
			peer = formatValue(x.Peer, x.Unit)
		}
		if !math.IsNaN(x.Ratio) {
			ratio = strconv.FormatFloat(x.Ratio, 'f', 2, 64) + "×"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", x.Figure, x.Unit, formatValue(x.Ours, x.Unit), peer, ratio, x.Target, x.Verdict, strings.ReplaceAll(x.Note, "|", "\\|"))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// formatValue prints v with as many digits as its size calls for.
func formatValue(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case unit == "allocs/op" || strings.HasSuffix(unit, "/s") && v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
