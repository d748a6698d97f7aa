package exposition

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
)

// HandlerConfig configures a Handler. The zero value serves aggregates
// alone, without a node label, in the text and protobuf formats, gzipped
// when the client asks.
type HandlerConfig struct {
	// NodeLabel adds node="<state's node>" to every series and merges the
	// families of all states by name: the cluster view.
	NodeLabel bool
	// Gatherer, when set, adds families gathered on every request, such as
	// the process's own metrics. They keep their names: a family of the
	// aggregate that would expose one of them is left out, counted in
	// ConflictsName and logged once.
	Gatherer prometheus.Gatherer
	// StateGauges, when set, gives values of the gatherer's unlabelled
	// gauges from the states a response serves, by name, such as the
	// stream sequence they are at: the gatherer's own value, updated apart
	// from the states, may be a later cut than the states served.
	StateGauges func(states []*aggregate.State) map[string]float64
	// Reasons are the rejection reasons shown in RejectedName for every
	// state from the start, at 0 until the first rejection.
	Reasons []string
	// EnableOpenMetrics offers the OpenMetrics text format, as promhttp's
	// option of the same name does.
	EnableOpenMetrics bool
	// ErrorLog receives the errors that do not fail a request: a gatherer
	// error (the families gathered are still served) or a family left out,
	// once when it is first left out. Nil discards them.
	ErrorLog promhttp.Logger
	// CompressionLevel is the deflate level of gzip responses, from 1
	// (fastest) to 9 (smallest); default 5, which compresses about as small
	// as compress/gzip's default in a fraction of its time.
	CompressionLevel int
	// MaxCacheBytes bounds the rendered bytes kept for later requests;
	// default 256 MiB, negative keeps none.
	MaxCacheBytes int64
}

// Defaults of HandlerConfig.
const (
	DefaultCompressionLevel = 5
	DefaultMaxCacheBytes    = 256 << 20
)

// Validate reports the first invalid setting.
func (c HandlerConfig) Validate() error {
	if c.CompressionLevel < 0 || c.CompressionLevel > 9 {
		return fmt.Errorf("exposition: compression level %d: want 1 to 9, or 0 for the default", c.CompressionLevel)
	}
	return nil
}

func (c HandlerConfig) withDefaults() HandlerConfig {
	if c.CompressionLevel == 0 {
		c.CompressionLevel = DefaultCompressionLevel
	}
	if c.MaxCacheBytes == 0 {
		c.MaxCacheBytes = DefaultMaxCacheBytes
	}
	return c
}

// Handler serves aggregates in the Prometheus exposition formats with
// promhttp's content negotiation: text 0.0.4, OpenMetrics 1.0.0 (when
// enabled) and delimited protobuf, identity or gzip. It renders straight
// from the aggregate's series into bytes, with no dto.MetricFamily in
// between, and keeps what it rendered of each node's families at each
// version, so a later request for the same version of a node, the usual
// case for peers in a cluster view, costs a copy. Families of nodes at a
// new version are rendered on every core.
//
// A state is identified by its node and mark: two states of one node at
// one mark must hold the same families, as the aggregates of pkg/aggregate
// do (every change moves the mark). States at mark 0 are never cached.
//
// A Handler is safe for concurrent use.
type Handler struct {
	cfg      HandlerConfig
	accepted []expfmt.Format
	z        *compressor
	cache    *segmentCache

	// logged are the conflicts logged already, so each is logged once
	// while it lasts.
	mu     sync.Mutex
	logged map[string]bool
}

// NewHandler returns a handler configured by cfg.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	accepted := expfmt.DefaultAcceptedFormats()
	if cfg.EnableOpenMetrics {
		accepted = expfmt.DefaultOpenMetricsAcceptedFormats()
	}
	return &Handler{
		cfg:      cfg,
		accepted: accepted,
		z:        newCompressor(cfg.CompressionLevel),
		cache:    newSegmentCache(cfg.MaxCacheBytes),
		logged:   map[string]bool{},
	}, nil
}

// Serve writes states, and the gatherer's families, in the format and
// encoding r negotiates. Like promhttp, it serves only the families named
// by the name[] query parameters when there are any.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, states []*aggregate.State) {
	h.ServeView(w, r, states, Filter{})
}

// ServeView is Serve of the nodes and names f selects. The families served
// are decided from all of states first (see resolve), so a filtered view
// serves what the whole view serves of them.
func (h *Handler) ServeView(w http.ResponseWriter, r *http.Request, states []*aggregate.State, f Filter) {
	ct, gz := h.Head(w, r)
	hdr := w.Header()
	var only map[string]bool
	if r.URL != nil {
		if names := r.URL.Query()["name[]"]; len(names) > 0 {
			only = make(map[string]bool, len(names))
			for _, n := range names {
				only[n] = true
			}
		}
	}
	if len(f.Names) > 0 {
		if only == nil {
			only = map[string]bool{}
			for _, n := range f.Names {
				only[n] = true
			}
		} else {
			for n := range only {
				only[n] = slices.Contains(f.Names, n)
			}
		}
	}
	body := h.body(ct, gz, states, only, f.Nodes)
	hdr.Set("Content-Length", strconv.FormatInt(body.size, 10))
	// A failed write is the client gone; nothing is left to do.
	_, _ = body.WriteTo(w)
}

