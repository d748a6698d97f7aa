package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/consumers/snapshot"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// nodeEntry is one node in GET /api/v1/nodes.
type nodeEntry struct {
	Name string `json:"name"`
	// Role is "self" for the node answering, "peer" for the others.
	Role string `json:"role"`
	Up   bool   `json:"up"`
	// SnapshotVersion is the version (applied stream sequence) of the
	// node's newest snapshot seen, AgeSeconds its age and LastSeen its
	// generation time; zero until the first one.
	SnapshotVersion uint64     `json:"snapshot_version"`
	AgeSeconds      float64    `json:"age_seconds"`
	LastSeen        *time.Time `json:"last_seen"`
	// DeltaSubject is where producers publish the node's deltas, with
	// their producer id as the last token.
	DeltaSubject string `json:"delta_subject"`
}

// serveNodes serves GET /api/v1/nodes: every node this node knows, itself
// first, so publishers can find the node names to publish deltas for.
func (n *Node) serveNodes(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	nodes, err := n.nodeList(ctx, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(struct {
		Nodes []nodeEntry `json:"nodes"`
	}{nodes}); err != nil {
		n.log.Debug().Err(err).Msg("write nodes")
	}
}

// nodeList is every node this node knows at now, itself first: what GET
// /api/v1/nodes and the status page show.
func (n *Node) nodeList(ctx context.Context, now time.Time) ([]nodeEntry, error) {
	known, err := n.knownPeers(ctx)
	if err != nil {
		return nil, err
	}
	subjects := n.cfg.Streams.Subjects()
	self := nodeEntry{Name: n.cfg.Name, Role: "self", Up: true, DeltaSubject: subjects.OwnedDelta(n.cfg.Name, "<name>", "<name>-<id>")}
	if a := n.agg.Load(); a != nil {
		if st := a.State(); st != nil {
			self.SnapshotVersion = st.Mark
		}
	}
	nodes := []nodeEntry{self}
	for _, p := range known {
		if p.Removed {
			continue
		}
		e := nodeEntry{Name: p.Node, Role: "peer", Up: p.Live, SnapshotVersion: p.Version, DeltaSubject: subjects.OwnedDelta(p.Node, "<name>", "<name>-<id>")}
		if !p.Generated.IsZero() {
			seen := p.Generated.UTC()
			e.LastSeen = &seen
			e.AgeSeconds = now.Sub(p.Generated).Seconds()
		}
		if p.Node == n.cfg.Name {
			nodes[0].SnapshotVersion = max(nodes[0].SnapshotVersion, p.Version)
			nodes[0].LastSeen, nodes[0].AgeSeconds = e.LastSeen, e.AgeSeconds
			continue
		}
		nodes = append(nodes, e)
	}
	return nodes, nil
}

// forgetNode serves DELETE /api/v1/nodes/{name}: it publishes a removal of
// a peer that is down, as the peer's own graceful stop would, so every
// node forgets it (jetmetrics_peer_up and the age disappear). A live peer,
// this node and an unknown name are refused.
func (n *Node) forgetNode(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	name := r.PathValue("name")
	if err := streams.CheckToken("node name", name); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if name == n.cfg.Name {
		http.Error(w, fmt.Sprintf("node %s is the node answering: stop it to remove it", name), http.StatusConflict)
		return
	}
	known, err := n.knownPeers(ctx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	var peer *aggregate.Peer
	for i := range known {
		if known[i].Node == name && !known[i].Removed {
			peer = &known[i]
		}
	}
	switch {
	case peer == nil:
		http.Error(w, fmt.Sprintf("node %s is not known here (GET /api/v1/nodes lists the known nodes)", name), http.StatusNotFound)
		return
	case peer.Live:
		http.Error(w, fmt.Sprintf("node %s is up: a node is forgotten once it is down (or at its graceful stop)", name), http.StatusConflict)
		return
	}
	nc := n.nc.Load()
	if nc == nil {
		http.Error(w, "nats: not connected", http.StatusServiceUnavailable)
		return
	}
	js, err := jetstream.New(nc)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	// The removal carries the last version seen, so a snapshot the node
	// publishes after it (the node came back) is taken again.
	ttl := n.cfg.SnapshotTTL
	if ttl <= 0 { // the snapshot publisher's default: three intervals
		interval := n.cfg.SnapshotInterval
		if interval <= 0 {
			interval = snapshot.DefaultInterval
		}
		ttl = 3 * interval
	}
	ttl = max(ttl, time.Second)
	msg := streams.RemovalMsg(n.cfg.Streams.Subjects().Snapshot(name), name, peer.Version, time.Now(), ttl)
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgTTL(ttl), jetstream.WithExpectStream(n.cfg.Streams.SnapshotStream())); err != nil {
		http.Error(w, fmt.Sprintf("publish removal of %s: %v", name, err), http.StatusServiceUnavailable)
		return
	}
	// This node's own store forgets at once; the broadcast consumer of
	// every node (this one's too) applies the removal as it reads it.
	if _, err := n.peers.Load().Remove(ctx, name, peer.Version); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	n.log.Info().Str("peer", name).Uint64("seq", peer.Version).Msg("peer forgotten by request")
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"forgotten\":%q}\n", name)
}

// knownPeers lists the peer store's records.
func (n *Node) knownPeers(ctx context.Context) ([]aggregate.Peer, error) {
	peers := n.peers.Load()
	if peers == nil {
		return nil, errors.New("peer store: redis not connected yet")
	}
	known, err := peers.Known(ctx)
	if err != nil {
		return nil, fmt.Errorf("peer store: %w", err)
	}
	return known, nil
}
