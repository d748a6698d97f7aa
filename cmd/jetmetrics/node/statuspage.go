package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/version"

	"github.com/jetmetrics/jetmetrics/streams"
)

// ui holds the status page's template, stylesheet and script: the page
// loads nothing from elsewhere.
//
//go:embed ui
var ui embed.FS

// Bounds of the status page's work per request.
const (
	// statusMaxSparklines is how many volumes, the first ones shown, get
	// a sparkline: each is a read of the observation stream (cached for
	// an observe interval).
	statusMaxSparklines = 50
	// statusHistoryWindow and statusHistoryLimit bound a sparkline's
	// read: the last hour, at most an hour of 10 s polls.
	statusHistoryWindow = time.Hour
	statusHistoryLimit  = 360
	// statusSparkPoints is the most points a sparkline draws; longer
	// series are averaged into that many buckets.
	statusSparkPoints = 90
	// statusBudget bounds the whole page's reads.
	statusBudget = 5 * time.Second
	// statusRefresh is how often the page's script refreshes the
	// sections by default; ?refresh=<seconds> (1 to 300) changes it.
	statusRefresh = 5 * time.Second
)

// statusMaxRows is how many volumes and services the page lists; the rest
// are counted ("and N more") and left to the JSON API. A variable so the
// tests can lower it.
var statusMaxRows = 200

// statusPage serves / and its assets. It keeps what it needs between
// requests: the counters seen, for rates, and the sparklines read.
type statusPage struct {
	n      *Node
	tmpl   *template.Template
	assets map[string]asset
	rates  rates
	sparks sparks
}

// asset is an embedded file served under /ui/.
type asset struct {
	body        []byte
	contentType string
	// ref is its URL with a digest of its content, so a browser may
	// cache it for long and still never runs an old script on a new page.
	ref string
}

// statusRoutes serves the status page at / and its stylesheet and script
// under /ui/. They are behind the node's web auth like every other route.
func (n *Node) statusRoutes(mux *http.ServeMux) {
	p, err := newStatusPage(n)
	if err != nil {
		panic(err) // the embedded files are part of the binary
	}
	mux.HandleFunc("GET /{$}", p.serve)
	mux.HandleFunc("GET /ui/{file}", p.serveAsset)
}

