package fault_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/streams"
)

// deadLetter is one message of the dead-letter stream, as its headers
// describe it.
type deadLetter struct {
	reason  string
	subject string
	seq     uint64 // the original's delta stream sequence
	node    string
	entries string
	omitted string // the original's size, when the copy goes without it
	data    []byte
}

// deadLetters reads the whole dead-letter stream.
func deadLetters(ctx context.Context, js jetstream.JetStream) ([]deadLetter, error) {
	s, err := js.Stream(ctx, streams.Config{}.DeadLetterStream())
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []deadLetter
	for left := int(info.State.Msgs); left > 0; {
		mb, err := c.Fetch(min(left, 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range mb.Messages() {
			n++
			h := m.Headers()
			seq, err := strconv.ParseUint(h.Get(aggregator.HeaderSeq), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("dead letter on %s: %s header: %w", m.Subject(), aggregator.HeaderSeq, err)
			}
			out = append(out, deadLetter{
				reason: h.Get(aggregator.HeaderReason), subject: h.Get(aggregator.HeaderSubject),
				seq: seq, node: h.Get(aggregator.HeaderNode), entries: h.Get(aggregator.HeaderEntries),
				omitted: h.Get(aggregator.HeaderBodyOmitted), data: m.Data(),
			})
		}
		if err := mb.Error(); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errors.New("dead-letter stream read stalled")
		}
		left -= n
	}
	return out, nil
}

// expectedLetter is a rejected message the test published: where it went
// and why it must be refused.
type expectedLetter struct {
	seq     uint64
	subject string
	reason  streams.Reason
	entries string // "" for a message rejected whole
	// omitted is the original's size when its copy is too large for the
	// server and must go without it.
	omitted string
}

// checkDeadLetters compares the dead-letter stream with what the test
// expects: exactly one entry for each rejected message, with its reason,
// subject, sequence and rejected entries, and nothing else.
func checkDeadLetters(ctx context.Context, js jetstream.JetStream, want []expectedLetter) error {
	got, err := deadLetters(ctx, js)
	if err != nil {
		return err
	}
	bySeq := map[uint64][]deadLetter{}
	for _, d := range got {
		bySeq[d.seq] = append(bySeq[d.seq], d)
	}
	var errs []error
	for _, w := range want {
		ds := bySeq[w.seq]
		delete(bySeq, w.seq)
		if len(ds) != 1 {
			errs = append(errs, fmt.Errorf("stream seq %d (%s): %d dead letters, want exactly 1", w.seq, w.reason, len(ds)))
			continue
		}
		d := ds[0]
		if d.reason != string(w.reason) || d.subject != w.subject || d.node != nodeName || d.entries != w.entries || d.omitted != w.omitted {
			errs = append(errs, fmt.Errorf("stream seq %d: dead letter reason %q subject %q node %q entries %q omitted %q, want %q %q %q %q %q",
				w.seq, d.reason, d.subject, d.node, d.entries, d.omitted, w.reason, w.subject, nodeName, w.entries, w.omitted))
		}
		if (len(d.data) == 0) != (w.omitted != "") {
			errs = append(errs, fmt.Errorf("stream seq %d: dead letter carries %d bytes of the original, omitted %q", w.seq, len(d.data), w.omitted))
		}
	}
	extra := make([]uint64, 0, len(bySeq))
	for seq := range bySeq {
		extra = append(extra, seq)
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i] < extra[j] })
	for _, seq := range extra {
		errs = append(errs, fmt.Errorf("stream seq %d dead-lettered (%s) but never rejected", seq, bySeq[seq][0].reason))
	}
	if len(errs) > 12 {
		errs = append(errs[:12], fmt.Errorf("and %d more", len(errs)-12))
	}
	return errors.Join(errs...)
}
