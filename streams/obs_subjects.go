package streams

import (
	"errors"
	"fmt"
	"strings"
)

// Observation kinds: the second token of an observation subject.
const (
	ObsKindVolume = "volume"
	ObsKindProbe  = "probe"
)

// ErrTargetName is wrapped by every error about a target name that cannot
// be mapped to a subject token.
var ErrTargetName = errors.New("invalid target name")

// TargetToken maps a target name (a volume or a service name) to one
// subject token, reversibly:
//
//   - the bytes A-Z, a-z, 0-9 and '-' stand for themselves;
//   - every other byte, '_' included, is written as '_' and two lowercase
//     hex digits ("_2f" for '/', "_5f" for '_', "_2e" for '.').
//
// So a name that already is a token without '_' keeps its spelling, two
// different names never share a token, and ParseTargetToken recovers the
// name. A name that is empty, or whose token would be longer than
// MaxTokenBytes, is an error naming it: never silently dropped or cut.
// The token is also a valid NATS KV key, so leases use it too.
func TargetToken(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty", ErrTargetName)
	}
	n := 0
	for i := 0; i < len(name); i++ {
		if plainTokenByte(name[i]) {
			n++
		} else {
			n += 3
		}
	}
	if n > MaxTokenBytes {
		return "", fmt.Errorf("%w: %q maps to a %d-byte subject token, more than %d", ErrTargetName, name, n, MaxTokenBytes)
	}
	if n == len(name) {
		return name, nil
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if plainTokenByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String(), nil
}

// ParseTargetToken is the inverse of TargetToken. It rejects any token
// TargetToken would not produce (an escape of a plain byte, uppercase hex,
// a truncated escape), so each name has exactly one token.
func ParseTargetToken(tok string) (string, error) {
	if err := CheckToken("target token", tok); err != nil {
		return "", err
	}
	if !strings.Contains(tok, "_") {
		return tok, nil
	}
	b := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c != '_' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("%w: token %q ends inside an escape", ErrTargetName, tok)
		}
		hi, ok1 := lowerHex(tok[i+1])
		lo, ok2 := lowerHex(tok[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: token %q has a bad escape %q", ErrTargetName, tok, tok[i:i+3])
		}
		v := hi<<4 | lo
		if plainTokenByte(v) {
			return "", fmt.Errorf("%w: token %q escapes %q, which stands for itself", ErrTargetName, tok, v)
		}
		b = append(b, v)
		i += 2
	}
	return string(b), nil
}

func plainTokenByte(c byte) bool {
	return c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Observation is the subject of one target's results: prefix.obs.kind.token,
// where token is TargetToken(target).
func (s Subjects) Observation(kind, target string) (string, error) {
	if err := CheckToken("observation kind", kind); err != nil {
		return "", err
	}
	tok, err := TargetToken(target)
	if err != nil {
		return "", err
	}
	return s.prefix() + ".obs." + kind + "." + tok, nil
}

// ObservationKind matches every target of one kind.
func (s Subjects) ObservationKind(kind string) string { return s.prefix() + ".obs." + kind + ".*" }

// ObservationAll matches every observation subject.
func (s Subjects) ObservationAll() string { return s.prefix() + ".obs.>" }

// ParseObservation splits an observation subject into its kind and target
// name.
func (s Subjects) ParseObservation(subject string) (kind, target string, err error) {
	rest, ok := strings.CutPrefix(subject, s.prefix()+".obs.")
	if !ok {
		return "", "", fmt.Errorf("subject %q is not an observation subject", subject)
	}
	kind, tok, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(tok, ".") {
		return "", "", fmt.Errorf("subject %q is not prefix.obs.kind.target", subject)
	}
	if target, err = ParseTargetToken(tok); err != nil {
		return "", "", fmt.Errorf("subject %q: %w", subject, err)
	}
	return kind, target, nil
}
