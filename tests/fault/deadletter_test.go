package fault_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
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
	count   string // how many entries the letter stands for, when not the whole message
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
				count:   h.Get(aggregator.HeaderEntryCount),
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

// letterKey names the dead letter of a message for a reason: a message
// with entries rejected for several reasons has one per reason.
type letterKey struct {
	seq    uint64
	reason string
}

// checkDeadLetters compares the dead-letter stream with what the test
// expects: exactly one letter for each rejected message and reason, with
// its subject, sequence, rejected entries and their count, and nothing
// else.
func checkDeadLetters(ctx context.Context, js jetstream.JetStream, want []expectedLetter) error {
	got, err := deadLetters(ctx, js)
	if err != nil {
		return err
	}
	byKey := map[letterKey][]deadLetter{}
	for _, d := range got {
		k := letterKey{d.seq, d.reason}
		byKey[k] = append(byKey[k], d)
	}
	var errs []error
	for _, w := range want {
		k := letterKey{w.seq, string(w.reason)}
		ds := byKey[k]
		delete(byKey, k)
		if len(ds) != 1 {
			errs = append(errs, fmt.Errorf("stream seq %d (%s): %d dead letters, want exactly 1", w.seq, w.reason, len(ds)))
			continue
		}
		d := ds[0]
		count := ""
		if w.entries != "" {
			count = strconv.Itoa(strings.Count(w.entries, ",") + 1)
		}
		if d.subject != w.subject || d.node != nodeName || d.entries != w.entries || d.count != count || d.omitted != w.omitted {
			errs = append(errs, fmt.Errorf("stream seq %d (%s): dead letter subject %q node %q entries %q count %q omitted %q, want %q %q %q %q %q",
				w.seq, w.reason, d.subject, d.node, d.entries, d.count, d.omitted, w.subject, nodeName, w.entries, count, w.omitted))
		}
		if (len(d.data) == 0) != (w.omitted != "") {
			errs = append(errs, fmt.Errorf("stream seq %d: dead letter carries %d bytes of the original, omitted %q", w.seq, len(d.data), w.omitted))
		}
	}
	extra := make([]letterKey, 0, len(byKey))
	for k := range byKey {
		extra = append(extra, k)
	}
	sort.Slice(extra, func(i, j int) bool {
		return extra[i].seq < extra[j].seq || (extra[i].seq == extra[j].seq && extra[i].reason < extra[j].reason)
	})
	for _, k := range extra {
		errs = append(errs, fmt.Errorf("stream seq %d dead-lettered (%s) but never rejected for it", k.seq, k.reason))
	}
	if len(errs) > 12 {
		errs = append(errs[:12], fmt.Errorf("and %d more", len(errs)-12))
	}
	return errors.Join(errs...)
}
