package aggregator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/backoff"
	"github.com/jetmetrics/jetmetrics/streams"
)

// Aggregator applies one node's deltas to its aggregate. Make it with New
// and drive it with Run.
type Aggregator struct {
	cfg      Config
	js       jetstream.JetStream
	store    *aggregate.Store
	log      zerolog.Logger
	subjects streams.Subjects
	m        *metrics
	sm       *streamMetrics

	ready atomic.Bool
	// lim are the limits in force (SetLimits).
	lim atomic.Pointer[Limits]
	// mark is the aggregate's stream mark (its version); seq the delta
	// stream sequence it stands for, and inc and base the stream
	// incarnation and its base (aggregate.Marks), of the current session.
	mark, seq, inc, base atomic.Uint64
	// caughtUp is set once the session's aggregate in memory holds every
	// message the stream held for the node at some moment of the session,
	// and cleared when a session starts.
	caughtUp atomic.Bool
	// live is the session's aggregate in memory, nil between sessions.
	live atomic.Pointer[live]
}

// New returns an aggregator of cfg.Node's deltas into store. Its metrics
// are registered with reg.
func New(cfg Config, js jetstream.JetStream, store *aggregate.Store, reg prometheus.Registerer) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("aggregator metrics: %w", err)
	}
	sm, err := newStreamMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("aggregator metrics: %w", err)
	}
	return &Aggregator{
		cfg:      cfg,
		js:       js,
		store:    store,
		log:      cfg.Logger.With().Str("node", cfg.Node).Str("stream", cfg.Streams.DeltaStream()).Logger(),
		subjects: cfg.Streams.Subjects(),
		m:        m,
		sm:       sm,
	}, nil
}

// Ready reports whether the aggregator has loaded its position and is
// consuming.
func (a *Aggregator) Ready() bool { return a.ready.Load() }

// State is the aggregate as applied so far, from memory, or nil when the
// aggregator is not consuming (Redis or NATS unavailable, or starting). The
// state must not be changed.
func (a *Aggregator) State() *aggregate.State {
	if l := a.live.Load(); l != nil {
		return l.State()
	}
	return nil
}

// Held is the aggregate as applied so far, from memory, with what Redis
// holds beside it; ok is false when the aggregator is not consuming.
func (a *Aggregator) Held() (h aggregate.Held, ok bool) {
	if l := a.live.Load(); l != nil {
		h = l.Held()
		h.Incarnation, h.Base = a.inc.Load(), a.base.Load()
		return h, true
	}
	return h, false
}

// Mark is the last delta stream sequence the aggregator applied, in the
// stream as it is now. The aggregate's version (State().Mark) is higher
// once the stream was replaced under it (see incarnate).
func (a *Aggregator) Mark() uint64 { return a.seq.Load() }

// CaughtUp reports whether the current session's aggregate (State) holds
// every message the stream held for the node at some moment since the
// session started: it started with nothing pending, or applied a message
// after which nothing was. So it holds everything an earlier incarnation
// of the node can have served, as long as the stream still holds it, even
// when the stream's last message for the node was deleted meanwhile.
func (a *Aggregator) CaughtUp() bool { return a.caughtUp.Load() }

