package observer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/streams"
)

// DefaultPublishTimeout bounds publishing one result.
const DefaultPublishTimeout = 2 * time.Second

// Results publishes an observer's results to the observation stream: each
// target's on <prefix>.obs.<kind>.<target token>, with the message id
// "<target token>:<scheduled instant>", so the stream keeps at most one
// result per target and instant even if two nodes ever polled the same
// one, or a publish is retried.
type Results struct {
	js       jetstream.JetStream
	timeout  time.Duration
	subjects map[string]string
	tokens   map[string]string
}

// NewResults returns the publisher of kind's results for targets;
// timeout bounds one publish (0: DefaultPublishTimeout).
func NewResults(js jetstream.JetStream, subjects streams.Subjects, kind string, targets []string, timeout time.Duration) (*Results, error) {
	if timeout <= 0 {
		timeout = DefaultPublishTimeout
	}
	r := &Results{js: js, timeout: timeout, subjects: make(map[string]string, len(targets)), tokens: make(map[string]string, len(targets))}
	for _, t := range targets {
		subj, err := subjects.Observation(kind, t)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", t, err)
		}
		tok, _ := streams.TargetToken(t)
		r.subjects[t], r.tokens[t] = subj, tok
	}
	return r, nil
}

// Publish publishes target's result for the poll scheduled at scheduled.
// It is bounded by the publish timeout, not by ctx's deadline: a result
// published after a poll timed out still counts.
func (r *Results) Publish(ctx context.Context, target string, scheduled time.Time, data []byte) error {
	subj, ok := r.subjects[target]
	if !ok {
		return fmt.Errorf("publish result: %q is not a target", target)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	id := r.tokens[target] + ":" + strconv.FormatInt(scheduled.UnixNano(), 10)
	_, err := r.js.PublishMsg(pctx, &nats.Msg{Subject: subj, Data: data}, jetstream.WithMsgID(id))
	return err
}
