package observer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/streams"
)

// Lease is a node's hold on one target.
type Lease struct {
	// Node leads the target.
	Node string
	// Revision is the lease key's KV revision when it was last written:
	// the fencing token results carry. Revisions grow across the whole
	// bucket, so a later lease (or renewal) always has a higher one.
	Revision uint64
}

// Elector tells the scheduler whether this node may poll a target now.
type Elector interface {
	// Lease returns this node's lease on target, and whether it holds a
	// valid one at this moment.
	Lease(target string) (Lease, bool)
}

// Static is an Elector under which one node leads every target, for a
// node without peers (and tests). Its leases have revision 0.
type Static struct{ Node string }

// Lease returns a lease of s.Node on every target.
func (s Static) Lease(string) (Lease, bool) { return Lease{Node: s.Node}, true }

var (
	_ Elector = Static{}
	_ Elector = (*Leases)(nil)
)

// LeaseConfig configures Leases.
type LeaseConfig struct {
	// Observer names the observer ("volume", "probe"): the first token of
	// its keys, so observers share the bucket without sharing leases.
	Observer string
	// Node is this node's name, written as the value of the leases it
	// holds.
	Node string
	// Targets are the names of the targets to lead; every node of an
	// observer is expected to list the same ones.
	Targets []string
	// Renew is how often leases are renewed and vacant ones acquired
	// (default a third of the bucket's TTL; at most half of it).
	Renew time.Duration
	// StopTimeout bounds releasing the leases when Run ends (default 2 s).
	StopTimeout time.Duration
	// TTL is the TTL the bucket is made with (streams.ObsConfig's
	// LeaseBucketConfig().TTL): how long Run waits out a bucket it finds
	// gone before it has read the bucket's own TTL, which it reads at
	// start and uses from then on. It should be the TTL every node makes
	// the bucket with: a bucket made with a longer one by another node
	// has leases that node counts on for longer than this node waits.
	// Zero: unknown, allowed only without Provision; Run then returns an
	// error when it finds the bucket gone at start.
	TTL time.Duration
	// Provision, when set, makes the bucket again once it has been found
	// gone (deleted by an operator, or lost with its stream) for a whole
	// TTL, and returns it: by then no node still counts on a lease of the
	// old bucket (validFor), so the fresh bucket's leases, whose revisions
	// start again from 1, never overlap one. Every node may call it at
	// once: streams.ProvisionLeases is safe for that. The TTL waited is
	// the bucket's, read when Run started; for a bucket already gone when
	// Run starts it is the configured TTL, which Provision requires: a
	// node starting then has no TTL of its own to go by, while another
	// node may still hold leases of the deleted bucket, and making it at
	// once would give a target two leaders. Nil: the leases wait for
	// something else to make the bucket; meanwhile this node leads
	// nothing.
	Provision func(ctx context.Context) (jetstream.KeyValue, error)
}

// Leadership is what one node knows of one target's lease.
type Leadership struct {
	Target string `json:"target"`
	// Node leads the target as far as this node saw in its last round
	// ("" when the lease is vacant).
	Node string `json:"node"`
	// Revision is the lease's revision as last seen.
	Revision uint64 `json:"revision"`
	// Held reports whether this node holds a valid lease now.
	Held bool `json:"held"`
}

// Leases keeps, for one observer, this node's share of the targets' leases
// in a NATS KV bucket (see streams.ProvisionLeases): it renews the ones it
// holds by compare-and-set on their revision, acquires the vacant ones
// assigned to it, hands over those assigned to another live node, and
// releases everything when Run ends. Lease is safe for concurrent use.
type Leases struct {
	cfg    LeaseConfig
	log    zerolog.Logger
	prefix string // observer + "."
	leader *prometheus.Desc
	// kick asks Run for a round now (SetTargets added targets).
	kick chan struct{}

	// rounds serialises round and SetTargets: a round never steps a
	// target SetTargets removed, nor takes its lease after the release.
	rounds sync.Mutex
	// Only round uses these: the rounds that read the bucket, in which
	// round each node's key was last seen, and the live nodes.
	reads int
	seen  map[string]int
	live  []string

	mu sync.Mutex
	kv jetstream.KeyValue
	// gone is when a read first found the bucket gone (zero: it was not).
	gone time.Time
	// member is the value of this node's node key: its name and
	// targetSet, a hash of its sorted targets.
	member    string
	targetSet string
	ttl       time.Duration
	state     map[string]*leaseState
}

