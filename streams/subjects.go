package streams

import (
	"errors"
	"fmt"
)

// DefaultPrefix is the first token of every jetmetrics subject and the
// base of every stream name.
const DefaultPrefix = "jetmetrics"

// MaxTokenBytes bounds a subject token (node name, producer id, prefix).
const MaxTokenBytes = 64

// ErrToken is wrapped by every invalid-token error.
var ErrToken = errors.New("invalid subject token")

// CheckToken reports whether s may be used as one subject token: 1 to 64
// bytes of [A-Za-z0-9_-]. Label values never go into subjects; node names,
// producer ids and the prefix do, so they are checked here.
func CheckToken(what, s string) error {
	if s == "" || len(s) > MaxTokenBytes {
		return fmt.Errorf("%w: %s %q must be 1 to %d bytes of [A-Za-z0-9_-]", ErrToken, what, s, MaxTokenBytes)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return fmt.Errorf("%w: %s %q has %q; only [A-Za-z0-9_-] is allowed", ErrToken, what, s, c)
		}
	}
	return nil
}

// Subjects builds the subjects under one prefix. The zero value uses
// DefaultPrefix.
type Subjects struct {
	Prefix string
}

func (s Subjects) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Delta is the subject a producer publishes its batches for node on.
func (s Subjects) Delta(node, producer string) string {
	return s.prefix() + ".delta." + node + "." + producer
}

// DeltaNode is the filter that matches every producer of one node.
func (s Subjects) DeltaNode(node string) string {
	return s.prefix() + ".delta." + node + ".*"
}

// DeltaAll matches every delta subject.
func (s Subjects) DeltaAll() string { return s.prefix() + ".delta.>" }

// Snapshot is the subject of one node's snapshots.
func (s Subjects) Snapshot(node string) string { return s.prefix() + ".snap." + node }

// SnapshotAll matches every node's snapshots.
func (s Subjects) SnapshotAll() string { return s.prefix() + ".snap.*" }

// DeadLetter is the subject of rejected input for one reason.
func (s Subjects) DeadLetter(reason string) string { return s.prefix() + ".dlq." + reason }

// DeadLetterAll matches every dead-letter subject.
func (s Subjects) DeadLetterAll() string { return s.prefix() + ".dlq.>" }
