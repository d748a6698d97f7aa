package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/consumers/backlog"
	"github.com/jetmetrics/jetmetrics/streams"
)

// statusTimeout bounds the JetStream and Redis requests of one
// GET /api/v1/status; statusCacheFor is how long an answer is served again
// (each answer creates a short-lived consumer per node with a backlog).
const (
	statusTimeout  = 5 * time.Second
	statusCacheFor = time.Second
)

// ClusterStatus is GET /api/v1/status: the cluster as this node sees it,
// read live from JetStream and Redis. Each section is computed on its own;
// one that fails is empty and says why in Errors under its name (nodes,
// streams, dead_letters, observer_leaders, services, volumes).
type ClusterStatus struct {
	Node        string         `json:"node"`
	GeneratedAt time.Time      `json:"generated_at"`
	Nodes       []NodeStatus   `json:"nodes"`
	Streams     []StreamStatus `json:"streams"`
	// DeadLetters is the dead-letter stream's message count by reason.
	DeadLetters []DeadLetterCount `json:"dead_letters"`
	// ObserverLeaders is who leads each observer target; Source is
	// "bucket" when read from the lease bucket, "node" when it is this
	// node's own last view (the bucket was unreadable, LeadersNote says
	// why).
	ObserverLeaders []ObserverLeader `json:"observer_leaders"`
	LeadersSource   string           `json:"observer_leaders_source"`
	LeadersNote     string           `json:"observer_leaders_note,omitempty"`
	// ServicesDown are the probed services whose last probe failed.
	ServicesDown []ServiceDown `json:"services_down"`
	// Volumes are the configured volumes' health, stale or failing ones
	// first, at most statusMaxRows of them; VolumesMore counts the rest
	// and VolumesUnhealthy every stale or failing one, listed or not.
	Volumes          []VolumeStatus    `json:"volumes"`
	VolumesMore      int               `json:"volumes_more"`
	VolumesUnhealthy int               `json:"volumes_unhealthy"`
	Errors           map[string]string `json:"errors,omitempty"`
}

// NodeStatus is one node of GET /api/v1/status.
type NodeStatus struct {
	Name string `json:"name"`
	Role string `json:"role"`
	Up   bool   `json:"up"`
	// SnapshotAgeSeconds is the age of the node's newest snapshot seen
	// here; null before the first.
	SnapshotAgeSeconds *float64 `json:"snapshot_age_seconds"`
	// AppliedSeq is the last delta stream sequence the node's aggregator
	// applied: this node's from its aggregator now, a peer's from its
	// newest snapshot seen here.
	AppliedSeq uint64 `json:"applied_seq"`
	// LagMessages is the aggregator lag: the messages in the delta stream
	// for the node after AppliedSeq, waiting to be applied. For a peer it
	// may be up to a snapshot interval high; for a node that is down it
	// is what waits for it. Null when it could not be counted (LagError).
	LagMessages *uint64 `json:"lag_messages"`
	LagError    string  `json:"lag_error,omitempty"`
}

// StreamStatus is one stream of GET /api/v1/status.
type StreamStatus struct {
	Name string `json:"name"`
	// Absent is set for a stream this node has not needed yet (the
	// observation stream and the lease bucket exist once an observer
	// runs); Error for a stream that should be there and could not be
	// read.
	Absent   bool            `json:"absent,omitempty"`
	Error    string          `json:"error,omitempty"`
	Replicas int             `json:"replicas"`
	Leader   string          `json:"leader"`
	Peers    []ReplicaStatus `json:"peers"`
	Messages uint64          `json:"messages"`
	Bytes    uint64          `json:"bytes"`
	// MaxBytes is the stream's byte bound; -1 when unlimited.
	MaxBytes int64 `json:"max_bytes"`
	// Lagging counts the followers that are not current or are offline.
	Lagging int `json:"lagging"`
}

// ReplicaStatus is a stream follower as its leader reports it.
type ReplicaStatus struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline,omitempty"`
	// ActiveSeconds is how long ago the leader last heard from it; Lag the
	// operations it is behind.
	ActiveSeconds float64 `json:"active_seconds"`
	Lag           uint64  `json:"lag"`
}

// DeadLetterCount is the dead letters of one reason.
type DeadLetterCount struct {
	Reason   string `json:"reason"`
	Messages uint64 `json:"messages"`
}

// ObserverLeader is one observer target's lease.
type ObserverLeader struct {
	Observer string `json:"observer"`
	Target   string `json:"target"`
	// Leader is "" while the lease is vacant.
	Leader   string `json:"leader"`
	Revision uint64 `json:"revision,omitempty"`
}

