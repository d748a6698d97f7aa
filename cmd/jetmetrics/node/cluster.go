package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/streams"
)

// clusterView assembles the cluster's states: this node's live aggregate
// and every peer's newest snapshot, decoded once per version.
type clusterView struct {
	n *Node

	mu    sync.Mutex
	cache map[string]decoded
}

type decoded struct {
	version   uint64
	generated time.Time
	state     *aggregate.State
}

func (v *clusterView) states(ctx context.Context) ([]exposition.NodeInfo, []*aggregate.State, error) {
	local, err := v.n.loadLocal(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Peers' snapshots stored before a restart or a Redis rollback can be
	// older than ones served before: wait for the stream's newest.
	if b := v.n.broadcast.Load(); b == nil || !b.CaughtUp() {
		return nil, nil, errors.New("peer snapshots unavailable: catching up with the snapshot stream")
	}
	now := time.Now()
	infos := []exposition.NodeInfo{{Node: local.Node, Version: local.Mark, Generated: now, Local: true}}
	states := []*aggregate.State{local}
	peers := v.n.peers.Load()
	if peers == nil {
		return infos, states, nil
	}
	snaps, err := peers.List(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cache == nil {
		v.cache = map[string]decoded{}
	}
	live := map[string]bool{}
	for _, s := range snaps {
		if s.Node == local.Node {
			continue
		}
		live[s.Node] = true
		d, ok := v.cache[s.Node]
		if !ok || d.version != s.Version || !d.generated.Equal(s.Generated) {
			// An unreadable snapshot is remembered too, so it is logged
			// once per version rather than on every scrape.
			d = decoded{version: s.Version, generated: s.Generated}
			dump, err := streams.DecodeSnapshotChain(s.Data, s.Deltas, streams.SnapshotLimits{})
			if err == nil {
				d.state, err = dump.State()
			}
			if err != nil {
				v.n.log.Warn().Err(err).Str("peer", s.Node).Uint64("seq", s.Version).Msg("peer snapshot unreadable: the peer is left out of the cluster view")
			}
			v.cache[s.Node] = d
		}
		if d.state == nil {
			continue
		}
		infos = append(infos, exposition.NodeInfo{Node: s.Node, Version: s.Version, Generated: s.Generated, AgeSeconds: now.Sub(s.Generated).Seconds()})
		states = append(states, d.state)
	}
	for node := range v.cache {
		if !live[node] {
			delete(v.cache, node)
		}
	}
	return infos, states, nil
}

// serveCluster serves /metrics/cluster: every live node, each series with
// node="…", filtered by ?node= and ?name= (both repeatable), in the
// negotiated exposition format or, with ?format=json, as JSON.
func (v *clusterView) serveCluster(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	infos, states, err := v.states(ctx)
	if err != nil {
		http.Error(w, "cluster view: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	// The filter applies after the view is decided from every node's
	// state, so a filtered view serves what the whole one does of them.
	f := exposition.Filter{Nodes: q["node"], Names: q["name"]}
	if len(f.Nodes) > 0 {
		kept := infos[:0:0]
		for _, in := range infos {
			for _, n := range f.Nodes {
				if in.Node == n {
					kept = append(kept, in)
				}
			}
		}
		infos = kept
	}
	switch q.Get("format") {
	case "json":
		w.Header().Set("Content-Type", "application/json")
		if err := v.n.clusterExpo.WriteJSON(w, infos, states, f); err != nil {
			v.n.log.Debug().Err(err).Msg("write cluster json")
		}
		return
	case "":
	default:
		http.Error(w, fmt.Sprintf("format %q: want json, or none for the Prometheus formats by content negotiation", q.Get("format")), http.StatusBadRequest)
		return
	}
	v.n.clusterExpo.ServeView(w, r, states, f)
}