type leaseState struct {
	key        string
	held       bool
	node       string // leader as last seen; this node when held
	rev        uint64
	validUntil time.Time
	// vacant counts the rounds in a row the lease was seen vacant and not
	// assigned here: after two, this node takes it anyway, since the node
	// it is assigned to is not taking it.
	vacant int
	// keepFrom is the node the lease was assigned to when this node took
	// it anyway; it is not handed back to that node for keepRounds
	// rounds, so a node that is live but cannot take a lease does not
	// make it move every round, and a node that was only slow gets it
	// back.
	keepFrom   string
	keepRounds int
}

// Number of rounds a vacant lease assigned to another node waits before
// this node takes it.
const vacantRounds = 2

// keepRounds is how many rounds a lease taken for a node that did not take
// it stays with the taker: two TTLs.
const keepRounds = 6

// NewLeases returns the lease keeper of cfg.Observer over kv. It registers
// jetmetrics_observer_leader{observer,target} with reg: 1 for the targets
// this node leads.
func NewLeases(cfg LeaseConfig, kv jetstream.KeyValue, log zerolog.Logger, reg prometheus.Registerer) (*Leases, error) {
	if err := streams.CheckToken("observer", cfg.Observer); err != nil {
		return nil, fmt.Errorf("new leases: %w", err)
	}
	if err := streams.CheckToken("node", cfg.Node); err != nil {
		return nil, fmt.Errorf("new leases: %w", err)
	}
	if cfg.Renew < 0 {
		return nil, fmt.Errorf("new leases: negative renew interval %s", cfg.Renew)
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("new leases: negative ttl %s", cfg.TTL)
	}
	if cfg.Provision != nil && cfg.TTL == 0 {
		// Without it a bucket found gone at start would be made at once,
		// under the leases another node still holds in the deleted one.
		return nil, errors.New("new leases: provision needs the ttl the bucket is made with")
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 2 * time.Second
	}
	l := &Leases{
		cfg:    cfg,
		kv:     kv,
		log:    log.With().Str("observer", cfg.Observer).Logger(),
		prefix: cfg.Observer + ".",
		kick:   make(chan struct{}, 1),
		seen:   make(map[string]int),
		leader: prometheus.NewDesc("jetmetrics_observer_leader",
			"1 for each target this node leads (holds a valid lease of); summed over the nodes, 1 per target.",
			[]string{"target"}, prometheus.Labels{"observer": cfg.Observer}),
	}
	keys, err := l.leaseKeys(cfg.Targets)
	if err != nil {
		return nil, fmt.Errorf("new leases: %w", err)
	}
	l.state = make(map[string]*leaseState, len(keys))
	for t, key := range keys {
		l.state[t] = &leaseState{key: key}
	}
	l.setMember(cfg.Targets)
	if reg != nil {
		if err := reg.Register(leaderCollector{l}); err != nil {
			return nil, fmt.Errorf("register leader gauge: %w", err)
		}
	}
	return l, nil
}

// leaseKeys returns each target's lease key, or why targets cannot be
// led.
func (l *Leases) leaseKeys(targets []string) (map[string]string, error) {
	keys := make(map[string]string, len(targets))
	for _, t := range targets {
		tok, err := streams.TargetToken(t)
		if err != nil {
			return nil, err
		}
		if _, dup := keys[t]; dup {
			return nil, fmt.Errorf("target %q listed twice", t)
		}
		keys[t] = l.prefix + "lease." + tok
	}
	return keys, nil
}

// setMember sets the node key's value for targets. Call it with l.mu held
// or before Run.
func (l *Leases) setMember(targets []string) {
	sorted := slices.Clone(targets)
	slices.Sort(sorted)
	l.targetSet = fmt.Sprintf("%016x", hash(sorted...))
	l.member = l.cfg.Node + " " + l.targetSet
}