// Head sets the headers Serve would for r (Vary, Content-Type and
// Content-Encoding) and returns the negotiated format and encoding; it
// renders nothing, so a HEAD request costs no rendering.
func (h *Handler) Head(w http.ResponseWriter, r *http.Request) (expfmt.Format, bool) {
	ct := expfmt.NegotiateAccept(r.Header, h.accepted...)
	gz := negotiateGzip(r)
	hdr := w.Header()
	hdr.Add("Vary", "Accept")
	hdr.Add("Vary", "Accept-Encoding")
	hdr.Set("Content-Type", string(ct))
	if gz {
		hdr.Set("Content-Encoding", "gzip")
	}
	return ct, gz
}

// negotiateGzip reports whether the request prefers gzip to identity, as
// promhttp decides it.
func negotiateGzip(r *http.Request) bool {
	best, bestQ := "identity", -1.0
	for _, offer := range []string{"identity", "gzip"} {
		for _, spec := range parseAcceptEncoding(r.Header.Values("Accept-Encoding")) {
			if spec.q > bestQ && (spec.value == "*" || spec.value == offer) {
				best, bestQ = offer, spec.q
			}
		}
	}
	return best == "gzip" && bestQ != 0
}

type acceptSpec struct {
	value string
	q     float64
}

func parseAcceptEncoding(values []string) []acceptSpec {
	var specs []acceptSpec
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.TrimSpace(k) == "q" {
					if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
						q = f
					}
				}
			}
			specs = append(specs, acceptSpec{value: name, q: q})
		}
	}
	return specs
}

// member is one (state, family) pair of a merged family.
type member struct {
	state *aggregate.State
	fam   *aggregate.Family
	seg   *segment
}

// outFamily is one family of the response: either the aggregate's, merged
// across states, or one gathered as a dto.MetricFamily.
type outFamily struct {
	name    string
	members []member
	dto     *dto.MetricFamily
}

// body builds the response body.
func (h *Handler) body(ct expfmt.Format, gz bool, states []*aggregate.State, only map[string]bool, nodes []string) *body {
	fams := h.families(states, only, nodes)
	f, direct := formatOf(ct)
	if !direct {
		// Protobuf text formats: rare, and served the slow way.
		return h.slowBody(ct, gz, fams)
	}
	h.renderSegments(f, gz, fams)

	b := &body{gzip: gz}
	// fresh collects what is rendered for this response alone, between
	// the cached segments.
	fresh := &appendWriter{}
	flushFresh := func() {
		if len(fresh.b) > 0 {
			b.addFresh(h.z, fresh.b)
			fresh.b = fresh.b[:0]
		}
	}
	enc := expfmt.NewEncoder(fresh, ct)
	for _, of := range fams {
		if of.dto != nil {
			if err := enc.Encode(of.dto); err != nil {
				h.logf("encode %s: %v", of.name, err)
			}
			continue
		}
		first := of.members[0].fam
		if f == formatProto {
			n := 0
			for _, m := range of.members {
				n += int(m.seg.plainLen)
			}
			fresh.b = protoFamilyHeader(fresh.b, of.name, &first.Meta, n)
		} else {
			fresh.b = familyHeader(fresh.b, f, of.name, &first.Meta)
		}
		for _, m := range of.members {
			if m.seg.plainLen == 0 {
				continue
			}
			flushFresh()
			b.addSegment(m.seg)
		}
	}
	if f == formatOpenMetrics {
		fresh.b = append(fresh.b, "# EOF\n"...)
	}
	flushFresh()
	b.finish()
	return b
}

