package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/streams"
)

// TestProvisionFailureNamesTheFlag checks what /-/ready shows while the
// streams cannot be placed: the replica count, JetStream's reason, and
// the flag that fixes it; any other failure keeps its cause.
func TestProvisionFailureNamesTheFlag(t *testing.T) {
	n := &Node{cfg: Config{Streams: streams.Config{Replicas: 3}}}
	placement := fmt.Errorf("provision stream JETMETRICS_DELTAS: %w", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"})
	got := n.provisionFailure(placement).Error()
	for _, want := range []string{"cannot place R3", "no suitable peers for placement", "--streams.replicas"} {
		if !strings.Contains(got, want) {
			t.Errorf("placement failure %q lacks %q", got, want)
		}
	}
	other := errors.New("context deadline exceeded")
	got2 := n.provisionFailure(other)
	if !errors.Is(got2, other) || strings.Contains(got2.Error(), "--streams.replicas") {
		t.Errorf("other failure = %q, want its cause and no placement advice", got2)
	}
}