// SetTargets changes the targets to lead while Run runs, keeping the
// leases of the targets that stay as they are: same holder, same
// revision, renewed as before. The leases this node holds on removed
// targets are released at once (another node may take them in its next
// round, not a TTL later), and added targets enter the next round's
// assignment, which SetTargets starts without waiting for the renewal
// interval. ctx bounds the releases; a release that fails leaves the
// lease to expire with the bucket's TTL. An invalid list changes
// nothing.
//
// Every node of the observer should list the same targets: until they
// all do (a reload rolling through a cluster), nodes with different lists
// do not count each other as live, keep what they hold and race for
// vacant leases by compare-and-set, which stays one holder per target.
func (l *Leases) SetTargets(ctx context.Context, targets []string) error {
	keys, err := l.leaseKeys(targets)
	if err != nil {
		return fmt.Errorf("set lease targets: %w", err)
	}
	l.rounds.Lock()
	defer l.rounds.Unlock()
	released := make(map[string]leaseState)
	var added []string
	l.mu.Lock()
	for t, st := range l.state {
		if _, keep := keys[t]; keep {
			continue
		}
		if st.held {
			released[t] = *st
		}
		delete(l.state, t)
	}
	for t, key := range keys {
		if _, ok := l.state[t]; !ok {
			l.state[t] = &leaseState{key: key}
			added = append(added, t)
		}
	}
	l.setMember(targets)
	kv := l.kv
	l.mu.Unlock()

	for t, st := range released {
		if err := kv.Delete(ctx, st.key, jetstream.LastRevision(st.rev)); err != nil {
			l.log.Warn().Err(err).Str("target", t).Msg("release lease of a removed target")
			continue
		}
		l.log.Info().Str("target", t).Msg("lease of a removed target released")
	}
	slices.Sort(added)
	l.log.Info().Int("targets", len(keys)).Strs("added", added).Int("removed_held", len(released)).Msg("lease targets changed")
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return nil
}

// leaderCollector exposes jetmetrics_observer_leader from the leases'
// state at scrape time, so the gauge drops to 0 the moment a lease's
// validity runs out, renewed or not.
type leaderCollector struct{ l *Leases }

func (c leaderCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.l.leader }

func (c leaderCollector) Collect(ch chan<- prometheus.Metric) {
	for _, ld := range c.l.Leaders() {
		v := 0.0
		if ld.Held {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.l.leader, prometheus.GaugeValue, v, ld.Target)
	}
}

// Lease returns this node's lease on target, valid until a little before
// the bucket would expire it if no renewal came through: a node cut off
// from NATS stops polling before another can take over.
func (l *Leases) Lease(target string) (Lease, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state[target]
	if st == nil || !st.held || !time.Now().Before(st.validUntil) {
		return Lease{}, false
	}
	return Lease{Node: l.cfg.Node, Revision: st.rev}, true
}

// Leaders returns what this node knows of every target's leadership,
// sorted by target.
func (l *Leases) Leaders() []Leadership {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Leadership, 0, len(l.state))
	for t, st := range l.state {
		out = append(out, Leadership{Target: t, Node: st.node, Revision: st.rev, Held: st.held && now.Before(st.validUntil)})
	}
	slices.SortFunc(out, func(a, b Leadership) int { return strings.Compare(a.Target, b.Target) })
	return out
}

// TTL is the bucket's TTL as read when Run started (0 before).
func (l *Leases) TTL() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ttl
}

// Run keeps the leases until ctx ends, then releases the ones it holds
// and returns nil. A bucket found gone at the start is waited out,
// leading nothing, when cfg.TTL is set: Run looks again every renewal
// interval until the bucket is back or, with cfg.Provision, has been gone
// a whole cfg.TTL and is made again. It returns an error only if the
// bucket's status cannot be read at the start (gone, without cfg.TTL) or
// the bucket has no TTL.
func (l *Leases) Run(ctx context.Context) error {
	st, err := l.open(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("read lease bucket status: %w", err)
	}
	ttl := st.TTL()
	if ttl <= 0 {
		return fmt.Errorf("lease bucket %s has no ttl", st.Bucket())
	}
	renew := l.renewEvery(ttl)
	l.mu.Lock()
	l.ttl = ttl
	l.mu.Unlock()
	l.log.Info().Dur("ttl", ttl).Dur("renew", renew).Int("targets", len(l.state)).Msg("leases started")

	t := time.NewTicker(renew)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, renew)
		l.round(rctx, ttl)
		cancel()
		select {
		case <-ctx.Done():
			l.release()
			return nil
		case <-t.C:
		case <-l.kick:
		}
	}
}

