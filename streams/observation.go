package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// ObservationVersion is the observation-result format this build writes
// and reads.
const ObservationVersion = 1

// MaxObservationBytes bounds an encoded result; a larger message is
// rejected before it is parsed.
const MaxObservationBytes = 64 << 10

// ErrObservation is wrapped by every error decoding or validating an
// observation result.
var ErrObservation = errors.New("invalid observation")

// Observation statuses.
const (
	ObsStatusOK      = "ok"
	ObsStatusError   = "error"
	ObsStatusTimeout = "timeout"
)

// VolumeMetric is a volume's performance at one observation: Backend.AI's
// FSPerfMetric. Rates are per second over the backend's own window (or,
// for the local backend, between two polls).
type VolumeMetric struct {
	IOPSRead             float64 `json:"iops_read"`
	IOPSWrite            float64 `json:"iops_write"`
	ThroughputBytesRead  float64 `json:"io_bytes_read"`
	ThroughputBytesWrite float64 `json:"io_bytes_write"`
	LatencyUsecRead      float64 `json:"io_usec_read"`
	LatencyUsecWrite     float64 `json:"io_usec_write"`
}

// Observation is one poll's result of one volume, published on
// Subjects.Observation(ObsKindVolume, Volume).
type Observation struct {
	// Version is the format version; ObservationVersion.
	Version int `json:"v"`
	// Volume is the volume's configured name (not its subject token).
	Volume string `json:"volume"`
	// Metric is the volume's performance; zero unless Status is ok.
	Metric VolumeMetric `json:"metric"`
	// ObservedAt is when the poll was scheduled to start, UTC. Every node
	// polls a target on the same phase, so results are evenly spaced
	// across leader changes.
	ObservedAt time.Time `json:"observed_at"`
	// Duration is how long the backend took to answer.
	Duration time.Duration `json:"duration_ns"`
	// Status is ObsStatusOK, ObsStatusError or ObsStatusTimeout.
	Status string `json:"status"`
	// Error says why a poll failed; empty when Status is ok.
	Error string `json:"error,omitempty"`
	// Node is the node that polled.
	Node string `json:"node"`
	// LeaseRevision is the revision of Node's lease on the volume when it
	// polled: the fencing token. A newer lease always has a higher
	// revision, so a deposed leader's result never outranks its
	// successor's.
	LeaseRevision uint64 `json:"lease_revision"`
}

// Newer reports whether o should replace old in a cache: a later
// observation time wins, and at the same time the higher lease revision.
// A result replayed (equal time and revision) is not newer.
func (o *Observation) Newer(old *Observation) bool {
	if !o.ObservedAt.Equal(old.ObservedAt) {
		return o.ObservedAt.After(old.ObservedAt)
	}
	return o.LeaseRevision > old.LeaseRevision
}

// Validate reports the first field that breaks the format's rules.
func (o *Observation) Validate() error {
	switch {
	case o.Version != ObservationVersion:
		return fmt.Errorf("%w: version %d, want %d", ErrObservation, o.Version, ObservationVersion)
	case o.ObservedAt.IsZero():
		return fmt.Errorf("%w: no observed_at", ErrObservation)
	case o.Duration < 0:
		return fmt.Errorf("%w: negative duration %s", ErrObservation, o.Duration)
	case o.Status != ObsStatusOK && o.Status != ObsStatusError && o.Status != ObsStatusTimeout:
		return fmt.Errorf("%w: status %q", ErrObservation, o.Status)
	case o.Status == ObsStatusOK && o.Error != "":
		return fmt.Errorf("%w: status ok with error %q", ErrObservation, o.Error)
	case o.Status != ObsStatusOK && o.Error == "":
		return fmt.Errorf("%w: status %s without an error", ErrObservation, o.Status)
	}
	if _, err := TargetToken(o.Volume); err != nil {
		return fmt.Errorf("%w: volume: %w", ErrObservation, err)
	}
	if err := CheckToken("node", o.Node); err != nil {
		return fmt.Errorf("%w: %w", ErrObservation, err)
	}
	m := o.Metric
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"iops_read", m.IOPSRead}, {"iops_write", m.IOPSWrite},
		{"io_bytes_read", m.ThroughputBytesRead}, {"io_bytes_write", m.ThroughputBytesWrite},
		{"io_usec_read", m.LatencyUsecRead}, {"io_usec_write", m.LatencyUsecWrite},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("%w: %s is %v", ErrObservation, f.name, f.v)
		}
	}
	return nil
}

// EncodeObservation validates o and returns its wire form: one JSON
// object. A zero Version is written as ObservationVersion.
func EncodeObservation(o Observation) ([]byte, error) {
	if o.Version == 0 {
		o.Version = ObservationVersion
	}
	o.ObservedAt = o.ObservedAt.UTC()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(&o)
	if err != nil {
		return nil, fmt.Errorf("encode observation: %w", err)
	}
	return b, nil
}

// DecodeObservation parses and validates one result. Unknown fields are
// an error: a newer writer bumps the version instead.
func DecodeObservation(data []byte) (Observation, error) {
	var o Observation
	if len(data) > MaxObservationBytes {
		return o, fmt.Errorf("%w: %d bytes, more than %d", ErrObservation, len(data), MaxObservationBytes)
	}
	var head struct {
		Version *int `json:"v"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return o, fmt.Errorf("%w: %w", ErrObservation, err)
	}
	if head.Version == nil {
		return o, fmt.Errorf("%w: no version", ErrObservation)
	}
	if *head.Version != ObservationVersion {
		return o, fmt.Errorf("%w: version %d, want %d", ErrObservation, *head.Version, ObservationVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return Observation{}, fmt.Errorf("%w: %w", ErrObservation, err)
	}
	if dec.More() {
		return Observation{}, fmt.Errorf("%w: data after the object", ErrObservation)
	}
	if err := o.Validate(); err != nil {
		return Observation{}, err
	}
	return o, nil
}
