package backlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Reasons a delta waits for nobody, the values of the reason label.
const (
	// ReasonNoLiveNode: the subject names a node that is neither this node
	// nor a live peer.
	ReasonNoLiveNode = "no_live_node"
	// ReasonMalformedSubject: the subject is neither
	// <prefix>.delta.<node>.<owner>.<owner>-<id> nor the legacy
	// <prefix>.delta.<node>.<producer>, so no aggregator applies it
	// whatever the node (a live node's dead-letters it).
	ReasonMalformedSubject = "malformed_subject"
)

// OtherNodes is the node label of the orphans beyond Config.MaxNames; it is
// not a valid node name, so it never collides with one.
const OtherNodes = "*"

// Config configures a Scanner. Zero values mean the documented defaults.
type Config struct {
	// Node is this node's name: its deltas are never orphans.
	Node string
	// Streams names the delta stream and its subjects.
	Streams streams.Config
	// Interval is how often the stream is scanned (default 30 s).
	Interval time.Duration
	// MaxNames bounds how many node names are exported as labels (default
	// 50); the rest are summed under node="*".
	MaxNames int
	// Applied reports the last delta stream sequence this node's
	// aggregator applied; ok is false while that is not known yet (the
	// node is starting). Nil leaves this node's backlog unmeasured.
	Applied func() (seq uint64, ok bool)
	// Logger receives one line per node name when its orphans appear.
	Logger zerolog.Logger
}

// Defaults of Config.
const (
	DefaultInterval = 30 * time.Second
	DefaultMaxNames = 50
)

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.MaxNames <= 0 {
		c.MaxNames = DefaultMaxNames
	}
	c.Streams = c.Streams.WithDefaults()
	return c
}

// PeerSource lists the peers this node knows; *aggregate.Peers is one.
type PeerSource interface {
	Known(ctx context.Context) ([]aggregate.Peer, error)
}

var _ PeerSource = (*aggregate.Peers)(nil)

// Scanner measures what waits in the delta stream: this node's backlog and
// the deltas waiting for no live node.
type Scanner struct {
	cfg   Config
	js    jetstream.JetStream
	peers PeerSource
	log   zerolog.Logger

	orphans   *prometheus.GaugeVec
	backlog   prometheus.Gauge
	scans     *prometheus.CounterVec
	truncated prometheus.Gauge

	// logged holds the orphan groups already logged; a group that goes
	// away is dropped, so it is logged again if it comes back.
	logged map[group]bool
}

// group is one exported series: a node token and a reason.
type group struct{ node, reason string }

// New returns a scanner of the delta stream reading live peers from peers;
// metrics go to reg.
func New(cfg Config, js jetstream.JetStream, peers PeerSource, reg prometheus.Registerer) (*Scanner, error) {
	cfg = cfg.withDefaults()
	if err := streams.CheckToken("node name", cfg.Node); err != nil {
		return nil, fmt.Errorf("backlog: %w", err)
	}
	s := &Scanner{
		cfg: cfg, js: js, peers: peers,
		log: cfg.Logger.With().Str("node", cfg.Node).Str("stream", cfg.Streams.DeltaStream()).Logger(),
		orphans: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetmetrics_orphan_deltas",
			Help: "Messages in the delta stream that no live node will apply, by node token of the subject and reason (no_live_node, malformed_subject); node=\"*\" sums the names beyond the first 50.",
		}, []string{"node", "reason"}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmetrics_delta_backlog_messages",
			Help: "Messages in the delta stream for this node after the last one its aggregator applied, counted by the delta scan; unlike jetmetrics_aggregator_pending_messages it grows while applies stall.",
		}),
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmetrics_delta_scans_total",
			Help: "Scans of the delta stream for this node's backlog and orphan deltas, by result (ok, error).",
		}, []string{"result"}),
		truncated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmetrics_orphan_scan_truncated",
			Help: "1 when the last scan read only the first page of the delta stream's subjects, so orphans beyond it are not counted.",
		}),
		logged: map[group]bool{},
	}
	for _, r := range []string{"ok", "error"} {
		s.scans.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{s.orphans, s.backlog, s.scans, s.truncated} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("backlog metrics: %w", err)
		}
	}
	return s, nil
}

// Run scans every interval until ctx ends. The first scan waits an
// interval too: a node just started has not yet stored its live peers'
// snapshots, and would count and log their deltas as orphans. A failed
// scan is logged and counted and keeps the last result.
func (s *Scanner) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.scan(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.scans.WithLabelValues("error").Inc()
			s.log.Warn().Err(err).Msg("delta stream scan")
		} else {
			s.scans.WithLabelValues("ok").Inc()
		}
	}
}