// renewEvery is the renewal interval under ttl: cfg.Renew (default a
// third of ttl), at most half of ttl.
func (l *Leases) renewEvery(ttl time.Duration) time.Duration {
	renew := l.cfg.Renew
	if renew == 0 {
		renew = ttl / 3
	}
	return min(renew, ttl/2)
}

// open reads the bucket's status for Run's start. A bucket found gone is
// waited out when cfg.TTL is set: open looks again every renewal interval
// under cfg.TTL, until the bucket is back (another node made it) or
// reprovision has made it, a whole cfg.TTL after it was first found gone.
func (l *Leases) open(ctx context.Context) (jetstream.KeyValueStatus, error) {
	var tick <-chan time.Time
	for {
		st, err := l.bucket().Status(ctx)
		if err != nil && l.reprovision(ctx, err) {
			st, err = l.bucket().Status(ctx)
		}
		if err == nil {
			// Found again: a later disappearance is timed from when that
			// one is found.
			l.mu.Lock()
			l.gone = time.Time{}
			l.mu.Unlock()
			return st, nil
		}
		if l.cfg.TTL == 0 || ctx.Err() != nil || !l.isGone(ctx, err) {
			return nil, err
		}
		if tick == nil {
			t := time.NewTicker(l.renewEvery(l.cfg.TTL))
			defer t.Stop()
			tick = t.C
			l.log.Warn().Dur("ttl", l.cfg.TTL).Msg("lease bucket is gone at start: leading nothing until it is back")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick:
		}
	}
}

// isGone reports whether err, from reading the bucket, says it is gone,
// asking the bucket's stream when err does not say why.
func (l *Leases) isGone(ctx context.Context, err error) bool {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) {
		return true
	}
	// A failed watch does not say why: ask the stream itself.
	_, serr := l.bucket().Status(ctx)
	return errors.Is(serr, jetstream.ErrStreamNotFound)
}

// bucket is the lease bucket in use.
func (l *Leases) bucket() jetstream.KeyValue {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kv
}

// reprovision makes the bucket again through cfg.Provision if err, from
// reading it, says it is gone (and finds it gone) and it has been gone a
// whole TTL, the bucket's as read when Run started or, before that, the
// configured one, and reports whether it did.
func (l *Leases) reprovision(ctx context.Context, err error) bool {
	if l.cfg.Provision == nil || ctx.Err() != nil || !l.isGone(ctx, err) {
		return false
	}
	now := time.Now()
	l.mu.Lock()
	if l.gone.IsZero() {
		l.gone = now
	}
	ttl := l.ttl
	if ttl == 0 {
		ttl = l.cfg.TTL
	}
	wait := l.gone.Add(ttl).Sub(now)
	l.mu.Unlock()
	if wait > 0 {
		l.log.Warn().Dur("recreate_in", wait).Msg("lease bucket is gone")
		return false
	}
	kv, perr := l.cfg.Provision(ctx)
	if perr != nil {
		if ctx.Err() == nil {
			l.log.Warn().Err(perr).Msg("recreate the lease bucket")
		}
		return false
	}
	l.mu.Lock()
	l.kv, l.gone = kv, time.Time{}
	l.mu.Unlock()
	l.log.Warn().Str("bucket", kv.Bucket()).Msg("lease bucket was gone: made it again")
	return true
}

// nodeKey is the key that says node is alive for this observer.
func (l *Leases) nodeKey(node string) string { return l.prefix + "node." + node }

