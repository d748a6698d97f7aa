package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/consumers/volumecache"
	"github.com/jetmetrics/jetmetrics/pkg/obscache"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Sources of a performance-metric answer.
const (
	sourceCache = "cache"
	sourceLive  = "live"
)

// History limits of GET .../performance-metric/history.
const (
	defaultHistoryLimit = 100
	maxHistoryLimit     = 1000
)

// volumeResult is one volume's result as the API serves it.
type volumeResult struct {
	Volume     string     `json:"volume"`
	Backend    string     `json:"backend"`
	Source     string     `json:"source,omitempty"`
	Stale      bool       `json:"stale"`
	ObservedAt *time.Time `json:"observed_at"`
	AgeSeconds *float64   `json:"age_seconds"`
	// Status and Error are the poll's; Node polled it (this node for a
	// live call) under LeaseRevision (0 for a live call).
	Status        string                `json:"status,omitempty"`
	Error         string                `json:"error,omitempty"`
	Node          string                `json:"node,omitempty"`
	LeaseRevision uint64                `json:"lease_revision,omitempty"`
	Metric        *streams.VolumeMetric `json:"metric,omitempty"`
	// LiveError says why the live call failed when a stale value is
	// served instead.
	LiveError string `json:"live_error,omitempty"`
}

// volumeEntry is one volume in GET /api/v1/volumes.
type volumeEntry struct {
	volumeResult
	// Leader is the node leading (polling) the volume as this node last
	// saw the lease; "" while it is vacant.
	Leader string `json:"leader"`
	// CacheError says why the cache could not be read.
	CacheError string `json:"cache_error,omitempty"`
}

// known is the last successful result served of a volume.
type known struct {
	o      streams.Observation
	source string
}

func (n *Node) volumeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/volumes", n.serveVolumes)
	mux.HandleFunc("GET /api/v1/volumes/{name}/performance-metric", n.servePerformance)
	mux.HandleFunc("GET /api/v1/volumes/{name}/performance-metric/history", n.serveHistory)
}

// writeJSON writes v with status code.
func (n *Node) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		n.log.Debug().Err(err).Msg("write json answer")
	}
}

// jsonError answers code with {"error": msg}.
func (n *Node) jsonError(w http.ResponseWriter, code int, msg string) {
	n.writeJSON(w, code, struct {
		Error string `json:"error"`
	}{msg})
}

// volumeService returns the volume service, or answers 503 (404 when no
// volume is configured) and nil.
func (n *Node) volumeService(w http.ResponseWriter, r *http.Request) *volumeService {
	if len(n.volumeList()) == 0 {
		n.jsonError(w, http.StatusNotFound, fmt.Sprintf("volume %q is not configured: no volume is (declare them in --config.file)", r.PathValue("name")))
		return nil
	}
	s := n.volumes.Load()
	if s == nil {
		n.jsonError(w, http.StatusServiceUnavailable, "the volume observer is starting")
	}
	return s
}

// volumeName resolves the {name} of a URL: a configured volume's name, or
// its subject token (streams.TargetToken), for names a URL cannot hold.
// It answers 404 and returns false for anything else.
func (n *Node) volumeName(w http.ResponseWriter, r *http.Request, s *volumeService) (string, bool) {
	name := r.PathValue("name")
	if _, ok := s.byName[name]; ok {
		return name, true
	}
	if v, err := streams.ParseTargetToken(name); err == nil {
		if _, ok := s.byName[v]; ok {
			return v, true
		}
	}
	n.jsonError(w, http.StatusNotFound, fmt.Sprintf("volume %q is not configured (GET /api/v1/volumes lists the volumes)", name))
	return "", false
}

// serveVolumes serves GET /api/v1/volumes: every configured volume with
// its backend, leader and last cached result.
func (n *Node) serveVolumes(w http.ResponseWriter, r *http.Request) {
	if len(n.volumeList()) == 0 {
		n.writeJSON(w, http.StatusOK, struct {
			Volumes []volumeEntry `json:"volumes"`
		}{[]volumeEntry{}})
		return
	}
	s := n.volumeService(w, r)
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	n.writeJSON(w, http.StatusOK, struct {
		Volumes []volumeEntry `json:"volumes"`
	}{s.list(ctx, len(s.vols), time.Now())})
}

