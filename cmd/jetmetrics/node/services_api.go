package node

import (
	"context"
	"fmt"
	"net/http"
	"time"

	cl "github.com/jetmetrics/jetmetrics/consumers/latency"
	"github.com/jetmetrics/jetmetrics/pkg/latency"
	"github.com/jetmetrics/jetmetrics/streams"
)

// serviceEntry is one service in GET /api/v1/services.
type serviceEntry struct {
	Service string `json:"service"`
	// Up is whether the last probe folded succeeded; null before the
	// first.
	Up          *bool   `json:"up"`
	MeanSeconds float64 `json:"mean_seconds"`
	EWMASeconds float64 `json:"ewma_seconds"`
	P99Seconds  float64 `json:"p99_seconds"`
	Successes   uint64  `json:"successes"`
	Failures    uint64  `json:"failures"`
	// LastCheck is when the last probe folded was observed, and Node the
	// node that made it.
	LastCheck   *time.Time `json:"last_check"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	Node        string     `json:"node,omitempty"`
	// Leader is the node leading (probing) the service as this node last
	// saw the lease; "" while it is vacant.
	Leader string `json:"leader"`
	// StateError says why the state could not be read or used.
	StateError string `json:"state_error,omitempty"`
	// samples are the state's window of recent latencies, oldest first,
	// for the status page's sparkline; GET .../latency serves them.
	samples []float64
}

// serviceLatency is GET /api/v1/services/{name}/latency.
type serviceLatency struct {
	Service   string     `json:"service"`
	Up        *bool      `json:"up"`
	LastCheck *time.Time `json:"last_check"`
	Node      string     `json:"node,omitempty"`
	Leader    string     `json:"leader"`
	// Seq is the stream sequence of the last result folded.
	Seq   uint64            `json:"seq"`
	State *latency.Snapshot `json:"state"`
}

func (n *Node) serviceRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/services", n.serveServices)
	mux.HandleFunc("GET /api/v1/services/{name}/latency", n.serveServiceLatency)
}

// up is whether the last result of a state with any succeeded.
func up(s latency.Snapshot) *bool {
	if s.Successes+s.Failures == 0 {
		return nil
	}
	v := s.ConsecutiveFailures == 0
	return &v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// serveServices serves GET /api/v1/services: every probed service with
// its state's summary and its leader.
func (n *Node) serveServices(w http.ResponseWriter, r *http.Request) {
	s := n.services.Load()
	if s == nil {
		if !n.probing() {
			n.writeJSON(w, http.StatusOK, struct {
				Services []serviceEntry `json:"services"`
			}{[]serviceEntry{}})
			return
		}
		n.jsonError(w, http.StatusServiceUnavailable, "the probe observer is starting")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	out, err := s.list(ctx, len(s.names))
	if err != nil {
		n.jsonError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	n.writeJSON(w, http.StatusOK, struct {
		Services []serviceEntry `json:"services"`
	}{out})
}

// list is the first limit probed services with their state's summary and
// leader: what GET /api/v1/services and the status page show.
func (s *serviceState) list(ctx context.Context, limit int) ([]serviceEntry, error) {
	names := s.names[:min(limit, len(s.names))]
	tokens := make([]string, len(names))
	for i, name := range names {
		tokens[i], _ = streams.TargetToken(name)
	}
	entries, err := s.store.GetMany(ctx, tokens)
	if err != nil {
		return nil, fmt.Errorf("read the latency states: %w", err)
	}
	leaders := s.leaders()
	out := make([]serviceEntry, len(names))
	for i, name := range names {
		e := entries[tokens[i]]
		se := serviceEntry{Service: name, Leader: leaders[name]}
		if e.Type == "hash" {
			t, err := latency.Decode(e.State)
			if err != nil {
				se.StateError = err.Error()
			} else {
				snap := t.Snapshot()
				se.Up, se.MeanSeconds, se.EWMASeconds, se.P99Seconds = up(snap), snap.MeanSeconds, snap.EWMASeconds, snap.P99Seconds
				se.Successes, se.Failures, se.LastError = snap.Successes, snap.Failures, snap.LastError
				se.LastCheck, se.LastSuccess, se.Node = timePtr(e.At), timePtr(snap.LastSuccess), e.Node
				se.samples = snap.SamplesSeconds
			}
		}
		out[i] = se
	}
	return out, nil
}

// serveServiceLatency serves GET /api/v1/services/{name}/latency: the
// service's whole state with its recent samples. {name} is a service's
// name or its subject token.
func (n *Node) serveServiceLatency(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s := n.services.Load()
	if s == nil {
		if !n.probing() {
			n.jsonError(w, http.StatusNotFound, fmt.Sprintf("service %q is not configured: no service is (declare probes in --config.file)", name))
			return
		}
		n.jsonError(w, http.StatusServiceUnavailable, "the probe observer is starting")
		return
	}
	if !s.byName[name] {
		if v, err := streams.ParseTargetToken(name); err == nil && s.byName[v] {
			name = v
		} else {
			n.jsonError(w, http.StatusNotFound, fmt.Sprintf("service %q is not configured (GET /api/v1/services lists the services)", name))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	t, e, err := cl.Lookup(ctx, s.store, name)
	if err != nil {
		n.jsonError(w, http.StatusServiceUnavailable, fmt.Sprintf("read the latency state of %q: %v", name, err))
		return
	}
	out := serviceLatency{Service: name, Leader: s.leaders()[name], Node: e.Node, Seq: e.Seq, LastCheck: timePtr(e.At)}
	if t != nil {
		snap := t.Snapshot()
		out.State, out.Up = &snap, up(snap)
	}
	n.writeJSON(w, http.StatusOK, out)
}
