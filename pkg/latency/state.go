package latency

import (
	"encoding"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"
	"unicode/utf8"
)

// The state layout, version 1 (docs/latency.md), little-endian:
//
//	magic "JMLT" · version (1 byte) · body length B (uint32) · body (B bytes) · CRC-32C of everything before it (uint32)
//
// and the body:
//
//	window size (uint32) · half-life ns (int64) · count, failures, consecutive failures (uint64 each) ·
//	mean, EWMA (float64 seconds), EWMA weight (float64) · min, max, last (int64 ns) ·
//	last success, last failure (int64 Unix ns, 0 = none) · k (uint32) · k samples, oldest first (int64 ns) ·
//	last error length L (uint16) · L bytes of UTF-8
const (
	magic       = "JMLT"
	Version     = 1 // the state version MarshalBinary writes and Decode reads
	headerLen   = len(magic) + 1 + 4
	checksumLen = 4
	fixedBody   = 4 + 8 + 3*8 + 3*8 + 3*8 + 2*8 + 4 + 2
	maxBody     = fixedBody + 8*MaxWindow + MaxReasonBytes
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	_ encoding.BinaryMarshaler   = (*Tracker)(nil)
	_ encoding.BinaryAppender    = (*Tracker)(nil)
	_ encoding.BinaryUnmarshaler = (*Tracker)(nil)
)

// Reason says why a state was unusable; it is the reason label of
// jetmetrics_latency_state_resets_total.
type Reason string

// The reasons, a closed set.
const (
	// ReasonMissing: no state at all (nil or empty).
	ReasonMissing Reason = "missing"
	// ReasonTruncated: the state ends before its header or body does.
	ReasonTruncated Reason = "truncated"
	// ReasonMalformed: not a latency state (another magic), bytes after
	// its end, or a body whose lengths do not add up.
	ReasonMalformed Reason = "malformed"
	// ReasonVersion: a state version this build does not read.
	ReasonVersion Reason = "version"
	// ReasonChecksum: the CRC-32C does not match: the bytes changed.
	ReasonChecksum Reason = "checksum"
	// ReasonInconsistent: well-formed, but its fields contradict each
	// other or hold a value no tracker can have (NaN or infinity, count 0
	// with a mean, a window longer than its size, min above max, …).
	ReasonInconsistent Reason = "inconsistent"
)

// Reasons lists every Reason.
var Reasons = []Reason{ReasonMissing, ReasonTruncated, ReasonMalformed, ReasonVersion, ReasonChecksum, ReasonInconsistent}

// DecodeError is the error of Decode and UnmarshalBinary. Detail never
// holds the state's last error text.
type DecodeError struct {
	Reason Reason
	Detail string
}

func (e *DecodeError) Error() string {
	return "latency state " + string(e.Reason) + ": " + e.Detail
}

func decodeErr(r Reason, format string, args ...any) *DecodeError {
	return &DecodeError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// MarshalBinary encodes the tracker's state (docs/latency.md).
func (t *Tracker) MarshalBinary() ([]byte, error) {
	return t.AppendBinary(nil)
}

// AppendBinary appends the encoded state to b.
func (t *Tracker) AppendBinary(b []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &t.s
	start := len(b)
	body := fixedBody + 8*s.n + len(s.lastError)
	b = append(b, magic...)
	b = append(b, Version)
	b = binary.LittleEndian.AppendUint32(b, uint32(body))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.window)))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.halfLife))
	b = binary.LittleEndian.AppendUint64(b, s.count)
	b = binary.LittleEndian.AppendUint64(b, s.failures)
	b = binary.LittleEndian.AppendUint64(b, s.consec)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.mean))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.ewma))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.weight))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.min))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.max))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.last))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.lastSuccess))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.lastFailure))
	b = binary.LittleEndian.AppendUint32(b, uint32(s.n))
	for _, d := range s.samples(make([]time.Duration, 0, s.n)) {
		b = binary.LittleEndian.AppendUint64(b, uint64(d))
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s.lastError)))
	b = append(b, s.lastError...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
}

// Decode returns the Tracker that data encodes, with the window size and
// half-life stored in it, or a *DecodeError saying why data is unusable.
func Decode(data []byte) (*Tracker, error) {
	s, err := decode(data)
	if err != nil {
		return nil, err
	}
	return &Tracker{s: s}, nil
}