// scan measures the backlog and counts the orphans once, and publishes
// the result.
func (s *Scanner) scan(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(s.cfg.Interval, 10*time.Second))
	defer cancel()
	if s.cfg.Applied != nil {
		if seq, ok := s.cfg.Applied(); ok {
			n, err := s.pendingAfter(ctx, s.cfg.Node, seq)
			if err != nil {
				return err
			}
			s.backlog.Set(float64(n))
		}
	}
	known, err := s.peers.Known(ctx)
	if err != nil {
		return err
	}
	peers := make(map[string]aggregate.Peer, len(known))
	for _, p := range known {
		peers[p.Node] = p
	}
	subjects, truncated, err := s.subjectCounts(ctx)
	if err != nil {
		return err
	}
	counts := map[group]uint64{}
	examples := map[group]string{}
	candidates := map[string]bool{}
	prefix := s.cfg.Streams.Prefix + ".delta."
	parser := s.cfg.Streams.Subjects()
	for subj, n := range subjects {
		rest, ok := strings.CutPrefix(subj, prefix)
		if !ok || n == 0 {
			continue
		}
		node, _, _ := strings.Cut(rest, ".")
		g := group{node: node, reason: ReasonMalformedSubject}
		if _, err := parser.ParseDelta(subj); err == nil {
			if g.node == s.cfg.Node || peers[g.node].Live {
				continue
			}
			g.reason = ReasonNoLiveNode
			candidates[g.node] = true
		}
		counts[g] += n
		if ex, ok := examples[g]; !ok || subj < ex {
			examples[g] = subj
		}
	}
	// A known peer that is down or was removed applied its deltas up to its
	// last version: only the later ones wait for nobody.
	for node := range candidates {
		p, ok := peers[node]
		if !ok || p.Version == 0 {
			continue
		}
		waiting, err := s.pendingAfter(ctx, node, p.Version)
		if err != nil {
			return err
		}
		g := group{node: node, reason: ReasonNoLiveNode}
		if waiting == 0 {
			delete(counts, g)
		} else {
			counts[g] = waiting
		}
	}
	s.publish(counts, examples, peers)
	if truncated {
		s.truncated.Set(1)
	} else {
		s.truncated.Set(0)
	}
	return nil
}

// publish sets the gauge to counts, the largest MaxNames node names by
// their own label and the rest under OtherNodes, and logs the groups that
// appeared since the last scan.
func (s *Scanner) publish(counts map[group]uint64, examples map[group]string, peers map[string]aggregate.Peer) {
	groups := make([]group, 0, len(counts))
	for g := range counts {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		if counts[groups[i]] != counts[groups[j]] {
			return counts[groups[i]] > counts[groups[j]]
		}
		return groups[i].node < groups[j].node || groups[i].node == groups[j].node && groups[i].reason < groups[j].reason
	})
	s.orphans.Reset()
	names := map[string]bool{}
	for _, g := range groups {
		label := g.node
		if !names[g.node] && len(names) >= s.cfg.MaxNames {
			label = OtherNodes
		} else {
			names[g.node] = true
		}
		s.orphans.WithLabelValues(label, g.reason).Add(float64(counts[g]))
	}
	for g := range s.logged {
		if _, ok := counts[g]; !ok {
			delete(s.logged, g)
		}
	}
	for _, g := range groups {
		if s.logged[g] {
			continue
		}
		s.logged[g] = true
		ev := s.log.Warn().Str("delta_node", g.node).Str("reason", g.reason).Uint64("messages", counts[g]).Str("subject", examples[g])
		switch p, ok := peers[g.node]; {
		case g.reason == ReasonMalformedSubject:
			ev.Msg("deltas on a subject no node consumes: publish to <prefix>.delta.<node>.<owner>.<owner>-<id>")
		case ok && p.Removed:
			ev.Msg("deltas for a node that was removed: no node will apply them")
		case ok:
			ev.Msg("deltas for a node that is down: applied only if it comes back")
		default:
			ev.Msg("deltas for a node name no node has: GET /api/v1/nodes lists the node names")
		}
	}
}

// streamInfo is the part of the JetStream API's stream info response a
// scan reads.
type streamInfo struct {
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
	State struct {
		Subjects map[string]uint64 `json:"subjects"`
	} `json:"state"`
	Total int `json:"total"`
}

// subjectCounts reads the message count of every delta subject: one
// request, one page. The client's Stream.Info would fetch every page of a
// stream with more subjects than a page holds; one page bounds a scan's
// memory and time.
func (s *Scanner) subjectCounts(ctx context.Context) (map[string]uint64, bool, error) {
	api := s.js.Options().APIPrefix
	if api == "" {
		api = jetstream.DefaultAPIPrefix
	}
	if !strings.HasSuffix(api, ".") {
		api += "."
	}
	req, err := json.Marshal(struct {
		SubjectsFilter string `json:"subjects_filter"`
	}{s.cfg.Streams.Subjects().DeltaAll()})
	if err != nil {
		return nil, false, err
	}
	msg, err := s.js.Conn().RequestWithContext(ctx, api+"STREAM.INFO."+s.cfg.Streams.DeltaStream(), req)
	if err != nil {
		return nil, false, fmt.Errorf("delta stream info: %w", err)
	}
	var info streamInfo
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		return nil, false, fmt.Errorf("delta stream info: %w", err)
	}
	if info.Error != nil {
		return nil, false, fmt.Errorf("delta stream info: %s (%d)", info.Error.Description, info.Error.Code)
	}
	return info.State.Subjects, info.Total > len(info.State.Subjects), nil
}

// pendingAfter counts the messages for node after stream sequence seq.
func (s *Scanner) pendingAfter(ctx context.Context, node string, seq uint64) (uint64, error) {
	return PendingAfter(ctx, s.js, s.cfg.Streams, node, seq)
}

// PendingAfter counts the messages of cfg's delta stream for node after
// stream sequence seq, through a short-lived consumer starting there: no
// message is read. It needs the node role's JetStream permissions on the
// delta stream (stream info, message get, consumer create and delete).
func PendingAfter(ctx context.Context, js jetstream.JetStream, cfg streams.Config, node string, seq uint64) (uint64, error) {
	stream := cfg.DeltaStream()
	filter := cfg.Subjects().DeltaNode(node)
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("delta stream: %w", err)
	}
	last, err := st.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last delta of %s: %w", node, err)
	}
	if last.Sequence <= seq {
		return 0, nil
	}
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     filter,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       seq + 1,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return 0, fmt.Errorf("count deltas of %s after seq %d: %w", node, seq, err)
	}
	info := cons.CachedInfo()
	// A consumer not deleted (the request failed) expires once inactive
	// for InactiveThreshold.
	_ = st.DeleteConsumer(ctx, info.Name)
	return info.NumPending, nil
}