// ServiceDown is a probed service whose last probe failed.
type ServiceDown struct {
	Service   string     `json:"service"`
	Leader    string     `json:"leader"`
	LastError string     `json:"last_error,omitempty"`
	LastCheck *time.Time `json:"last_check"`
	// LastSuccess is null when the service never answered.
	LastSuccess *time.Time `json:"last_success"`
	Failures    uint64     `json:"failures"`
}

// VolumeStatus is one volume of GET /api/v1/status: the cached result
// GET /api/v1/volumes serves, reduced to its health.
type VolumeStatus struct {
	Volume  string `json:"volume"`
	Backend string `json:"backend"`
	// Leader is the node polling the volume as this node last saw its
	// lease; "" while it is vacant.
	Leader string `json:"leader"`
	// Status is the last poll's (ok, error or timeout); "" when no
	// result is cached.
	Status string `json:"status"`
	// Stale is set when no result newer than the observer's cache TTL is
	// cached: the last is older, or none is there (results leave the
	// cache at their TTL).
	Stale bool `json:"stale"`
	// ObservedAt and AgeSeconds are the last result's; null without one.
	ObservedAt *time.Time `json:"observed_at"`
	AgeSeconds *float64   `json:"age_seconds"`
	// LastError is the last poll's error, when it failed.
	LastError string `json:"last_error,omitempty"`
}

// unhealthy is a volume status shows before the others: stale, or its
// last poll failed.
func (v VolumeStatus) unhealthy() bool {
	return v.Stale || (v.Status != "" && v.Status != streams.ObsStatusOK)
}

// statusAPI serves GET /api/v1/status, one computation at a time, each
// answer served again for statusCacheFor.
type statusAPI struct {
	n  *Node
	mu sync.Mutex
	at time.Time
	st *ClusterStatus
}

func (s *statusAPI) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil || time.Since(s.at) > statusCacheFor {
		// Not the caller's context: an answer cut short by one client
		// going away would be served to every other for statusCacheFor.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), statusTimeout)
		defer cancel()
		s.st, s.at = s.n.clusterStatus(ctx), time.Now()
	}
	s.n.writeJSON(w, http.StatusOK, s.st)
}

// clusterStatus computes every section at once, each bounded by ctx.
func (n *Node) clusterStatus(ctx context.Context) *ClusterStatus {
	now := time.Now()
	st := &ClusterStatus{Node: n.cfg.Name, GeneratedAt: now.UTC(), Nodes: []NodeStatus{}, Streams: []StreamStatus{},
		DeadLetters: []DeadLetterCount{}, ObserverLeaders: []ObserverLeader{}, ServicesDown: []ServiceDown{}, Volumes: []VolumeStatus{}}
	var (
		mu   sync.Mutex
		errs = map[string]string{}
		wg   sync.WaitGroup
	)
	section := func(name string, f func(js jetstream.JetStream) error) {
		wg.Go(func() {
			var js jetstream.JetStream
			nc := n.nc.Load()
			err := errors.New("nats: not connected yet")
			if nc != nil {
				js, err = jetstream.New(nc)
			}
			if err == nil {
				err = f(js)
			}
			if err != nil {
				mu.Lock()
				errs[name] = err.Error()
				mu.Unlock()
			}
		})
	}
	section("nodes", func(js jetstream.JetStream) (err error) { st.Nodes, err = n.nodeStatuses(ctx, js, now); return })
	section("streams", func(js jetstream.JetStream) (err error) { st.Streams, err = n.streamStatuses(ctx, js); return })
	section("dead_letters", func(js jetstream.JetStream) (err error) { st.DeadLetters, err = n.deadLetterCounts(ctx, js); return })
	section("observer_leaders", func(js jetstream.JetStream) (err error) {
		st.ObserverLeaders, st.LeadersSource, st.LeadersNote, err = n.observerLeaders(ctx, js)
		return
	})
	section("services", func(jetstream.JetStream) (err error) { st.ServicesDown, err = n.servicesDown(ctx); return })
	section("volumes", func(jetstream.JetStream) (err error) {
		st.Volumes, st.VolumesMore, st.VolumesUnhealthy, err = n.volumeStatuses(ctx, now)
		return
	})
	wg.Wait()
	if len(errs) > 0 {
		st.Errors = errs
	}
	return st
}

