package producers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/streams"
)

// Retry backoff of an unacknowledged message: exponential from minBackoff,
// capped at maxBackoff, each wait drawn from [d/2, d) so producers cut off
// together do not retry together.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// update is one series' delta, swapped out of its atomics.
type update struct {
	s      *seriesBase
	value  float64
	counts []uint64 // histograms: the series' scratch
	sum    float64
}

// flusher turns the live deltas into acknowledged messages. It belongs to
// the flush goroutine; nothing in it is shared.
type flusher struct {
	p   *Producer
	enc streams.Encoder
	// updates of the current round; those from next on are not yet part of
	// an acknowledged message.
	updates []update
	next    int
	seq     uint64
}

func (fl *flusher) add(u update) { fl.updates = append(fl.updates, u) }

// flush cuts the deltas and publishes them, split into messages of at most
// the batch limit, one at a time. It returns when all are acknowledged or
// ctx ends.
func (fl *flusher) flush(ctx context.Context, cut time.Time) error {
	fl.collect()
	defer fl.reset()
	limit := fl.p.batchLimit()
	for fl.next < len(fl.updates) {
		end := fl.fill(limit, cut)
		if fl.enc.Count() == 0 { // everything left was dropped
			fl.next = end
			continue
		}
		fl.seq++
		fl.p.seq.Store(fl.seq)
		if err := fl.p.publish(ctx, fl.seq, fl.enc.Finish()); err != nil {
			return err
		}
		fl.next = end
		fl.p.pending.Store(int64(len(fl.updates) - fl.next))
	}
	return nil
}

func (fl *flusher) collect() {
	fl.p.regMu.Lock()
	families := fl.p.order
	fl.p.regMu.Unlock()
	for _, f := range families {
		f.vec.collect(fl)
	}
	fl.p.pending.Store(int64(len(fl.updates)))
}

func (fl *flusher) reset() {
	clear(fl.updates) // drop the references to series
	fl.updates, fl.next = fl.updates[:0], 0
	fl.p.pending.Store(0)
}

// fill encodes updates from fl.next into one message of at most limit
// bytes and returns the index of the first update left for the next one.
// An update that cannot be encoded, or alone exceeds the limit, is dropped:
// it could never be delivered.
func (fl *flusher) fill(limit int, cut time.Time) int {
	p := fl.p
	fl.enc.Begin(p.cfg.Node, p.id, fl.seq+1, cut.UnixMilli())
	i := fl.next
	for ; i < len(fl.updates); i++ {
		u := &fl.updates[i]
		f := u.s.fam
		if err := fl.encode(u, f); err != nil {
			fl.drop(u, err)
			continue
		}
		if fl.enc.Len() > limit {
			fl.enc.Undo()
			if fl.enc.Count() > 0 {
				break
			}
			if !f.helpSent && f.help != "" {
				// Alone too large with the help text: go without it
				// rather than not at all.
				f.helpSent = true
				p.log.Warn().Str("metric", f.name).Int("help_bytes", len(f.help)).Int("limit", limit).Msg("help text does not fit a batch; sending the metric without it")
				i--
				continue
			}
			fl.drop(u, fmt.Errorf("%s %s: %w", f.kind, f.name, errTooLarge))
			continue
		}
		f.helpSent = true
	}
	return i
}

func (fl *flusher) encode(u *update, f *family) error {
	help := ""
	if !f.helpSent {
		help = f.help
	}
	switch f.kind.wire() {
	case streams.KindCounter:
		return fl.enc.Counter(f.name, help, u.s.labels, u.value)
	case streams.KindGauge:
		return fl.enc.Gauge(f.name, help, u.s.labels, u.value)
	default:
		return fl.enc.Histogram(f.name, help, u.s.labels, f.buckets, u.counts, u.sum)
	}
}

var errTooLarge = fmt.Errorf("series larger than the batch limit")

// drop counts an update that can never be sent and logs it the first time
// per series.
func (fl *flusher) drop(u *update, err error) {
	fl.p.dropped.Add(1)
	if u.s.dropLogged {
		return
	}
	u.s.dropLogged = true
	fl.p.log.Error().Err(err).Any("labels", u.s.labels).Msg("dropping series update that can never be sent")
}

// batchLimit is the largest message body the connection's server accepts,
// less room for headers, lowered to Config.MaxBatchBytes when set.
func (p *Producer) batchLimit() int {
	limit := int(p.nc.MaxPayload())
	if limit <= 0 { // not connected yet: the server default
		limit = 1 << 20
	}
	limit -= headerRoom
	if p.cfg.MaxBatchBytes > 0 && p.cfg.MaxBatchBytes < limit {
		limit = p.cfg.MaxBatchBytes
	}
	return max(limit, MinBatchBytes)
}

// publish sends one message until JetStream acknowledges it, always with
// the same bytes and message id, so the stream's duplicate window (and,
// beyond it, the aggregator's per-producer sequence) keeps it from being
// counted twice. It fails only when ctx ends.
func (p *Producer) publish(ctx context.Context, seq uint64, data []byte) error {
	p.inFlight.Store(1)
	defer p.inFlight.Store(0)
	defer p.publishErr.Store(nil)
	msg := &nats.Msg{Subject: p.subject, Data: data}
	opts := []jetstream.PublishOpt{
		jetstream.WithMsgID(fmt.Sprintf("%s:%d", p.id, seq)),
		jetstream.WithExpectStream(p.stream),
	}
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.cfg.PublishTimeout)
		ack, err := p.js.PublishMsg(actx, msg, opts...)
		cancel()
		if err == nil {
			p.published.Add(1)
			if ack.Duplicate {
				p.duplicates.Add(1)
			}
			if attempt > 1 {
				p.log.Info().Uint64("seq", seq).Int("attempts", attempt).Bool("duplicate", ack.Duplicate).Msg("batch acknowledged after retries")
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publish batch %d: %w", seq, context.Cause(ctx))
		}
		p.retries.Add(1)
		if streams.Full(err) {
			err = fmt.Errorf("%w: stream %s refused batch %d at its bound, which its operator raises (docs/operations.md, \"Stream bounds\"): %w", ErrStreamFull, p.stream, seq, err)
		}
		p.publishErr.Store(&err)
		wait := backoff/2 + rand.N(backoff/2)
		// Log the first failures and then on powers of two, not every
		// few seconds of a long outage.
		if attempt <= 3 || attempt&(attempt-1) == 0 {
			p.log.Warn().Err(err).Uint64("seq", seq).Int("attempt", attempt).Str("stream", p.stream).Dur("retry_in", wait).Msg("publish batch")
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("publish batch %d: %w", seq, context.Cause(ctx))
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}
