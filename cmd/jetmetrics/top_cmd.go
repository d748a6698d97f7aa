package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jetmetrics/jetmetrics/streams"
)

const topUsage = `usage: jetmetrics top [--web.url=http://127.0.0.1:9480] [--interval=2s] [--limit=20] [--once]

A live view of a node's busiest series: /metrics is scraped every
--interval and each counter's and histogram's per-second rate over the
interval (a histogram's by its observation count) is listed, busiest
first. On a terminal the view refreshes in place until Ctrl-C; in a pipe,
or with --once, it prints one frame (two scrapes --interval apart) with no
escape codes and exits. The node's own metrics (jetmetrics_*, go_*,
process_*, promhttp_*) are left out unless --self.

example:
  jetmetrics top --web.url=http://127.0.0.1:9480 --interval=5s --limit=10

A node with basic auth in its --web.config.file: --web.username and
--web.password-file (or JETMETRICS_WEB_PASSWORD); with TLS signed by a
private CA: --web.url=https://... and --web.ca-file. The password is sent
over http:// only to a loopback --web.url (127.0.0.0/8, ::1, localhost),
or with --web.insecure-plaintext-auth, and never after a redirect from
https:// to http://.

exit codes: 0 shown (or Ctrl-C); 1 the node answered with an error,
refused the credentials (HTTP 401/403) or redirected a request carrying
the password from https:// to http:// (not followed); 2 usage error; 3
the node was not reached within --timeout.
`

func runTop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	web := addWebFlags(fs)
	interval := fs.Duration("interval", 2*time.Second, "time between scrapes: the window rates are taken over")
	limit := fs.Int("limit", 20, "most series shown")
	once := fs.Bool("once", false, "print one frame and exit, also on a terminal")
	self := fs.Bool("self", false, "include the node's own metrics (jetmetrics_*, go_*, process_*, promhttp_*)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long one scrape may take")
	commandLineOnly(fs, "limit", "once", "self")
	rest, err := parseCommand(fs, args, stdout, topUsage, false)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q (flags are --name=value)", rest[0])}
	}
	switch {
	case *interval < 100*time.Millisecond:
		return flagError("interval", interval.String(), "want 100ms or more")
	case *limit <= 0:
		return flagError("limit", strconv.Itoa(*limit), "want 1 or more")
	case *timeout <= 0:
		return flagError("timeout", timeout.String(), "want a positive duration")
	}
	c, err := web.client(stderr)
	if err != nil {
		return err
	}
	defer c.close()
	base := &web.url
	scrape := func() (map[string]topSample, time.Time, error) {
		sctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		s, err := scrapeRates(sctx, c, *self)
		if err != nil && ctx.Err() == nil {
			if refused(err) {
				return nil, time.Time{}, err
			}
			if sctx.Err() != nil || !strings.Contains(err.Error(), "HTTP ") {
				return nil, time.Time{}, codedError{exitUnreachable, fmt.Errorf("node at --web.url=%s not scraped within --timeout=%v: %v", *base, *timeout, err)}
			}
			return nil, time.Time{}, fmt.Errorf("node at --web.url=%s: %v", *base, err)
		}
		return s, time.Now(), err
	}
	live := isTerminal(stdout) && !*once
	prev, prevAt, err := scrape()
	if err != nil {
		return quietOnCancel(ctx, err)
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if live {
				fmt.Fprintln(stdout)
			}
			return nil // Ctrl-C
		case <-t.C:
		}
		cur, at, err := scrape()
		if err != nil {
			return quietOnCancel(ctx, err)
		}
		rows := topRows(prev, cur, at.Sub(prevAt), *limit)
		if live {
			fmt.Fprint(stdout, "\033[H\033[2J") // home, clear screen
		}
		writeTopFrame(stdout, *base, at, at.Sub(prevAt), len(cur), rows)
		if !live {
			return nil
		}
		prev, prevAt = cur, at
	}
}

// quietOnCancel makes an error caused by Ctrl-C a clean exit.
func quietOnCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// topSample is a series' cumulative count: a counter's value or a
// histogram's observation count.
type topSample struct {
	kind  string
	value float64
}

// topRow is one line of the view.
type topRow struct {
	series string
	kind   string
	rate   float64
	total  float64
}

// scrapeRates fetches the node's /metrics in the text format and returns
// every counter's and histogram's cumulative count by series.
func scrapeRates(ctx context.Context, c *webClient, self bool) (map[string]topSample, error) {
	url := c.base + "/metrics"
	body, code, err := c.get(ctx, "/metrics", "text/plain;version=0.0.4", 256<<20)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d %s from %s", code, http.StatusText(code), url)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %v", url, err)
	}
	out := map[string]topSample{}
	for name, f := range fams {
		if !self && streams.CheckReservedName(name) != nil {
			continue
		}
		for _, m := range f.GetMetric() {
			var s topSample
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				s = topSample{"counter", m.GetCounter().GetValue()}
			case dto.MetricType_HISTOGRAM:
				s = topSample{"histogram", float64(m.GetHistogram().GetSampleCount())}
			case dto.MetricType_SUMMARY:
				s = topSample{"summary", float64(m.GetSummary().GetSampleCount())}
			default:
				continue
			}
			out[seriesName(name, m.GetLabel())] = s
		}
	}
	return out, nil
}

func seriesName(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name + "{")
	for i, l := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.GetName(), l.GetValue())
	}
	b.WriteByte('}')
	return b.String()
}

// topRows are the limit series of cur with the highest rate since prev,
// dt before; a series that went down was reset and counts from zero.
// Series that did not move are left out.
func topRows(prev, cur map[string]topSample, dt time.Duration, limit int) []topRow {
	sec := dt.Seconds()
	if sec <= 0 {
		return nil
	}
	var rows []topRow
	for k, c := range cur {
		d := c.value
		if p, ok := prev[k]; ok && p.kind == c.kind && p.value <= c.value {
			d = c.value - p.value
		}
		if d <= 0 || math.IsNaN(d) {
			continue
		}
		rows = append(rows, topRow{series: k, kind: c.kind, rate: d / sec, total: c.value})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].rate != rows[j].rate {
			return rows[i].rate > rows[j].rate
		}
		return rows[i].series < rows[j].series
	})
	if len(rows) > limit {
		rows = rows[:limit]
	}
	return rows
}

func writeTopFrame(w io.Writer, base string, at time.Time, dt time.Duration, series int, rows []topRow) {
	fmt.Fprintf(w, "jetmetrics top  %s  %s  rates over %v  %d series, %d moving\n\n",
		base, at.Format("15:04:05"), dt.Round(10*time.Millisecond), series, len(rows))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "RATE/S\tTOTAL\tTYPE\t  SERIES\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t  %s\n", formatRate(r.rate), strconv.FormatFloat(r.total, 'g', 6, 64), r.kind, r.series)
	}
	tw.Flush()
	if len(rows) == 0 {
		fmt.Fprintln(w, "(no counter or histogram moved)")
	}
}

func formatRate(r float64) string {
	switch {
	case r >= 100:
		return strconv.FormatFloat(r, 'f', 0, 64)
	case r >= 1:
		return strconv.FormatFloat(r, 'f', 1, 64)
	default:
		return strconv.FormatFloat(r, 'f', 3, 64)
	}
}
