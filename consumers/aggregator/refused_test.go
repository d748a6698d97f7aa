package aggregator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// A dead letter is dropped only when the stream will not take it until
// someone makes room or changes the stream: full under discard new (by
// messages, bytes or messages per subject), out of resources, or the
// letter too large for it. nats-server reports a full stream with the
// code of any failed store (10077), so a 10077 for anything else (a store
// stopped under the publish, a write error) is retried like a timeout,
// never dropped; so is an account over its quota, whose operator the node
// waits for (docs/operations.md, "A full dead-letter stream"). Each error a standalone server can be made to return is
// provoked from one, so the table holds what nats.go really returns; the
// others are the server's own error values, through the publish response
// nats.go decodes.
func TestRefused(t *testing.T) {
	js, _ := harness.Streams(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	refusal := refuser(ctx, t, js)

	tests := []struct {
		name string
		err  error
		code jetstream.ErrorCode // the error's, checked so that a case cannot pass as another; 0: not an API error
		want bool
	}{
		{"full: max bytes under discard new", refusal(jetstream.StreamConfig{MaxBytes: 256, Discard: jetstream.DiscardNew}, nats.Header{}, 100), 10077, true},
		{"full: max messages under discard new", refusal(jetstream.StreamConfig{MaxMsgs: 1, Discard: jetstream.DiscardNew}, nats.Header{}, 10), 10077, true},
		{"full: max messages per subject under discard new per subject", refusal(jetstream.StreamConfig{MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true}, nats.Header{}, 10), 10077, true},
		{"over the stream's max message size", refusal(jetstream.StreamConfig{MaxMsgSize: 64}, nats.Header{}, 100), 10054, true},
		{"headers over 64 KiB", refusal(jetstream.StreamConfig{}, nats.Header{"X-Big": {strings.Repeat("x", 70_000)}}, 10), 10097, true},
		{"over a file store record", published(server.NewJSStreamStoreFailedError(server.ErrMsgTooLarge)), 10077, true},
		{"insufficient resources", published(server.NewJSInsufficientResourcesError()), 10023, true},

		{"10077: store closed under the publish", published(server.NewJSStreamStoreFailedError(server.ErrStoreClosed)), 10077, false},
		{"10077: store sequence mismatch (older servers)", published(server.NewJSStreamStoreFailedError(server.ErrSequenceMismatch)), 10077, false},
		{"10077: disk full writing (older servers)", published(server.NewJSStreamStoreFailedError(&os.PathError{Op: "write", Path: "msgs/1.blk", Err: syscall.ENOSPC})), 10077, false},
		{"10077: block file missing (older servers)", published(server.NewJSStreamStoreFailedError(errors.New("lmb missing"))), 10077, false},
		{"account over its quota", published(server.NewJSAccountResourcesExceededError()), 10002, false},
		{"no stream answered", noStream(ctx, t, js), 0, false},
		{"timeout", publishTimeout(t, js), 0, false},
		{"not an API error", errors.New("nats: connection closed"), 0, false},
		{"no error", nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var code jetstream.ErrorCode
			if apiErr := (*jetstream.APIError)(nil); errors.As(tc.err, &apiErr) {
				code = apiErr.ErrorCode
			}
			if code != tc.code {
				t.Fatalf("error %v, want code %d", tc.err, tc.code)
			}
			if got := aggregator.Refused(tc.err); got != tc.want {
				t.Errorf("refused(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// refuser returns a function that makes a stream from cfg on a subject of
// its own and publishes to it a message with hdr and a body of size bytes,
// up to three times, and returns the first error: a stream that takes all
// three is a test bug.
func refuser(ctx context.Context, t *testing.T, js jetstream.JetStream) func(cfg jetstream.StreamConfig, hdr nats.Header, size int) error {
	n := 0
	return func(cfg jetstream.StreamConfig, hdr nats.Header, size int) error {
		t.Helper()
		n++
		cfg.Name = fmt.Sprintf("REFUSAL_%d", n)
		cfg.Subjects = []string{fmt.Sprintf("refusal.%d", n)}
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			msg := &nats.Msg{Subject: cfg.Subjects[0], Header: hdr, Data: make([]byte, size)}
			if _, err := js.PublishMsg(ctx, msg); err != nil {
				return err
			}
		}
		t.Fatalf("stream %s took three messages of %d bytes", cfg.Name, size)
		return nil
	}
}

// published is the error nats.go's publish returns for a publish answered
// with apiErr: the server's value, encoded as the server sends it, and
// decoded and wrapped as nats.go does.
func published(apiErr *server.ApiError) error {
	b, err := json.Marshal(server.JSPubAckResponse{Error: apiErr})
	if err != nil {
		panic(err)
	}
	var resp struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(b, &resp); err != nil || resp.Error == nil {
		panic(fmt.Sprintf("decode %s: %v", b, err))
	}
	return fmt.Errorf("nats: %w", resp.Error)
}

// noStream is the error of a publish no stream takes: what a dead-letter
// stream deleted under the node, or between leaders, gives.
func noStream(ctx context.Context, t *testing.T, js jetstream.JetStream) error {
	t.Helper()
	_, err := js.Publish(ctx, "refusal.nostream", nil, jetstream.WithRetryAttempts(0))
	if err == nil {
		t.Fatal("publish to a subject no stream takes acknowledged")
	}
	return err
}

// publishTimeout is the error of a publish whose acknowledgement does not
// come in time: its context has ended before it is sent.
func publishTimeout(t *testing.T, js jetstream.JetStream) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	_, err := js.Publish(ctx, "refusal.timeout", nil)
	if err == nil {
		t.Fatal("publish with an ended context acknowledged")
	}
	return err
}