// nodeStatuses are the nodes of nodeList with their aggregator lag.
func (n *Node) nodeStatuses(ctx context.Context, js jetstream.JetStream, now time.Time) ([]NodeStatus, error) {
	nodes, err := n.nodeList(ctx, now)
	if err != nil {
		return nil, err
	}
	out := make([]NodeStatus, len(nodes))
	var wg sync.WaitGroup
	for i, e := range nodes {
		ns := NodeStatus{Name: e.Name, Role: e.Role, Up: e.Up, AppliedSeq: e.SnapshotVersion}
		if e.LastSeen != nil {
			ns.SnapshotAgeSeconds = &e.AgeSeconds
		}
		if e.Role == "self" {
			if a := n.agg.Load(); a != nil && a.Ready() {
				ns.AppliedSeq = a.Mark()
			}
		}
		out[i] = ns
		wg.Go(func() {
			lag, err := backlog.PendingAfter(ctx, js, n.cfg.Streams, out[i].Name, out[i].AppliedSeq)
			if err != nil {
				out[i].LagError = err.Error()
				return
			}
			out[i].LagMessages = &lag
		})
	}
	wg.Wait()
	return out, nil
}

// statusStreams are the node's streams; optional ones exist only once
// an observer made them.
func (n *Node) statusStreams() (names []string, optional map[string]bool) {
	obs := n.obsConfig()
	kv := "KV_" + obs.LeaseBucket()
	return []string{n.cfg.Streams.DeltaStream(), n.cfg.Streams.DeadLetterStream(), n.cfg.Streams.SnapshotStream(), obs.ObsStream(), kv},
		map[string]bool{obs.ObsStream(): true, kv: true}
}

// streamStatuses reads each stream's info: replicas, leader, followers
// and size.
func (n *Node) streamStatuses(ctx context.Context, js jetstream.JetStream) ([]StreamStatus, error) {
	names, optional := n.statusStreams()
	out := make([]StreamStatus, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			ss := StreamStatus{Name: name, Peers: []ReplicaStatus{}}
			defer func() { out[i] = ss }()
			s, err := js.Stream(ctx, name)
			switch {
			case errors.Is(err, jetstream.ErrStreamNotFound) && optional[name]:
				ss.Absent = true
				return
			case err != nil:
				ss.Error = err.Error()
				return
			}
			info := s.CachedInfo()
			ss.Replicas, ss.MaxBytes = info.Config.Replicas, info.Config.MaxBytes
			ss.Messages, ss.Bytes = info.State.Msgs, info.State.Bytes
			if c := info.Cluster; c != nil {
				ss.Leader = c.Leader
				for _, p := range c.Replicas {
					ss.Peers = append(ss.Peers, ReplicaStatus{Name: p.Name, Current: p.Current, Offline: p.Offline, ActiveSeconds: p.Active.Seconds(), Lag: p.Lag})
					if !p.Current || p.Offline {
						ss.Lagging++
					}
				}
			}
		})
	}
	wg.Wait()
	var failed []string
	for _, s := range out {
		if s.Error != "" {
			failed = append(failed, s.Name+": "+s.Error)
		}
	}
	if len(failed) > 0 {
		return out, errors.New(strings.Join(failed, "; "))
	}
	return out, nil
}

// deadLetterCounts are the dead-letter stream's message counts by
// subject, <prefix>.dlq.<reason>.
func (n *Node) deadLetterCounts(ctx context.Context, js jetstream.JetStream) ([]DeadLetterCount, error) {
	s, err := js.Stream(ctx, n.cfg.Streams.DeadLetterStream())
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	all := n.cfg.Streams.Subjects().DeadLetterAll()
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(all))
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	prefix := strings.TrimSuffix(all, ">")
	out := []DeadLetterCount{}
	for subj, c := range info.State.Subjects {
		if c > 0 {
			out = append(out, DeadLetterCount{Reason: strings.TrimPrefix(subj, prefix), Messages: c})
		}
	}
	slices.SortFunc(out, func(a, b DeadLetterCount) int { return strings.Compare(a.Reason, b.Reason) })
	return out, nil
}