// list is the first limit configured volumes with their backend, leader
// and last cached result at now: what GET /api/v1/volumes and the status
// page show.
func (s *volumeService) list(ctx context.Context, limit int, now time.Time) []volumeEntry {
	vols := s.vols[:min(limit, len(s.vols))]
	leaders := map[string]string{}
	for _, l := range s.leases.Leaders() {
		leaders[l.Target] = l.Node
	}
	tokens := make([]string, len(vols))
	for i, v := range vols {
		tokens[i], _ = streams.TargetToken(v.Name)
	}
	entries, cacheErr := s.cache.GetMany(ctx, tokens)
	out := make([]volumeEntry, len(vols))
	for i, v := range vols {
		e := volumeEntry{volumeResult: volumeResult{Volume: v.Name, Backend: v.Backend}, Leader: leaders[v.Name]}
		if cacheErr != nil {
			e.CacheError = cacheErr.Error()
		} else if ce, ok := entries[tokens[i]]; ok {
			if o, err := streams.DecodeObservation(ce.Data); err == nil {
				e.volumeResult = s.result(o, sourceCache, now)
			}
		}
		out[i] = e
	}
	return out
}

// result is the API form of o, served from source at now.
func (s *volumeService) result(o streams.Observation, source string, now time.Time) volumeResult {
	i := s.byName[o.Volume]
	at := o.ObservedAt.UTC()
	age := max(now.Sub(at).Seconds(), 0)
	r := volumeResult{
		Volume: o.Volume, Backend: s.vols[i].Backend, Source: source,
		Stale:      now.Sub(at) > s.obs.CacheTTL,
		ObservedAt: &at, AgeSeconds: &age,
		Status: o.Status, Error: o.Error, Node: o.Node, LeaseRevision: o.LeaseRevision,
	}
	if o.Status == streams.ObsStatusOK {
		m := o.Metric
		r.Metric = &m
	}
	return r
}

// servePerformance serves GET /api/v1/volumes/{name}/performance-metric:
// the cached result, or on a miss (or a Redis error) a live call to the
// backend, one per volume at a time; when that fails too, the last value
// known, marked stale.
func (n *Node) servePerformance(w http.ResponseWriter, r *http.Request) {
	s := n.volumeService(w, r)
	if s == nil {
		return
	}
	name, ok := n.volumeName(w, r, s)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.obs.ObserveTimeout+5*time.Second)
	defer cancel()
	cctx, ccancel := context.WithTimeout(ctx, liveCacheTimeout)
	o, hit, err := volumecache.Get(cctx, s.cache, name)
	ccancel()
	if err != nil {
		s.log.Debug().Err(err).Str("volume", name).Msg("volume cache unreadable: calling the backend")
	}
	if hit {
		s.remember(o, sourceCache)
		n.writeJSON(w, http.StatusOK, s.result(o, sourceCache, time.Now()))
		return
	}
	ch := s.flight.DoChan(name, func() (any, error) { return s.live(name) })
	var res singleResult
	select {
	case v := <-ch:
		res = singleResult{v.Val, v.Err}
	case <-ctx.Done():
		res = singleResult{nil, ctx.Err()}
	}
	if res.err == nil {
		o := res.val.(streams.Observation)
		n.writeJSON(w, http.StatusOK, s.result(o, sourceLive, time.Now()))
		return
	}
	if k, ok := s.lastKnown(ctx, name); ok {
		out := s.result(k.o, k.source, time.Now())
		out.Stale, out.LiveError = true, res.err.Error()
		n.writeJSON(w, http.StatusOK, out)
		return
	}
	n.jsonError(w, http.StatusBadGateway, fmt.Sprintf("volume %s: not in the cache, and the backend did not answer: %v", name, res.err))
}

type singleResult struct {
	val any
	err error
}

// live calls name's backend, unless the cache got a result meanwhile (a
// call that just ended stored it), and stores the result; a store failure
// is logged, not returned.
func (s *volumeService) live(name string) (streams.Observation, error) {
	// The cache is asked and written with short deadlines of their own:
	// a Redis that is down must leave the backend its whole timeout.
	cctx, cancel := context.WithTimeout(s.base, liveCacheTimeout)
	o, hit, err := volumecache.Get(cctx, s.cache, name)
	cancel()
	if err == nil && hit {
		return o, nil
	}
	ctx, cancel := context.WithTimeout(s.base, s.obs.ObserveTimeout)
	defer cancel()
	start := time.Now()
	m, err := s.backends[name].PerformanceMetric(ctx)
	if err != nil {
		return streams.Observation{}, err
	}
	o = streams.Observation{
		Volume: name, ObservedAt: start.UTC(), Duration: time.Since(start), Status: streams.ObsStatusOK, Node: s.node,
		Metric: streams.VolumeMetric{IOPSRead: m.IOPSRead, IOPSWrite: m.IOPSWrite,
			ThroughputBytesRead: m.BytesReadPerSec, ThroughputBytesWrite: m.BytesWritePerSec,
			LatencyUsecRead: m.LatencyUsecRead, LatencyUsecWrite: m.LatencyUsecWrite},
	}
	data, err := streams.EncodeObservation(o)
	if err != nil {
		return streams.Observation{}, err
	}
	s.remember(o, sourceLive)
	tok, _ := streams.TargetToken(name)
	pctx, cancel := context.WithTimeout(s.base, liveCacheTimeout)
	defer cancel()
	if _, err := s.cache.Put(pctx, tok, obscache.Entry{At: o.ObservedAt, Data: data, Expires: o.ObservedAt.Add(s.obs.CacheTTL)}, time.Now()); err != nil {
		s.log.Warn().Err(err).Str("volume", name).Msg("live result not cached")
	}
	return o, nil
}