// round renews, hands over and acquires leases once.
func (l *Leases) round(ctx context.Context, ttl time.Duration) {
	l.rounds.Lock()
	defer l.rounds.Unlock()
	l.mu.Lock()
	kv, member, targetSet := l.kv, l.member, l.targetSet
	l.mu.Unlock()
	if _, err := kv.Put(ctx, l.nodeKey(l.cfg.Node), []byte(member)); err != nil && ctx.Err() == nil {
		l.log.Warn().Err(err).Msg("announce node")
	}
	entries, err := l.entries(ctx, kv)
	if err != nil && l.reprovision(ctx, err) {
		kv = l.bucket()
		if _, err = kv.Put(ctx, l.nodeKey(l.cfg.Node), []byte(member)); err == nil {
			entries, err = l.entries(ctx, kv)
		}
	}
	if err != nil {
		// Without the bucket's view, only renew: acquiring or handing over
		// on a guess could move leases for nothing.
		if ctx.Err() == nil {
			l.log.Warn().Err(err).Msg("read leases")
		}
		entries = nil
	}
	if entries != nil {
		l.mu.Lock()
		l.gone = time.Time{}
		l.mu.Unlock()
		l.reads++
		l.seen[l.cfg.Node] = l.reads
		for key, e := range entries {
			if strings.HasPrefix(key, l.prefix+"node.") {
				// Only nodes with the same targets share them out: a
				// node configured otherwise (during a rollout) would not
				// take what is assigned to it.
				if node, set, _ := strings.Cut(string(e.Value()), " "); set == targetSet {
					l.seen[node] = l.reads
				}
			}
		}
	}
	// A node is live while its key was in one of the last two reads: a
	// read of the bucket can miss a key written while it runs, and one
	// miss must not move leases. A dead node's key expires after the TTL
	// and is gone from two reads a round later.
	var live []string
	for n, r := range l.seen {
		if r+1 >= l.reads {
			live = append(live, n)
		} else {
			delete(l.seen, n)
		}
	}
	slices.Sort(live)
	if !slices.Equal(live, l.live) {
		l.log.Info().Strs("live", live).Strs("was", l.live).Msg("live nodes changed")
		l.live = live
	}
	targets := make([]string, 0, len(l.state))
	for t := range l.state {
		targets = append(targets, t)
	}
	slices.Sort(targets)
	assigned := assign(targets, live)
	// A vacant lease assigned to a node whose key this read did not find
	// (it died: its key expired with its leases) is taken by the node the
	// target would go to among the nodes this read found, at once rather
	// than a round later, when the absent node leaves the live set: the
	// same node, unless another changed too. Without it a dead leader's
	// targets went unpolled for up to TTL + 3 rounds + an interval, two
	// TTLs at the node's interval of TTL/3.
	takers := assigned
	if entries != nil {
		var present []string
		for _, n := range live {
			if l.seen[n] == l.reads {
				present = append(present, n)
			}
		}
		if len(present) < len(live) {
			takers = assign(targets, present)
			for t, n := range assigned {
				if slices.Contains(present, n) {
					takers[t] = n
				}
			}
		}
	}

	// Each step is a round trip (through raft, in a cluster): run a few at
	// once so a round of many targets fits in the renewal interval.
	var wg sync.WaitGroup
	sem := make(chan struct{}, roundParallelism)
	now := time.Now()
	for _, t := range targets {
		l.mu.Lock()
		ptr := l.state[t]
		if ptr.held && !now.Before(ptr.validUntil) {
			// Not renewed in time (the bucket is gone or unreachable): the
			// bucket has expired the lease, or is about to, and another
			// node may take it. Lease has stopped granting it already;
			// from here the node acts as if it never held it, and takes
			// it again only through the bucket.
			l.log.Warn().Str("target", t).Uint64("revision", ptr.rev).Msg("lease expired unrenewed")
			*ptr = leaseState{key: ptr.key}
		}
		st := *ptr
		l.mu.Unlock()
		if entries == nil && !st.held {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			next := l.step(ctx, kv, t, st, entries, assigned[t], takers[t], ttl)
			l.mu.Lock()
			*ptr = next
			l.mu.Unlock()
		})
	}
	wg.Wait()
}

// roundParallelism bounds the KV requests of one round in flight at once.
const roundParallelism = 16