// Run aggregates until ctx ends, then returns nil. Every error (Redis or
// NATS unavailable, a moved mark) ends the current session; the next one
// starts from the position stored in Redis after a backoff.
func (a *Aggregator) Run(ctx context.Context) error {
	retry := backoff.Backoff{Min: a.cfg.RetryMin, Max: a.cfg.RetryMax}
	for {
		progressed, err := a.session(ctx)
		a.ready.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		a.m.restarts.Inc()
		if progressed {
			retry.Reset()
		}
		wait := retry.Next()
		ev := a.log.Warn()
		if errors.Is(err, aggregate.ErrConflict) {
			ev = a.log.Info()
		}
		ev.Err(err).Dur("backoff", wait).Msg("aggregator resuming from the stored mark")
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

// maxResetAttempts bounds the ordered consumer's attempts to recreate its
// consumer (1 s, 2 s, 4 s apart) before the session ends.
const maxResetAttempts = 3

// pullMaxBytes bounds what the aggregator's consumer buffers.
const pullMaxBytes = 16 << 20

// item is one message read from the stream, decoded off the apply path.
type item struct {
	seq     uint64
	at      uint64 // the message's stream time, Unix ms (0: unknown)
	subject string
	data    []byte
	pending uint64
	dec     *streams.Decoded
	reject  *streams.RejectError
	size    int64 // taken from the queue's byteGate until folded
}

// session loads the position from Redis and applies from there until an
// error or the end of ctx. progressed reports whether anything was applied.
func (a *Aggregator) session(ctx context.Context) (progressed bool, err error) {
	a.caughtUp.Store(false)
	st, err := a.load(ctx)
	if err != nil {
		return false, err
	}
	if err := a.incarnate(ctx, st); err != nil {
		return false, err
	}
	inc, base := st.marks.Incarnation, st.marks.Base
	a.inc.Store(inc)
	a.base.Store(base)
	a.mark.Store(st.marks.Stream)
	a.seq.Store(st.marks.Seq())
	a.m.mark.Set(float64(st.marks.Stream))
	a.m.series.Set(float64(len(st.live.cells)))
	a.m.producers.Set(float64(len(st.marks.Producers)))

	cc := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{a.subjects.DeltaNode(a.cfg.Node)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		// Next does not return while the ordered consumer retries to
		// recreate its consumer, unbounded by default: on a stream that
		// stays deleted the read would hang the session and the node's
		// shutdown. A few attempts, then the session ends and Run retries.
		MaxResetAttempts: maxResetAttempts,
	}
	if seq := st.marks.Seq(); seq > 0 {
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = seq + 1
	}
	cons, err := a.js.OrderedConsumer(ctx, a.cfg.Streams.DeltaStream(), cc)
	if err != nil {
		return false, fmt.Errorf("consume %s from seq %d: %w", a.cfg.Streams.DeltaStream(), st.marks.Seq()+1, err)
	}
	// Bounded by bytes, not messages: a backlog of large batches pulled by
	// count overflows the subscription's pending limit (64 MiB) and the
	// server drops the aggregator as a slow consumer.
	it, err := cons.Messages(jetstream.PullMaxBytes(pullMaxBytes))
	if err != nil {
		return false, fmt.Errorf("consume %s: %w", a.cfg.Streams.DeltaStream(), err)
	}
	sctx, cancel := context.WithCancel(ctx)
	items := make(chan item, 2*a.cfg.MaxGroupMessages)
	queued := newByteGate(int64(a.cfg.MaxQueuedBytes))
	readErr := make(chan error, 1)
	go func() {
		defer close(items)
		readErr <- a.read(sctx, it, items, queued, inc)
	}()
	defer func() {
		cancel()
		it.Stop()
		for range items {
		}
	}()
	a.ready.Store(true)
	a.log.Info().Uint64("seq", st.marks.Seq()).Uint64("version", st.marks.Stream).Int("series", len(st.live.cells)).Msg("aggregator consuming")

	a.live.Store(st.live)
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		a.caughtUp.Store(true)
	}
	defer a.live.Store(nil)
	start := st.marks.Stream
	defer func() { progressed = a.mark.Load() > start }()

	// The fold goroutine (this one) builds the next group while the applier
	// has Redis apply the one before: one transaction in flight, in order, each
	// expecting the mark the one before leaves.
	groups := make(chan *group)
	applied := make(chan error, 1)
	go func() { applied <- a.applier(ctx, st.live, groups, base) }()
	defer func() {
		close(groups)
		if aerr := <-applied; err == nil {
			err = aerr
		}
	}()
	// Two groups take turns: when the applier takes one, it is done with
	// the other.
	spare := [2]*group{newGroup(), newGroup()}
	idle := time.NewTicker(a.cfg.IdleCheck)
	defer idle.Stop()
	for turn := 0; ; turn ^= 1 {
		var first item
		var ok bool
		select {
		case <-ctx.Done():
			return false, nil
		case err := <-applied:
			applied <- err // for the deferred wait
			return false, err
		case <-idle.C:
			if a.mark.Load() == st.marks.Stream {
				if err := a.checkMark(ctx, st.marks.Stream); err != nil {
					return false, err
				}
				// A deleted delta stream is recreated, and a replaced one
				// ends the session, even when nothing arrives.
				if err := a.sameStream(ctx, inc); err != nil {
					return false, err
				}
			}
			turn ^= 1
			continue
		case first, ok = <-items:
		}
		if !ok {
			return false, <-readErr
		}
		g := spare[turn]
		g.msgs = 0
		var last item
		st.letters = st.letters[:0]
		for next := first; ; {
			st.add(a, next)
			if next.dec != nil {
				// Folded: what the group keeps of it is copied.
				next.dec.Release()
			}
			queued.release(next.size)
			g.msgs++
			last = next
			if g.msgs >= a.cfg.MaxGroupMessages || len(st.live.dirty) >= a.cfg.MaxGroupOps {
				break
			}
			select {
			case next, ok = <-items:
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		st.seal(g, base+last.seq)
		g.u.Incarnation = inc
		g.pending = last.pending
		a.m.series.Set(float64(len(st.live.cells)))
		// Dead letters go out before the apply: a crash in between repeats
		// them on replay, and their message ids make the repeat a no-op.
		for _, l := range st.letters {
			if err := a.deadLetter(ctx, l.in, l.rej, l.entries); err != nil {
				return false, err
			}
		}
		if err := a.fault(StepDecoded, g.mark); err != nil {
			return false, err
		}
		select {
		case groups <- g:
		case err := <-applied:
			applied <- err
			return false, err
		case <-ctx.Done():
			return false, nil
		}
	}
}

// applier applies the groups it receives, in order, committing each to
// live once Redis holds it. It returns at the first error, or nil when
// groups is closed.
func (a *Aggregator) applier(ctx context.Context, l *live, groups <-chan *group, base uint64) error {
	for g := range groups {
		start := time.Now()
		if err := a.store.Apply(ctx, g.u); err != nil {
			return err
		}
		if err := a.fault(StepApplied, g.mark); err != nil {
			return err
		}
		a.m.applySeconds.Observe(time.Since(start).Seconds())
		a.m.applies.Inc()
		a.m.groupMessages.Observe(float64(g.msgs))
		l.commit(g)
		a.mark.Store(g.mark)
		a.seq.Store(g.mark - base)
		a.m.mark.Set(float64(g.mark))
		a.m.pending.Set(float64(g.pending))
		if g.pending == 0 {
			a.caughtUp.Store(true)
		}
		if err := a.fault(StepCommitted, g.mark); err != nil {
			return err
		}
	}
	return nil
}

func (a *Aggregator) fault(step Step, mark uint64) error {
	if a.cfg.Fault == nil {
		return nil
	}
	if err := a.cfg.Fault(step, mark); err != nil {
		return fmt.Errorf("injected fault at %s, seq %d: %w", step, mark, err)
	}
	return nil
}

// checkMark ends the session when the stored mark is not the one this
// session applied last: Redis was wiped or rolled back, or another instance
// moved it.
func (a *Aggregator) checkMark(ctx context.Context, mine uint64) error {
	m, err := a.store.Marks(ctx)
	if err != nil {
		return err
	}
	if m.Stream != mine {
		return fmt.Errorf("%w: this aggregator applied up to %d, the store has %d", aggregate.ErrConflict, mine, m.Stream)
	}
	return nil
}

// read feeds decoded messages to items until ctx ends or the iterator
// fails, each once queued has room for it.
//
// The first message of each consumer the ordered consumer creates (at
// the start, and whenever it recreates one after an error) is checked to
// come from the session's stream incarnation inc: a consumer recreated on
// a stream deleted and created again would start after the old position
// and skip the new stream's first messages.
func (a *Aggregator) read(ctx context.Context, it jetstream.MessagesContext, items chan<- item, queued *byteGate, inc uint64) error {
	var consumer string
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s: %w", a.cfg.Streams.DeltaStream(), err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: message metadata: %w", a.cfg.Streams.DeltaStream(), err)
		}
		if md.Consumer != consumer {
			if err := a.sameStream(ctx, inc); err != nil {
				return err
			}
			consumer = md.Consumer
		}
		in := a.decode(item{seq: md.Sequence.Stream, at: uint64(md.Timestamp.UnixMilli()), subject: msg.Subject(), data: msg.Data(), pending: md.NumPending})
		in.size = int64(len(in.data))
		if in.dec != nil {
			in.size += int64(in.dec.Size())
		}
		if !queued.acquire(ctx, in.size) {
			return nil
		}
		select {
		case items <- in:
		case <-ctx.Done():
			return nil
		}
	}
}