// liveCacheTimeout bounds a live call's reads and writes of the cache.
const liveCacheTimeout = time.Second

// remember keeps o as name's last known value if it succeeded and is newer.
func (s *volumeService) remember(o streams.Observation, source string) {
	if o.Status != streams.ObsStatusOK {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.last[o.Volume]; !ok || o.Newer(&k.o) {
		s.last[o.Volume] = known{o: o, source: source}
	}
}

// lastKnown is name's last successful result: the newest served here, or
// the stream's last result of the volume if it succeeded.
func (s *volumeService) lastKnown(ctx context.Context, name string) (known, bool) {
	s.mu.Lock()
	k, ok := s.last[name]
	s.mu.Unlock()
	subj, err := s.streams.Subjects().Observation(streams.ObsKindVolume, name)
	if err != nil {
		return k, ok
	}
	st, err := s.js.Stream(ctx, s.streams.ObsStream())
	if err != nil {
		return k, ok
	}
	m, err := st.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		return k, ok
	}
	o, err := streams.DecodeObservation(m.Data)
	if err != nil || o.Status != streams.ObsStatusOK || (ok && !o.Newer(&k.o)) {
		return k, ok
	}
	return known{o: o, source: sourceCache}, true
}

// serveHistory serves GET /api/v1/volumes/{name}/performance-metric/history:
// the volume's results in the observation stream, newest first, observed
// at or after ?since= (RFC 3339 or Unix seconds), at most ?limit= (default
// 100, at most 1000).
func (n *Node) serveHistory(w http.ResponseWriter, r *http.Request) {
	s := n.volumeService(w, r)
	if s == nil {
		return
	}
	name, ok := n.volumeName(w, r, s)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit := defaultHistoryLimit
	if v := q.Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 1 || l > maxHistoryLimit {
			n.jsonError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a whole number from 1 to %d", v, maxHistoryLimit))
			return
		}
		limit = l
	}
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v)
		if err != nil {
			n.jsonError(w, http.StatusBadRequest, fmt.Sprintf("since %q: want an RFC 3339 time (2026-12-07T08:00:00Z) or Unix seconds", v))
			return
		}
		since = t
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	results, err := s.history(ctx, name, since, limit)
	if err != nil {
		n.jsonError(w, http.StatusServiceUnavailable, fmt.Sprintf("volume %s history: %v", name, err))
		return
	}
	now := time.Now()
	out := make([]volumeResult, len(results))
	for i, o := range results {
		out[i] = s.result(o, "", now)
	}
	n.writeJSON(w, http.StatusOK, struct {
		Volume  string         `json:"volume"`
		Results []volumeResult `json:"results"`
	}{name, out})
}

func parseSince(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, errors.New("not a time")
	}
	return time.Unix(0, int64(f*1e9)), nil
}

// history reads name's results from the stream, from since on (by the
// stream's own timestamps, then by observation time), up to the last one
// there now, and returns the newest limit of them, newest first. The
// stream keeps at most the history depth per volume, which bounds the
// read.
func (s *volumeService) history(ctx context.Context, name string, since time.Time, limit int) ([]streams.Observation, error) {
	subj, err := s.streams.Subjects().Observation(streams.ObsKindVolume, name)
	if err != nil {
		return nil, err
	}
	st, err := s.js.Stream(ctx, s.streams.ObsStream())
	if err != nil {
		return nil, err
	}
	last, err := st.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return []streams.Observation{}, nil
	}
	if err != nil {
		return nil, err
	}
	if last.Time.Before(since) {
		return []streams.Observation{}, nil
	}
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !since.IsZero() {
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := st.OrderedConsumer(ctx, cc)
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	ring := make([]streams.Observation, 0, limit)
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, err
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		if o, err := streams.DecodeObservation(msg.Data()); err == nil && !o.ObservedAt.Before(since) {
			if len(ring) == limit {
				ring = ring[1:]
			}
			ring = append(ring, o)
		}
		if md.Sequence.Stream >= last.Sequence {
			break
		}
	}
	slices.Reverse(ring)
	return ring, nil
}