// UnmarshalBinary replaces the tracker's state with the one data encodes,
// window size and half-life included. On error (a *DecodeError) the
// tracker is unchanged.
func (t *Tracker) UnmarshalBinary(data []byte) error {
	s, err := decode(data)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.s = s
	t.mu.Unlock()
	return nil
}

// Restore returns the tracker that state encodes, set to cfg's window size
// (keeping its most recent samples) and half-life, and an empty reason.
// When state is unusable it returns a fresh tracker and the reason, so the
// caller starts from the current sample (and counts the reset: see
// Resets). The error is cfg's alone.
func Restore(state []byte, cfg Config) (*Tracker, Reason, error) {
	t, derr, err := restore(state, cfg)
	if derr != nil {
		return t, derr.Reason, err
	}
	return t, "", err
}

// restore is Restore with the whole decode error.
func restore(state []byte, cfg Config) (*Tracker, *DecodeError, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	s, derr := decode(state)
	if derr != nil {
		t, err := New(cfg)
		return t, derr, err
	}
	s.reconfigure(cfg)
	return &Tracker{s: s}, nil, nil
}

// reader reads little-endian fields from a body whose length was checked.
type reader struct {
	b   []byte
	off int
}

func (r *reader) u16() uint16 { v := binary.LittleEndian.Uint16(r.b[r.off:]); r.off += 2; return v }
func (r *reader) u32() uint32 { v := binary.LittleEndian.Uint32(r.b[r.off:]); r.off += 4; return v }
func (r *reader) u64() uint64 { v := binary.LittleEndian.Uint64(r.b[r.off:]); r.off += 8; return v }
func (r *reader) i64() int64  { return int64(r.u64()) }
func (r *reader) f64() float64 {
	return math.Float64frombits(r.u64())
}

func decode(data []byte) (state, *DecodeError) {
	var s state
	if len(data) == 0 {
		return s, decodeErr(ReasonMissing, "no state")
	}
	for i := range min(len(data), len(magic)) {
		if data[i] != magic[i] {
			return s, decodeErr(ReasonMalformed, "not a latency state (magic %q, want %q)", data[:min(len(data), len(magic))], magic)
		}
	}
	if len(data) < len(magic)+1 {
		return s, decodeErr(ReasonTruncated, "%d bytes end inside the header", len(data))
	}
	if v := data[len(magic)]; v != Version {
		return s, decodeErr(ReasonVersion, "version %d, this build reads %d", v, Version)
	}
	if len(data) < headerLen {
		return s, decodeErr(ReasonTruncated, "%d bytes end inside the header", len(data))
	}
	body := int(binary.LittleEndian.Uint32(data[len(magic)+1:]))
	if body > maxBody {
		return s, decodeErr(ReasonMalformed, "body length %d beyond the largest state's %d", body, maxBody)
	}
	if want := headerLen + body + checksumLen; len(data) < want {
		return s, decodeErr(ReasonTruncated, "%d bytes of a %d-byte state", len(data), want)
	} else if len(data) > want {
		return s, decodeErr(ReasonMalformed, "%d bytes after the end of the state", len(data)-want)
	}
	sum := binary.LittleEndian.Uint32(data[headerLen+body:])
	if got := crc32.Checksum(data[:headerLen+body], castagnoli); got != sum {
		return s, decodeErr(ReasonChecksum, "CRC-32C %08x, stored %08x", got, sum)
	}
	if body < fixedBody {
		return s, decodeErr(ReasonMalformed, "body of %d bytes, shorter than the fixed %d", body, fixedBody)
	}
	r := reader{b: data[headerLen : headerLen+body]}
	size := r.u32()
	halfLife := time.Duration(r.i64())
	s.count, s.failures, s.consec = r.u64(), r.u64(), r.u64()
	s.mean, s.ewma, s.weight = r.f64(), r.f64(), r.f64()
	s.min, s.max, s.last = time.Duration(r.i64()), time.Duration(r.i64()), time.Duration(r.i64())
	s.lastSuccess, s.lastFailure = r.i64(), r.i64()
	k := int(r.u32())
	// fixedBody counts the error length; the samples and error text are
	// the rest, and must fill the body exactly.
	if rest := body - fixedBody; k > rest/8 {
		return s, decodeErr(ReasonMalformed, "%d samples in a body with room for %d", k, rest/8)
	}
	samples := make([]time.Duration, k)
	for i := range samples {
		samples[i] = time.Duration(r.i64())
	}
	errLen := int(r.u16())
	if r.off+errLen != body {
		return s, decodeErr(ReasonMalformed, "last error of %d bytes where %d remain", errLen, body-r.off)
	}
	lastError := r.b[r.off:]

	if size < 1 || size > MaxWindow {
		return s, decodeErr(ReasonInconsistent, "window size %d outside 1..%d", size, MaxWindow)
	}
	if halfLife <= 0 {
		return s, decodeErr(ReasonInconsistent, "half-life %d ns, not positive", int64(halfLife))
	}
	if k > int(size) {
		return s, decodeErr(ReasonInconsistent, "%d samples in a window of %d", k, size)
	}
	if len(lastError) > MaxReasonBytes || !utf8.Valid(lastError) {
		return s, decodeErr(ReasonInconsistent, "last error of %d bytes is not UTF-8 of at most %d", len(lastError), MaxReasonBytes)
	}
	s.lastError = string(lastError)
	s.setHalfLife(halfLife)
	s.window = make([]time.Duration, size)
	s.n = copy(s.window, samples)
	s.head = s.n % int(size)
	if err := s.check(samples); err != nil {
		return state{}, err
	}
	return s, nil
}