func newStatusPage(n *Node) (*statusPage, error) {
	p := &statusPage{n: n, assets: map[string]asset{}}
	for _, name := range []string{"status.css", "status.js"} {
		b, err := ui.ReadFile("ui/" + name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		p.assets[name] = asset{body: b, contentType: mime.TypeByExtension(path.Ext(name)),
			ref: "/ui/" + name + "?v=" + hex.EncodeToString(sum[:6])}
	}
	if p.assets["status.js"].contentType == "" {
		return nil, fmt.Errorf("no MIME type for .js")
	}
	tmpl, err := template.New("status.html.tmpl").Funcs(template.FuncMap{
		"asset":     func(name string) string { return p.assets[name].ref },
		"ago":       ago,
		"rfc3339":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"seconds":   formatSeconds,
		"figure":    formatFigure,
		"bytesRate": formatBytesRate,
	}).ParseFS(ui, "ui/status.html.tmpl")
	if err != nil {
		return nil, err
	}
	p.tmpl = tmpl
	return p, nil
}

func (p *statusPage) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := p.assets[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(a.body)
}

// statusCSP lets the page load only its own stylesheet and script and
// fetch only itself; the inline SVG sparklines are markup, not images.
const statusCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// serve renders the page. It answers 200 whatever the node's state: a
// section that cannot be read says why, in place.
func (p *statusPage) serve(w http.ResponseWriter, r *http.Request) {
	refresh := statusRefresh
	if v := r.URL.Query().Get("refresh"); v != "" {
		s, err := strconv.Atoi(v)
		if err != nil || s < 1 || s > 300 {
			http.Error(w, fmt.Sprintf("refresh %q: want whole seconds from 1 to 300", v), http.StatusBadRequest)
			return
		}
		refresh = time.Duration(s) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), statusBudget)
	defer cancel()
	v := p.view(ctx, time.Now())
	v.RefreshMillis = refresh.Milliseconds()
	var b bytes.Buffer
	if err := p.tmpl.Execute(&b, v); err != nil {
		p.n.log.Warn().Err(err).Msg("render the status page")
		http.Error(w, "render the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", statusCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// statusView is what the page shows.
type statusView struct {
	Node, Version string
	Now           time.Time
	RefreshMillis int64

	Ready  bool
	Checks []statusCheck

	Nodes    []nodeEntry
	NodesErr string

	Agg    aggregatorView
	DLQ    dlqView
	Assets map[string]string

	Volumes     []volumeRow
	VolumesMore int
	VolumesErr  string
	// Sparklines is how many of the volumes shown may have one.
	Sparklines int

	Services     []serviceRow
	ServicesMore int
	ServicesErr  string
}

// statusCheck is one line of /-/ready.
type statusCheck struct {
	Name, Detail string
	OK           bool
}

type aggregatorView struct {
	Err string
	// Present says the aggregator's metrics were found.
	Present                          bool
	Pending, Applied, Series         float64
	Resumes, SnapshotFailures        float64
	Messages                         []labelled
	MessageRates                     []labelled
	UpdatesRate                      *float64
	RateWindow                       string
	AppliedMessages, RejectedUpdates float64
}

// labelled is a figure by label value.
type labelled struct {
	Label string
	Value float64
}

type dlqView struct {
	Stream   string
	Total    uint64
	ByReason []labelled
	Err      string
}

type volumeRow struct {
	volumeEntry
	Spark template.HTML
}

type serviceRow struct {
	serviceEntry
	Spark template.HTML
}

// view reads everything the page shows, each section on its own: one
// failing leaves the others.
func (p *statusPage) view(ctx context.Context, now time.Time) statusView {
	n := p.n
	v := statusView{Node: n.cfg.Name, Version: buildVersion(), Now: now, Assets: map[string]string{}}
	for name, a := range p.assets {
		v.Assets[name] = a.ref
	}
	report, err := n.Readiness(ctx)
	v.Ready = err == nil
	v.Checks = parseReadiness(report)

	if nodes, err := n.nodeList(ctx, now); err != nil {
		v.NodesErr = err.Error()
		v.Nodes = []nodeEntry{{Name: n.cfg.Name, Role: "self", Up: true}}
	} else {
		v.Nodes = nodes
	}

	v.Agg = p.aggregator(now)
	v.DLQ = p.dlq(ctx)

	switch s := n.volumes.Load(); {
	case len(n.volumeList()) == 0:
	case s == nil:
		v.VolumesErr = "the volume observer is starting"
	default:
		list := s.list(ctx, statusMaxRows, now)
		v.VolumesMore = len(s.vols) - len(list)
		v.Sparklines = min(len(list), statusMaxSparklines)
		names := make([]string, v.Sparklines)
		for i := range names {
			names[i] = list[i].Volume
		}
		points := p.sparks.get(ctx, s, names, now)
		v.Volumes = make([]volumeRow, len(list))
		for i, e := range list {
			v.Volumes[i] = volumeRow{volumeEntry: e, Spark: sparkline(points[e.Volume], "IOPS (read and write) over the last hour")}
		}
	}

	switch s := n.services.Load(); {
	case s == nil && !n.probing():
	case s == nil:
		v.ServicesErr = "the probe observer is starting"
	default:
		list, err := s.list(ctx, statusMaxRows)
		if err != nil {
			v.ServicesErr = err.Error()
			break
		}
		v.ServicesMore = len(s.names) - len(list)
		v.Services = make([]serviceRow, len(list))
		for i, e := range list {
			v.Services[i] = serviceRow{serviceEntry: e, Spark: sparkline(e.samples, "latency of the recent probes")}
		}
	}
	return v
}

// parseReadiness splits /-/ready's report ("name: ok" or "name: why not",
// a line each) into checks; a line that is not one continues the last.
func parseReadiness(report string) []statusCheck {
	var out []statusCheck
	for line := range strings.Lines(report) {
		line = strings.TrimRight(line, "\n")
		if line == "" {
			continue
		}
		name, detail, ok := strings.Cut(line, ": ")
		if !ok || strings.ContainsAny(name, " \t") {
			if len(out) > 0 {
				out[len(out)-1].Detail += "\n" + line
			}
			continue
		}
		out = append(out, statusCheck{Name: name, Detail: detail, OK: detail == "ok"})
	}
	return out
}

// buildVersion is the version the binary was built as.
func buildVersion() string {
	if version.Version != "" {
		return version.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		if v != "" {
			return v
		}
	}
	return "unknown"
}

// aggregator reads the aggregator's figures from the node's registry, as
// /metrics shows them, and their rates since an earlier request.
func (p *statusPage) aggregator(now time.Time) aggregatorView {
	var v aggregatorView
	fams, err := p.n.reg.Gather()
	if err != nil {
		// Gather returns what it could gather with the error.
		v.Err = err.Error()
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	single := func(name string) (float64, bool) {
		f := byName[name]
		if f == nil || len(f.GetMetric()) == 0 {
			return 0, false
		}
		m := f.GetMetric()[0]
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue(), true
		}
		return m.GetGauge().GetValue(), true
	}
	v.Pending, v.Present = single("jetmetrics_aggregator_pending_messages")
	v.Applied, _ = single("jetmetrics_aggregator_applied_sequence")
	v.Series, _ = single("jetmetrics_aggregator_series")
	v.Resumes, _ = single("jetmetrics_aggregator_resumes_total")
	v.SnapshotFailures, _ = single("jetmetrics_snapshot_failures_total")
	updates, haveUpdates := single("jetmetrics_aggregator_series_updates_total")
	counters := map[string]float64{}
	if f := byName["jetmetrics_aggregator_messages_total"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					v.Messages = append(v.Messages, labelled{l.GetValue(), m.GetCounter().GetValue()})
					counters["messages "+l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if haveUpdates {
		counters["updates"] = updates
	}
	past, window := p.rates.sample(now, counters)
	if past != nil {
		v.RateWindow = window.Round(time.Second).String()
		secs := window.Seconds()
		for _, m := range v.Messages {
			if old, ok := past["messages "+m.Label]; ok && m.Value >= old {
				v.MessageRates = append(v.MessageRates, labelled{m.Label, (m.Value - old) / secs})
			}
		}
		if old, ok := past["updates"]; ok && haveUpdates && updates >= old {
			r := (updates - old) / secs
			v.UpdatesRate = &r
		}
	}
	return v
}

// rates keeps a few samples of the aggregator's counters, one per
// rateSpacing at most, to compute rates over the last minute or so.
type rates struct {
	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	at       time.Time
	counters map[string]float64
}

const (
	rateSpacing = 2 * time.Second
	rateWindow  = time.Minute
	rateKeep    = 32
)

// sample records counters at now and returns the oldest sample at most
// rateWindow old (and at least rateSpacing) with its distance to now, or
// nil when there is none yet.
func (r *rates) sample(now time.Time, counters map[string]float64) (map[string]float64, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = slices.DeleteFunc(r.samples, func(s rateSample) bool { return now.Sub(s.at) > rateWindow || s.at.After(now) })
	var past map[string]float64
	var window time.Duration
	for _, s := range r.samples {
		if d := now.Sub(s.at); d >= rateSpacing {
			past, window = s.counters, d
			break
		}
	}
	if len(r.samples) == 0 || now.Sub(r.samples[len(r.samples)-1].at) >= rateSpacing {
		if len(r.samples) == rateKeep {
			r.samples = r.samples[1:]
		}
		r.samples = append(r.samples, rateSample{at: now, counters: counters})
	}
	return past, window
}

// dlq reads the dead-letter stream's depth by reason.
func (p *statusPage) dlq(ctx context.Context) dlqView {
	v := dlqView{Stream: p.n.cfg.Streams.DeadLetterStream()}
	nc := p.n.nc.Load()
	if nc == nil {
		v.Err = "nats: not connected"
		return v
	}
	js, err := jetstream.New(nc)
	if err != nil {
		v.Err = err.Error()
		return v
	}
	st, err := js.Stream(ctx, v.Stream)
	if err != nil {
		v.Err = err.Error()
		return v
	}
	prefix := p.n.cfg.Streams.Subjects().DeadLetter("")
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		v.Err = err.Error()
		return v
	}
	v.Total = info.State.Msgs
	for subj, count := range info.State.Subjects {
		v.ByReason = append(v.ByReason, labelled{strings.TrimPrefix(subj, prefix), float64(count)})
	}
	slices.SortFunc(v.ByReason, func(a, b labelled) int { return strings.Compare(a.Label, b.Label) })
	return v
}

// sparks caches each volume's points of the last hour for an observe
// interval, so a page refreshed every few seconds reads the stream once a
// poll.
type sparks struct {
	mu      sync.Mutex
	entries map[string]sparkEntry
}

type sparkEntry struct {
	read   time.Time
	points []float64
}

// get returns the points of each of names, reading those not read within
// the volume observer's interval. A volume whose read fails keeps its
// last points; the cache forgets the volumes no longer asked for.
func (c *sparks) get(ctx context.Context, s *volumeService, names []string, now time.Time) map[string][]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[string]sparkEntry, len(names))
	out := make(map[string][]float64, len(names))
	for _, name := range names {
		e, ok := c.entries[name]
		if !ok || now.Sub(e.read) >= s.obs.ObserveInterval {
			if results, err := s.history(ctx, name, now.Add(-statusHistoryWindow), statusHistoryLimit); err == nil {
				e = sparkEntry{read: now, points: iopsPoints(results)}
			}
		}
		next[name], out[name] = e, e.points
	}
	c.entries = next
	return out
}

// iopsPoints are the read and write IOPS of the successful results,
// oldest first (history is newest first).
func iopsPoints(results []streams.Observation) []float64 {
	out := make([]float64, 0, len(results))
	for i := len(results) - 1; i >= 0; i-- {
		if o := results[i]; o.Status == streams.ObsStatusOK {
			out = append(out, o.Metric.IOPSRead+o.Metric.IOPSWrite)
		}
	}
	return out
}

// State is "up", "down" or "unknown" (no probe folded yet).
func (r serviceRow) State() string {
	switch {
	case r.Up == nil:
		return "unknown"
	case *r.Up:
		return "up"
	}
	return "down"
}

// State is "ok", "error" (the last poll failed), "stale", or "unknown"
// (nothing cached).
func (r volumeRow) State() string {
	switch {
	case r.CacheError != "" || r.ObservedAt == nil:
		return "unknown"
	case r.Status != "" && r.Status != streams.ObsStatusOK:
		return "error"
	case r.Stale:
		return "stale"
	}
	return "ok"
}
