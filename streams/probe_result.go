package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ProbeResultVersion is the probe-result format this build writes and
// reads.
const ProbeResultVersion = 1

// Bounds of a probe result.
const (
	// MaxProbeResultBytes bounds an encoded result; a larger message is
	// rejected before it is parsed.
	MaxProbeResultBytes = 8 << 10
	// MaxProbeErrorBytes bounds a failure's message.
	MaxProbeErrorBytes = 1024
	// MaxProbeReasonBytes bounds a failure's reason.
	MaxProbeReasonBytes = 32
	// MaxProbeDuration bounds a latency and a duration: a probe that took
	// longer is not a measurement but a bug.
	MaxProbeDuration = 24 * time.Hour
)

// ErrProbeResult is wrapped by every error decoding or validating a probe
// result.
var ErrProbeResult = errors.New("invalid probe result")

// ProbeResult is one probe's result of one service, published on
// Subjects.Observation(ObsKindProbe, Service). A success carries the
// service's latency; a failure carries its reason and message and no
// latency, so a failure can never enter a latency statistic.
type ProbeResult struct {
	// Version is the format version; ProbeResultVersion.
	Version int `json:"v"`
	// Service is the service's configured name (not its subject token).
	Service string `json:"service"`
	// Success says whether the service answered as expected.
	Success bool `json:"success"`
	// Latency is the time the service took to answer; zero unless
	// Success.
	Latency time.Duration `json:"latency_ns"`
	// Reason is a failure's machine reason (timeout, refused, tls,
	// status, …: lowercase letters, digits and '_'); empty on success.
	Reason string `json:"reason,omitempty"`
	// Error is a failure's one-line message; empty on success.
	Error string `json:"error,omitempty"`
	// ObservedAt is when the probe was scheduled to start, UTC.
	ObservedAt time.Time `json:"observed_at"`
	// Duration is how long the probe ran, success or failure.
	Duration time.Duration `json:"duration_ns"`
	// Node is the node that probed.
	Node string `json:"node"`
	// LeaseRevision is the revision of Node's lease on the service when it
	// probed: the fencing token.
	LeaseRevision uint64 `json:"lease_revision"`
}

// Newer reports whether r should replace old in a cache: a later
// observation time wins, and at the same time the higher lease revision.
func (r *ProbeResult) Newer(old *ProbeResult) bool {
	if !r.ObservedAt.Equal(old.ObservedAt) {
		return r.ObservedAt.After(old.ObservedAt)
	}
	return r.LeaseRevision > old.LeaseRevision
}

// Validate reports the first field that breaks the format's rules.
func (r *ProbeResult) Validate() error {
	switch {
	case r.Version != ProbeResultVersion:
		return fmt.Errorf("%w: version %d, want %d", ErrProbeResult, r.Version, ProbeResultVersion)
	case r.ObservedAt.IsZero():
		return fmt.Errorf("%w: no observed_at", ErrProbeResult)
	case r.Duration < 0 || r.Duration > MaxProbeDuration:
		return fmt.Errorf("%w: duration %s is not between 0 and %s", ErrProbeResult, r.Duration, MaxProbeDuration)
	case r.Latency < 0 || r.Latency > MaxProbeDuration:
		return fmt.Errorf("%w: latency %s is not between 0 and %s", ErrProbeResult, r.Latency, MaxProbeDuration)
	case r.Success && (r.Reason != "" || r.Error != ""):
		return fmt.Errorf("%w: a success with a reason or an error", ErrProbeResult)
	case !r.Success && r.Latency != 0:
		return fmt.Errorf("%w: a failure with a latency", ErrProbeResult)
	case !r.Success && !ValidProbeReason(r.Reason):
		return fmt.Errorf("%w: reason %q is not 1 to %d of a-z, 0-9 and _", ErrProbeResult, r.Reason, MaxProbeReasonBytes)
	case !r.Success && r.Error == "":
		return fmt.Errorf("%w: a failure without an error", ErrProbeResult)
	case len(r.Error) > MaxProbeErrorBytes:
		return fmt.Errorf("%w: error of %d bytes, more than %d", ErrProbeResult, len(r.Error), MaxProbeErrorBytes)
	case !utf8.ValidString(r.Error):
		return fmt.Errorf("%w: error is not UTF-8", ErrProbeResult)
	}
	if _, err := TargetToken(r.Service); err != nil {
		return fmt.Errorf("%w: service: %w", ErrProbeResult, err)
	}
	if !utf8.ValidString(r.Service) {
		return fmt.Errorf("%w: service is not UTF-8", ErrProbeResult)
	}
	if err := CheckToken("node", r.Node); err != nil {
		return fmt.Errorf("%w: %w", ErrProbeResult, err)
	}
	return nil
}

// ValidProbeReason reports whether s may be a failure's reason: 1 to
// MaxProbeReasonBytes of a-z, 0-9 and '_'.
func ValidProbeReason(s string) bool {
	if s == "" || len(s) > MaxProbeReasonBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// TruncateProbeError cuts msg to at most MaxProbeErrorBytes on a UTF-8
// boundary, replacing invalid bytes, so that any message fits a result.
func TruncateProbeError(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) <= MaxProbeErrorBytes {
		return msg
	}
	const ellipsis = "…"
	cut := MaxProbeErrorBytes - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + ellipsis
}

// EncodeProbeResult validates r and returns its wire form: one JSON
// object. A zero Version is written as ProbeResultVersion.
func EncodeProbeResult(r ProbeResult) ([]byte, error) {
	if r.Version == 0 {
		r.Version = ProbeResultVersion
	}
	r.ObservedAt = r.ObservedAt.UTC()
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("encode probe result: %w", err)
	}
	return b, nil
}

// DecodeProbeResult parses and validates one result. Unknown fields are
// an error: a newer writer bumps the version instead.
func DecodeProbeResult(data []byte) (ProbeResult, error) {
	var r ProbeResult
	if len(data) > MaxProbeResultBytes {
		return r, fmt.Errorf("%w: %d bytes, more than %d", ErrProbeResult, len(data), MaxProbeResultBytes)
	}
	var head struct {
		Version *int `json:"v"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return r, fmt.Errorf("%w: %w", ErrProbeResult, err)
	}
	if head.Version == nil {
		return r, fmt.Errorf("%w: no version", ErrProbeResult)
	}
	if *head.Version != ProbeResultVersion {
		return r, fmt.Errorf("%w: version %d, want %d", ErrProbeResult, *head.Version, ProbeResultVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return ProbeResult{}, fmt.Errorf("%w: %w", ErrProbeResult, err)
	}
	if dec.More() {
		return ProbeResult{}, fmt.Errorf("%w: data after the object", ErrProbeResult)
	}
	r.ObservedAt = r.ObservedAt.UTC()
	if err := r.Validate(); err != nil {
		return ProbeResult{}, err
	}
	return r, nil
}