// check reports the first invariant s breaks; samples is its window,
// oldest first.
func (s *state) check(samples []time.Duration) *DecodeError {
	bad := func(format string, args ...any) *DecodeError {
		return decodeErr(ReasonInconsistent, format, args...)
	}
	switch {
	case s.consec > s.failures:
		return bad("%d consecutive failures of %d failures", s.consec, s.failures)
	case s.lastFailure < 0 || s.lastSuccess < 0:
		return bad("a last success or failure time before 1970")
	case s.failures == 0 && (s.lastFailure != 0 || s.lastError != ""):
		return bad("no failures, but a last failure time or error")
	case s.failures > 0 && s.lastFailure == 0:
		return bad("%d failures without a last failure time", s.failures)
	}
	if s.count == 0 {
		if math.Float64bits(s.mean) != 0 || math.Float64bits(s.ewma) != 0 || math.Float64bits(s.weight) != 0 ||
			s.min != 0 || s.max != 0 || s.last != 0 || s.lastSuccess != 0 || len(samples) != 0 {
			return bad("count 0 with a mean, EWMA, min, max, last sample, success time or samples")
		}
		return nil
	}
	s.minS, s.maxS = seconds(s.min), seconds(s.max)
	lo, hi := s.minS, s.maxS
	switch {
	case uint64(len(samples)) > s.count:
		return bad("%d samples of a count of %d", len(samples), s.count)
	case len(samples) == 0:
		return bad("count %d with an empty window", s.count)
	case s.min < 0 || s.min > s.max:
		return bad("min %s, max %s", s.min, s.max)
	case s.last < s.min || s.last > s.max:
		return bad("last sample %s outside min %s .. max %s", s.last, s.min, s.max)
	case samples[len(samples)-1] != s.last:
		return bad("newest sample %s is not the last sample %s", samples[len(samples)-1], s.last)
	case s.lastSuccess == 0:
		return bad("count %d without a last success time", s.count)
	case !within(s.mean, lo, hi):
		return bad("mean %g outside min .. max (or not a number)", s.mean)
	case !within(s.ewma, lo, hi):
		return bad("EWMA %g outside min .. max (or not a number)", s.ewma)
	case !(s.weight >= 1 && s.weight <= float64(s.count)):
		return bad("EWMA weight %g outside 1 .. count %d (or not a number)", s.weight, s.count)
	}
	for _, d := range samples {
		if d < s.min || d > s.max {
			return bad("sample %s outside min %s .. max %s", d, s.min, s.max)
		}
	}
	return nil
}

// within reports whether v lies in [lo, hi] and is not -0 (which the
// tracker never computes, and would not re-encode alike). NaN is never
// within.
func within(v, lo, hi float64) bool {
	return v >= lo && v <= hi && !math.Signbit(v)
}