// families lists the response's families sorted by name: the aggregate's
// that resolve keeps, the rejections, the conflicts and the gatherer's.
// only and nodes, when not nil, select names and nodes.
func (h *Handler) families(states []*aggregate.State, only map[string]bool, nodes []string) []outFamily {
	var gathered []*dto.MetricFamily
	if h.cfg.Gatherer != nil {
		var err error
		gathered, err = h.cfg.Gatherer.Gather()
		if err != nil {
			h.logf("error gathering metrics: %v", err)
		}
		h.pinGauges(gathered, states)
	}
	reserved := viewReserved()
	for _, mf := range gathered {
		reserved.addDTO(mf)
	}
	var keep func(node, name string) bool
	if only != nil || len(nodes) > 0 {
		keep = func(node, name string) bool {
			return (len(nodes) == 0 || slices.Contains(nodes, node)) && (name == "" || only == nil || only[name])
		}
	}
	out, conflicts := resolve(states, reserved, keep)
	h.logConflicts(conflicts, keep == nil)

	var kept []*aggregate.State
	for _, st := range states {
		if len(nodes) == 0 || slices.Contains(nodes, st.Node) {
			kept = append(kept, st)
		}
	}
	extra := gathered
	if rej := rejectedFamily(kept, h.cfg.NodeLabel, h.cfg.Reasons); rej != nil {
		extra = append(extra, rej)
	}
	if cf := conflictsFamily(conflicts, h.cfg.NodeLabel); cf != nil {
		extra = append(extra, cf)
	}
	for _, mf := range extra {
		if only != nil && !only[mf.GetName()] {
			continue
		}
		out = append(out, outFamily{name: mf.GetName(), dto: mf})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// pinGauges sets the gauges named by StateGauges to their values in
// states.
func (h *Handler) pinGauges(gathered []*dto.MetricFamily, states []*aggregate.State) {
	if h.cfg.StateGauges == nil {
		return
	}
	values := h.cfg.StateGauges(states)
	for _, mf := range gathered {
		v, ok := values[mf.GetName()]
		if !ok || mf.GetType() != dto.MetricType_GAUGE || len(mf.Metric) != 1 || mf.Metric[0].Gauge == nil {
			continue
		}
		mf.Metric[0].Gauge.Value = proto.Float64(v)
	}
}

// logConflicts logs each conflict once while it lasts: a response of the
// whole view (all) forgets those that have gone, so one that comes back is
// logged again.
func (h *Handler) logConflicts(conflicts []Conflict, all bool) {
	var fresh []string
	h.mu.Lock()
	seen := make(map[string]bool, len(conflicts))
	for i := range conflicts {
		k := conflicts[i].key()
		seen[k] = true
		if !h.logged[k] {
			h.logged[k] = true
			fresh = append(fresh, conflicts[i].String())
		}
	}
	if all {
		for k := range h.logged {
			if !seen[k] {
				delete(h.logged, k)
			}
		}
	}
	h.mu.Unlock()
	for _, msg := range fresh {
		h.logf("%s; counted in %s", msg, ConflictsName)
	}
}

func (h *Handler) logf(format string, args ...any) {
	if h.cfg.ErrorLog != nil {
		h.cfg.ErrorLog.Println(fmt.Sprintf(format, args...))
	}
}

// formatOf maps a negotiated format to one rendered directly; ok is false
// for the protobuf text formats.
func formatOf(ct expfmt.Format) (f format, ok bool) {
	switch ct.FormatType() {
	case expfmt.TypeOpenMetrics:
		return formatOpenMetrics, true
	case expfmt.TypeProtoDelim:
		return formatProto, true
	case expfmt.TypeTextPlain:
		return formatText, true
	}
	return 0, false
}

// slowBody encodes the families through dto and expfmt.
func (h *Handler) slowBody(ct expfmt.Format, gz bool, fams []outFamily) *body {
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, ct)
	for _, of := range fams {
		mf := of.dto
		if mf == nil {
			mf = familyDTO(&of, h.cfg.NodeLabel)
		}
		if err := enc.Encode(mf); err != nil {
			h.logf("encode %s: %v", of.name, err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		_ = c.Close()
	}
	b := &body{gzip: gz}
	b.addFresh(h.z, buf.Bytes())
	b.finish()
	return b
}

// body is a response: plain or deflate pieces, in order, and for gzip the
// framing around them.
type body struct {
	gzip   bool
	pieces [][]byte
	size   int64
	crc    uint32
	n      int64 // plain length
}

func (b *body) add(p []byte) {
	if len(p) > 0 {
		b.pieces = append(b.pieces, p)
		b.size += int64(len(p))
	}
}

// addFresh adds bytes rendered for this response.
func (b *body) addFresh(z *compressor, plain []byte) {
	if !b.gzip {
		b.add(slices.Clone(plain))
		return
	}
	b.addZ(z.compress(nil, plain))
}

func (b *body) addZ(s zsegment) {
	if s.n == 0 {
		return
	}
	if b.size == 0 {
		b.add(gzipHeader)
	}
	b.add(s.data)
	b.crc = crcCombine(b.crc, s.crc, s.n)
	b.n += s.n
}

// addSegment adds a rendered (and perhaps cached) family of one node.
func (b *body) addSegment(s *segment) {
	for i := range s.chunks {
		if b.gzip {
			b.addZ(s.chunks[i].z)
		} else {
			b.add(s.chunks[i].plain)
		}
	}
}

// finish ends a gzip stream; an empty body stays empty in either encoding.
func (b *body) finish() {
	if b.gzip {
		if b.size == 0 {
			b.add(gzipHeader)
		}
		b.add(appendGzipTrailer(nil, b.crc, b.n))
	}
}

// WriteTo writes the body to w.
func (b *body) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, p := range b.pieces {
		k, err := w.Write(p)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