// decode decodes in's message into in.dec, or says in in.reject why not.
func (a *Aggregator) decode(in item) item {
	lim := a.limits()
	if len(in.data) > lim.MaxMessageBytes {
		in.reject = &streams.RejectError{Reason: streams.ReasonOversize,
			Err: fmt.Errorf("batch of %d bytes is over the node's limit of %d", len(in.data), lim.MaxMessageBytes)}
		return in
	}
	dec, err := streams.Decode(in.data, a.cfg.Node, lim.Series)
	switch {
	case err != nil:
		var rej *streams.RejectError
		if !errors.As(err, &rej) {
			rej = &streams.RejectError{Reason: streams.ReasonUndecodable, Err: err}
		}
		in.reject = rej
	default:
		// The subject's owner token is what a producer's NATS permission
		// names: a batch whose producer id is not the owner's would write
		// another credential's producer marks.
		ds, err := a.subjects.ParseDelta(in.subject)
		switch {
		case err != nil:
			in.reject = &streams.RejectError{Reason: streams.ReasonEnvelope, Err: err}
		case ds.Producer != dec.Producer:
			in.reject = &streams.RejectError{Reason: streams.ReasonEnvelope,
				Err: fmt.Errorf("batch names producer %q but was published on %s", dec.Producer, in.subject)}
		default:
			in.dec = dec
		}
	}
	return in
}

