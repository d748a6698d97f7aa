package fault_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/streams"
)

// publisher is a producer driven by hand: it publishes delta batches with
// plain nats.go, choosing ids, sequences, retries and acknowledgement loss,
// and notes each batch's fate in the ledger. It is not safe for concurrent
// use; run one per goroutine.
type publisher struct {
	t       testing.TB
	led     *ledger
	nc      *nats.Conn
	js      jetstream.JetStream
	node    string
	id      string
	subject string
	stream  string
	seq     uint64
	enc     streams.Encoder
}

func newPublisher(t testing.TB, led *ledger, nc *nats.Conn, node, id string) *publisher {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &publisher{
		t: t, led: led, nc: nc, js: js, node: node, id: id,
		subject: streams.Subjects{}.Delta(node, id),
		stream:  streams.Config{}.DeltaStream(),
	}
}

// batch is one encoded delta batch.
type batch struct {
	batchID
	data    []byte
	updates []update
}

// msg is the batch as a message: the same bytes and the same Nats-Msg-Id
// on every attempt.
func (b *batch) msg(subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(jetstream.MsgIDHeader, b.String())
	m.Data = b.data
	return m
}

// cut encodes the next batch of updates.
func (p *publisher) cut(updates ...update) *batch {
	p.seq++
	p.enc.Begin(p.node, p.id, p.seq, time.Now().UnixMilli())
	for _, u := range updates {
		var err error
		switch u.kind {
		case streams.KindCounter:
			err = p.enc.Counter(u.name, "", u.labels, u.value)
		case streams.KindGauge:
			err = p.enc.Gauge(u.name, "", u.labels, u.value)
		default:
			err = p.enc.Histogram(u.name, "", u.labels, u.buckets, u.counts, u.sum)
		}
		if err != nil {
			p.t.Fatalf("encode %s: %v", u.name, err)
		}
	}
	return &batch{batchID: batchID{p.id, p.seq}, data: slices.Clone(p.enc.Finish()), updates: updates}
}

// ack publishes b until JetStream acknowledges it, as the SDK does, and
// notes it acknowledged. It fails the test if ctx ends first.
func (p *publisher) ack(ctx context.Context, b *batch) *jetstream.PubAck {
	p.t.Helper()
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		a, err := p.js.PublishMsg(actx, b.msg(p.subject), jetstream.WithExpectStream(p.stream))
		cancel()
		if err == nil {
			p.led.note(b.batchID, acked, true, b.updates)
			return a
		}
		if ctx.Err() != nil {
			p.led.note(b.batchID, timedOut, false, b.updates)
			p.t.Fatalf("publish %s: %v", b.batchID, err)
		}
	}
}

// loseAck publishes b without waiting for, or being able to receive, the
// acknowledgement: the broker stores the batch and the producer never
// learns it. The batch is noted as timed out (and stored) until a retry is
// acknowledged.
func (p *publisher) loseAck(b *batch) {
	p.t.Helper()
	if err := p.nc.PublishMsg(b.msg(p.subject)); err != nil {
		p.t.Fatalf("publish %s: %v", b.batchID, err)
	}
	p.led.note(b.batchID, timedOut, true, b.updates)
}

// lose notes b as timed out on the way to the broker: never stored.
func (p *publisher) lose(b *batch) { p.led.note(b.batchID, timedOut, false, b.updates) }

// forget notes b as unsent: the producer was killed holding it.
func (p *publisher) forget(b *batch) { p.led.note(b.batchID, unsent, false, b.updates) }

// retry publishes b again with the same bytes and id and reports whether
// the broker's duplicate window caught it.
func (p *publisher) retry(ctx context.Context, b *batch) (duplicate bool) {
	p.t.Helper()
	return p.ack(ctx, b).Duplicate
}

// retryPastWindow retries b, as a producer whose acknowledgements keep
// getting lost does, until an attempt lands after the broker's duplicate
// window has forgotten the first: that attempt is stored a second time and
// its acknowledgement arrives. Retries inside the window are acknowledged
// as duplicates, and treated as lost.
func (p *publisher) retryPastWindow(ctx context.Context, b *batch) {
	p.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if !p.retry(ctx, b) {
			return
		}
		select {
		case <-ctx.Done():
			p.t.Fatalf("retry %s: the duplicate window never passed: %v", b.batchID, ctx.Err())
		case <-tick.C:
		}
	}
}

// raw publishes arbitrary bytes on the producer's subject (or subject,
// when set) and returns the acknowledgement: input the ledger does not
// account, such as bad batches.
func (p *publisher) raw(ctx context.Context, subject string, data []byte, msgID string) *jetstream.PubAck {
	p.t.Helper()
	if subject == "" {
		subject = p.subject
	}
	m := nats.NewMsg(subject)
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	m.Data = data
	a, err := p.js.PublishMsg(ctx, m)
	if err != nil {
		p.t.Fatalf("publish raw to %s: %v", subject, err)
	}
	return a
}

// streamCopies reads node's whole delta stream and counts the stored
// copies of each batch, by producer and seq as the batch itself says.
func streamCopies(ctx context.Context, js jetstream.JetStream, node string) (map[batchID]int, error) {
	s, err := js.Stream(ctx, streams.Config{}.DeltaStream())
	if err != nil {
		return nil, err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.Subjects{}.DeltaNode(node)}})
	if err != nil {
		return nil, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	copies := map[batchID]int{}
	left := int(info.NumPending)
	for left > 0 {
		mb, err := c.Fetch(min(left, 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range mb.Messages() {
			n++
			d, err := streams.Decode(m.Data(), node, seriesLimits)
			if err != nil {
				continue // bad input has no batch id
			}
			copies[batchID{d.Producer, d.Seq}]++
		}
		if err := mb.Error(); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errors.New("stream read stalled")
		}
		left -= n
	}
	return copies, nil
}

// duplicated reports the batches stored more than once.
func duplicated(copies map[batchID]int) error {
	var errs []error
	for id, n := range copies {
		if n > 1 && len(errs) < 10 {
			errs = append(errs, fmt.Errorf("batch %s stored %d times", id, n))
		}
	}
	return errors.Join(errs...)
}