// step decides and performs one target's lease action for the round:
// assigned is the live node the target belongs to, taker the node that
// takes it when vacant (assigned, unless this read did not find it).
func (l *Leases) step(ctx context.Context, kv jetstream.KeyValue, target string, st leaseState, entries map[string]jetstream.KeyValueEntry, assigned, taker string, ttl time.Duration) leaseState {
	me := l.cfg.Node
	log := l.log.With().Str("target", target).Logger()
	if !st.held {
		if e, ok := entries[st.key]; ok {
			st.node, st.rev, st.vacant = string(e.Value()), e.Revision(), 0
			if st.node != me {
				return st
			}
			// This node's own lease from before a restart: adopt it by
			// renewing, unless another node wrote it since.
			st.held = true
		} else {
			st.node = ""
			st.vacant++
			if taker != me && st.vacant <= vacantRounds {
				return st
			}
			sent := time.Now()
			rev, err := kv.Create(ctx, st.key, []byte(me))
			if err != nil {
				if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
					log.Warn().Err(err).Msg("acquire lease")
				}
				return st
			}
			st.held, st.node, st.rev, st.vacant = true, me, rev, 0
			st.validUntil = sent.Add(validFor(ttl))
			st.keepFrom, st.keepRounds = "", 0
			if assigned != me {
				st.keepFrom, st.keepRounds = assigned, keepRounds
			}
			log.Info().Uint64("revision", rev).Msg("lease acquired")
			return st
		}
	}

	if st.keepRounds > 0 {
		st.keepRounds--
	}
	if entries != nil && assigned != me && (assigned != st.keepFrom || st.keepRounds == 0) {
		// Hand over to the node the target is assigned to: it takes the
		// vacant lease in its next round.
		if err := kv.Delete(ctx, st.key, jetstream.LastRevision(st.rev)); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("hand over lease")
		}
		log.Info().Str("to", assigned).Msg("lease handed over")
		return leaseState{key: st.key}
	}
	sent := time.Now()
	rev, err := kv.Update(ctx, st.key, []byte(me), st.rev)
	switch {
	case err == nil:
		st.rev, st.node = rev, me
		st.validUntil = sent.Add(validFor(ttl))
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		// Someone else wrote the key, or it expired: the lease is lost.
		log.Warn().Uint64("revision", st.rev).Msg("lease lost")
		return leaseState{key: st.key}
	case ctx.Err() == nil:
		// The lease stays valid until validUntil; a later round may
		// still renew it.
		log.Warn().Err(err).Msg("renew lease")
	}
	return st
}

// validFor is how long after sending a successful write this node treats
// its lease as valid: three quarters of the TTL, so that clock rates and
// the server's expiry timer have a quarter of it to disagree in.
func validFor(ttl time.Duration) time.Duration { return ttl * 3 / 4 }

// entries reads the current value of every key of this observer.
func (l *Leases) entries(ctx context.Context, kv jetstream.KeyValue) (map[string]jetstream.KeyValueEntry, error) {
	w, err := kv.Watch(ctx, l.prefix+">", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("watch %s>: %w", l.prefix, err)
	}
	defer w.Stop()
	out := make(map[string]jetstream.KeyValueEntry)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch closed")
			}
			if e == nil {
				return out, nil
			}
			out[e.Key()] = e
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// release gives up every lease this node holds, and its node key, so that
// the other nodes take over in their next round instead of after the TTL.
func (l *Leases) release() {
	// Stop polling first, then tell the bucket.
	held := make(map[string]leaseState)
	l.mu.Lock()
	for t, st := range l.state {
		if st.held {
			held[t] = *st
		}
		*st = leaseState{key: st.key}
	}
	kv := l.kv
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.StopTimeout)
	defer cancel()
	n := 0
	for t, st := range held {
		if err := kv.Delete(ctx, st.key, jetstream.LastRevision(st.rev)); err != nil {
			l.log.Warn().Err(err).Str("target", t).Msg("release lease")
			continue
		}
		n++
	}
	if err := kv.Delete(ctx, l.nodeKey(l.cfg.Node)); err != nil {
		l.log.Warn().Err(err).Msg("withdraw node")
	}
	l.log.Info().Int("released", n).Msg("leases stopped")
}