// deadLetter publishes a rejected message to the dead-letter stream: the
// whole message, or its entries rejected for one reason (a message with
// entries rejected for several reasons has one dead letter per reason).
// The message id, one per message and reason, makes a replay's second
// publish a no-op within the window.
func (a *Aggregator) deadLetter(ctx context.Context, in item, rej *streams.RejectError, entries []int) error {
	msg := nats.NewMsg(a.subjects.DeadLetter(string(rej.Reason)))
	msg.Data = in.data
	msg.Header.Set(HeaderReason, string(rej.Reason))
	msg.Header.Set(HeaderError, shorten(rej.Err.Error(), maxErrorBytes))
	msg.Header.Set(HeaderSubject, in.subject)
	msg.Header.Set(HeaderSeq, strconv.FormatUint(in.seq, 10))
	msg.Header.Set(HeaderNode, a.cfg.Node)
	msg.Header.Set(HeaderVersion, strconv.FormatUint(a.base.Load()+in.seq, 10))
	if len(entries) > 0 {
		msg.Header.Set(HeaderEntryCount, strconv.Itoa(len(entries)))
		msg.Header.Set(HeaderEntries, entryList(entries, int(a.js.Conn().MaxPayload()/4)))
	}
	// A copy the server cannot take (the original filled a message, and the
	// headers come on top) would fail on every retry and stall the node
	// for good: it goes without its body, which the delta stream holds at
	// its sequence for as long as it retains it.
	if int64(len(msg.Data)+headerBytes(msg.Header)) > a.js.Conn().MaxPayload() {
		msg.Header.Set(HeaderBodyOmitted, strconv.Itoa(len(msg.Data)))
		msg.Data = nil
	}
	// The id carries the version, not the stream sequence, which starts
	// over when the delta stream is replaced.
	id := a.cfg.Node + ":" + strconv.FormatUint(a.base.Load()+in.seq, 10) + ":" + string(rej.Reason)
	publish := func() error {
		_, err := a.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(a.cfg.Streams.DeadLetterStream()))
		return err
	}
	err := publish()
	if streams.Gone(err) {
		// Deleted under the node: without it every retry would fail and
		// the node would stall for good.
		if err = a.ensure(ctx, a.cfg.Streams.DeadLetterStreamConfig()); err == nil {
			err = publish()
		}
	}
	if refused(err) {
		// The stream cannot take it, and retrying would stall every good
		// delta behind it until an operator made room. The letter is a
		// copy: the rejection is counted with the aggregate, and the
		// original stays in the delta stream at its sequence.
		a.m.lettersDropped.WithLabelValues(string(rej.Reason)).Inc()
		a.log.Error().Err(err).Uint64("seq", in.seq).Str("subject", in.subject).Str("reason", string(rej.Reason)).Str("stream", a.cfg.Streams.DeadLetterStream()).
			Msg("dead-letter stream refused the letter: dropped; the original stays in the delta stream at its seq (docs/operations.md, \"A full dead-letter stream\")")
		return nil
	}
	if err != nil {
		return fmt.Errorf("dead-letter seq %d: %w", in.seq, err)
	}
	a.log.Warn().Uint64("seq", in.seq).Str("subject", in.subject).Str("reason", string(rej.Reason)).Err(rej.Err).Msg("rejected input dead-lettered")
	return nil
}