// observerLeaders are the leases of every observer target: this node's
// targets (vacant until a lease is seen) and every lease in the bucket,
// whose keys are <observer>.lease.<target token> with the leader as the
// value. When the bucket cannot be read, the leaders are this node's own
// last view, and note says why.
func (n *Node) observerLeaders(ctx context.Context, js jetstream.JetStream) (out []ObserverLeader, source, note string, err error) {
	type key struct{ observer, target string }
	leaders := map[key]ObserverLeader{}
	if s := n.services.Load(); s != nil {
		for _, l := range s.leases.Leaders() {
			leaders[key{probeObserver, l.Target}] = ObserverLeader{Observer: probeObserver, Target: l.Target, Leader: l.Node, Revision: l.Revision}
		}
	}
	if v := n.volumes.Load(); v != nil && v.leases != nil {
		for _, l := range v.leases.Leaders() {
			leaders[key{volumeObserver, l.Target}] = ObserverLeader{Observer: volumeObserver, Target: l.Target, Leader: l.Node, Revision: l.Revision}
		}
	}
	source = "node"
	bucket, berr := n.leaseBucket(ctx, js)
	switch {
	case berr == nil:
		source = "bucket"
		for k, l := range leaders { // vacant unless the bucket says otherwise
			leaders[k] = ObserverLeader{Observer: l.Observer, Target: l.Target}
		}
		for _, l := range bucket {
			leaders[key{l.Observer, l.Target}] = l
		}
	case errors.Is(berr, jetstream.ErrBucketNotFound) && len(leaders) == 0:
		source = "bucket" // no observer ran anywhere yet: nothing to lead
	default:
		note = "lease bucket unreadable, showing this node's last view: " + berr.Error()
	}
	out = make([]ObserverLeader, 0, len(leaders))
	for _, l := range leaders {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b ObserverLeader) int {
		return cmp.Or(strings.Compare(a.Observer, b.Observer), strings.Compare(a.Target, b.Target))
	})
	return out, source, note, nil
}

// leaseBucket reads every lease of the lease bucket.
func (n *Node) leaseBucket(ctx context.Context, js jetstream.JetStream) ([]ObserverLeader, error) {
	kv, err := js.KeyValue(ctx, n.obsConfig().LeaseBucket())
	if err != nil {
		return nil, err
	}
	w, err := kv.Watch(ctx, "*.lease.*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []ObserverLeader
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("lease watch closed")
			}
			if e == nil { // the current values are all read
				return out, nil
			}
			parts := strings.SplitN(e.Key(), ".", 3)
			target, err := streams.ParseTargetToken(parts[2])
			if err != nil {
				target = parts[2]
			}
			out = append(out, ObserverLeader{Observer: parts[0], Target: target, Leader: string(e.Value()), Revision: e.Revision()})
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// servicesDown are the probed services whose last probe failed.
func (n *Node) servicesDown(ctx context.Context) ([]ServiceDown, error) {
	s := n.services.Load()
	if s == nil {
		if n.probing() {
			return nil, errors.New("the probe observer is starting")
		}
		return []ServiceDown{}, nil
	}
	list, err := s.list(ctx, len(s.names))
	if err != nil {
		return nil, err
	}
	out := []ServiceDown{}
	for _, e := range list {
		if e.Up != nil && !*e.Up {
			out = append(out, ServiceDown{Service: e.Service, Leader: e.Leader, LastError: e.LastError, LastCheck: e.LastCheck, LastSuccess: e.LastSuccess, Failures: e.Failures})
		}
	}
	return out, nil
}

// volumeStatuses are the configured volumes' health at now, stale or
// failing ones first (then in the file's order), the first statusMaxRows
// of them; more is how many are left out, unhealthy how many of all are
// stale or failing. Every volume's cached result is read, so that a
// failing one is never among those left out while a healthy one is shown.
// A cache that cannot be read is an error: the volumes are listed with
// their leaders, their health unknown.
func (n *Node) volumeStatuses(ctx context.Context, now time.Time) (out []VolumeStatus, more, unhealthy int, err error) {
	out = []VolumeStatus{}
	if len(n.volumeList()) == 0 {
		return out, 0, 0, nil
	}
	s := n.volumes.Load()
	if s == nil {
		return out, 0, 0, errors.New("the volume observer is starting")
	}
	for _, e := range s.list(ctx, len(s.vols), now) {
		v := VolumeStatus{Volume: e.Volume, Backend: e.Backend, Leader: e.Leader, Status: e.Status,
			ObservedAt: e.ObservedAt, AgeSeconds: e.AgeSeconds, LastError: e.Error}
		if e.CacheError != "" {
			err = fmt.Errorf("volume cache: %s", e.CacheError)
		} else {
			v.Stale = e.Stale || e.ObservedAt == nil
		}
		if v.unhealthy() {
			unhealthy++
		}
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b VolumeStatus) int {
		switch ua, ub := a.unhealthy(), b.unhealthy(); {
		case ua && !ub:
			return -1
		case ub && !ua:
			return 1
		}
		return 0
	})
	if len(out) > statusMaxRows {
		more, out = len(out)-statusMaxRows, out[:statusMaxRows]
	}
	return out, more, unhealthy, err
}
