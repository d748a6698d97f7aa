package streams

import (
	"errors"
	"fmt"
	"strings"
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

// Delta is the legacy subject of a producer's batches for node:
// <prefix>.delta.<node>.<producer>. The aggregator still accepts it, but
// NATS permissions cannot tell whose producer id it carries; producers
// publish on OwnedDelta.
func (s Subjects) Delta(node, producer string) string {
	return s.prefix() + ".delta." + node + "." + producer
}

// OwnedDelta is the subject a producer publishes its batches for node on:
// <prefix>.delta.<node>.<owner>.<producer>, where owner is the producer's
// name and the producer id starts with owner and "-". The owner token is
// what a NATS permission (DeltaOwner) grants a credential.
func (s Subjects) OwnedDelta(node, owner, producer string) string {
	return s.prefix() + ".delta." + node + "." + owner + "." + producer
}

// DeltaOwner matches every producer id of one owner publishing to node:
// the publish permission of a producer credential.
func (s Subjects) DeltaOwner(node, owner string) string {
	return s.prefix() + ".delta." + node + "." + owner + ".*"
}

// DeltaNode is the filter that matches every delta subject of one node,
// in both forms (and malformed longer ones, which the aggregator
// dead-letters).
func (s Subjects) DeltaNode(node string) string {
	return s.prefix() + ".delta." + node + ".>"
}

// DeltaSubject is a delta subject taken apart.
type DeltaSubject struct {
	Node string
	// Owner is empty in the legacy four-token form.
	Owner    string
	Producer string
}

// ErrDeltaSubject is wrapped by ParseDelta's errors.
var ErrDeltaSubject = errors.New("malformed delta subject")

// ParseDelta takes a delta subject of this prefix apart. Both forms are
// accepted; in the owned form the producer id must start with the owner
// and "-", so a credential owning "billing" cannot write the marks of a
// "payments-…" producer.
func (s Subjects) ParseDelta(subject string) (DeltaSubject, error) {
	rest, ok := strings.CutPrefix(subject, s.prefix()+".delta.")
	if !ok {
		return DeltaSubject{}, fmt.Errorf("%w: %s is not under %s.delta", ErrDeltaSubject, subject, s.prefix())
	}
	t := strings.Split(rest, ".")
	switch len(t) {
	case 2:
		return DeltaSubject{Node: t[0], Producer: t[1]}, nil
	case 3:
		if !strings.HasPrefix(t[2], t[1]+"-") {
			return DeltaSubject{}, fmt.Errorf("%w: producer id %q on %s does not start with its owner token %q and \"-\"", ErrDeltaSubject, t[2], subject, t[1])
		}
		return DeltaSubject{Node: t[0], Owner: t[1], Producer: t[2]}, nil
	default:
		return DeltaSubject{}, fmt.Errorf("%w: %s has %d tokens after %s.delta, want <node>.<owner>.<producer> (or the legacy <node>.<producer>)", ErrDeltaSubject, subject, len(t), s.prefix())
	}
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