// JetStream error codes of a message a stream will not store however
// often it is sent, until its operator changes the stream or the server.
const (
	jsInsufficientResources jetstream.ErrorCode = 10023 // the server's JetStream storage or memory is used up
	jsMessageExceedsMaximum jetstream.ErrorCode = 10054 // over the stream's max message size
	jsHeaderExceedsMaximum  jetstream.ErrorCode = 10097 // headers over 64 KiB
)

// jsStreamStoreFailed is the code of any message the stream did not store
// (nats-server's JSStreamStoreFailedF), the store's error its description.
// Only some descriptions are for good: see refused.
const jsStreamStoreFailed jetstream.ErrorCode = 10077

// storeMsgTooLarge is the description of jsStreamStoreFailed for a message
// larger than a file store record can be (nats-server's ErrMsgTooLarge).
const storeMsgTooLarge = "message too large"

// refused reports whether err is the dead-letter stream refusing a letter
// for good: full under discard new, out of resources, or the letter too
// large for it. Anything else is transient (timeout, lost connection, no
// leader, a store stopped or failing under a publish, which nats-server
// reports with the same code as a full stream) and the session retries it.
func refused(err error) bool {
	if streams.Full(err) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case jsInsufficientResources, jsMessageExceedsMaximum, jsHeaderExceedsMaximum:
		return true
	case jsStreamStoreFailed:
		return apiErr.Description == storeMsgTooLarge
	}
	return false
}

// entryList writes the entry indices comma-separated, the first ones only
// when all would take more than limit bytes: a message of a million bad
// entries must not make a header the server cannot take, which would fail
// on every retry and stall the node.
func entryList(entries []int, limit int) string {
	b := make([]byte, 0, min(limit, 8*len(entries)))
	for i, e := range entries {
		n := len(b)
		if i > 0 {
			b = append(b, ',')
		}
		if b = strconv.AppendInt(b, int64(e), 10); len(b) > limit {
			return string(b[:n])
		}
	}
	return string(b)
}

// maxErrorBytes bounds the error header: an error quotes the bad name or
// value, which can be as long as the message.
const maxErrorBytes = 1024

// shorten cuts s to at most n bytes, at a rune boundary, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// headerBytes bounds the size of h on the wire, with room for the
// headers the publish adds (message id, expected stream).
func headerBytes(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n") + 256
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + len(": \r\n")
		}
	}
	return n
}

// Headers of a dead-lettered message.
const (
	HeaderReason  = "Jetmetrics-Reason"
	HeaderError   = "Jetmetrics-Error"
	HeaderSubject = "Jetmetrics-Subject"
	HeaderSeq     = "Jetmetrics-Stream-Seq"
	HeaderNode    = "Jetmetrics-Node"
	// HeaderVersion is the aggregate's version (stream mark) the original
	// message stands at: a checkpoint of the node at this version or later
	// covers it.
	HeaderVersion = "Jetmetrics-Version"
	// HeaderEntries lists the indices of the entries rejected for the
	// letter's reason, comma-separated, when only some of the message's
	// entries are rejected; only the first ones when all would not fit.
	HeaderEntries = "Jetmetrics-Entries"
	// HeaderEntryCount is how many entries were rejected for the reason:
	// what jetmetrics_rejected_total{reason} counted for the letter.
	HeaderEntryCount = "Jetmetrics-Entry-Count"
	// HeaderBodyOmitted carries the original's size when the copy is too
	// large for the server and goes without its body.
	HeaderBodyOmitted = "Jetmetrics-Body-Omitted"
)
