package latency

import (
	"errors"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

var (
	// ErrNegative is returned by Observe for a negative duration: a
	// latency is an elapsed time, never negative. Nothing is recorded.
	ErrNegative = errors.New("latency: negative duration; pass the elapsed time of a successful check")
	// ErrTime is returned by Observe and Fail for a time before 1970 or
	// after 2262 (outside Unix nanoseconds), the zero time included.
	// Nothing is recorded.
	ErrTime = errors.New("latency: check time outside 1970..2262; pass the time the check happened")
)

// maxUnixSec is the first second whose times Unix nanoseconds cannot
// all hold.
const maxUnixSec = math.MaxInt64 / int64(time.Second)

// Tracker keeps one service's latency statistics. Create one with New,
// Decode or Restore. It is safe for concurrent use.
type Tracker struct {
	mu sync.Mutex
	s  state
}

// state is everything a Tracker keeps; its encoding holds exactly these
// fields (docs/latency.md).
type state struct {
	halfLife time.Duration
	// decayRate is -ln 2 / halfLife in nanoseconds: a weight decays by
	// e^(decayRate·Δt) = 2^(-Δt/halfLife). (math.Exp has an assembly
	// version on amd64 and arm64; math.Exp2 does not.)
	decayRate float64

	count    uint64 // latency samples, which is also the successes
	failures uint64
	consec   uint64 // failures since the last success

	mean   float64 // seconds
	ewma   float64 // seconds
	weight float64 // decayed number of samples behind ewma

	min, max, last time.Duration
	minS, maxS     float64 // min and max in seconds

	lastSuccess int64 // Unix nanoseconds of the latest success; 0: none
	lastFailure int64 // Unix nanoseconds of the latest failure; 0: none
	lastError   string

	window []time.Duration // ring of len(window) = the window size
	head   int             // where the next sample goes
	n      int             // samples in the ring
}

// New returns an empty Tracker.
func New(cfg Config) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	t := &Tracker{}
	t.s.window = make([]time.Duration, cfg.Window)
	t.s.setHalfLife(cfg.HalfLife)
	return t, nil
}

func (s *state) setHalfLife(h time.Duration) {
	s.halfLife = h
	s.decayRate = -math.Ln2 / float64(h)
}

// unixNano returns at in Unix nanoseconds, or false when at is not after
// the Unix epoch or not before 2262-04-11T23:47:16Z.
func unixNano(at time.Time) (int64, bool) {
	if sec := at.Unix(); sec < 0 || sec >= maxUnixSec {
		return 0, false
	}
	ns := at.UnixNano()
	return ns, ns > 0
}

// Observe records a successful check at time at that took d.
//
// The running mean becomes (mean·n + x)/(n+1). The EWMA is a time-decayed
// mean: every earlier sample's weight is multiplied by 2^(-Δt/HalfLife),
// Δt the time since the latest success so far, and the new sample enters
// with weight 1; samples at the same instant (or out of order, Δt ≤ 0)
// are averaged without decay. The sample enters the window, replacing the
// oldest when it is full; min, max and the last sample follow, and the
// consecutive failures drop to zero.
//
// A negative d returns ErrNegative and a time outside 1970..2262
// (precisely: not after the Unix epoch, or from 2262-04-11T23:47:16Z on)
// ErrTime;
// neither changes anything. Observe allocates nothing.
func (t *Tracker) Observe(at time.Time, d time.Duration) error {
	if d < 0 {
		return ErrNegative
	}
	ns, ok := unixNano(at)
	if !ok {
		return ErrTime
	}
	x := seconds(d)
	t.mu.Lock()
	s := &t.s
	if s.count == 0 {
		s.mean, s.ewma, s.weight = x, x, 1
		s.min, s.max, s.minS, s.maxS = d, d, x, x
		s.lastSuccess = ns
	} else {
		n := float64(s.count)
		mean := (s.mean*n + x) / (n + 1)
		w := s.weight
		if ns > s.lastSuccess {
			w *= math.Exp(float64(ns-s.lastSuccess) * s.decayRate)
			s.lastSuccess = ns
		}
		ewma := (s.ewma*w + x) / (w + 1)
		s.weight = w + 1
		if d < s.min {
			s.min, s.minS = d, x
		} else if d > s.max {
			s.max, s.maxS = d, x
		}
		// Both are averages of samples, so within [min, max]; clamping
		// only undoes a rounding step past either end.
		s.mean = clamp(mean, s.minS, s.maxS)
		s.ewma = clamp(ewma, s.minS, s.maxS)
	}
	if s.count < math.MaxUint64 {
		s.count++
	}
	s.last = d
	s.consec = 0
	s.window[s.head] = d
	if s.head++; s.head == len(s.window) {
		s.head = 0
	}
	if s.n < len(s.window) {
		s.n++
	}
	t.mu.Unlock()
	return nil
}

// Fail records a failed check at time at: the failures and consecutive
// failures grow by one, reason becomes the last error (invalid UTF-8
// replaced, cut to MaxReasonBytes) and the last failure time is the
// latest failure time seen. No latency statistic changes. The reason is
// stored and served as it is: never put a secret in it.
//
// A time outside 1970..2262 returns ErrTime and changes nothing.
func (t *Tracker) Fail(at time.Time, reason string) error {
	ns, ok := unixNano(at)
	if !ok {
		return ErrTime
	}
	reason = cleanReason(reason)
	t.mu.Lock()
	s := &t.s
	if s.failures < math.MaxUint64 {
		s.failures++
	}
	if s.consec < math.MaxUint64 {
		s.consec++
	}
	s.lastFailure = max(s.lastFailure, ns)
	s.lastError = reason
	t.mu.Unlock()
	return nil
}

// seconds is d in seconds, correctly rounded (float64(d) is exact below
// 2^53 ns, about 104 days), the one conversion the tracker, its snapshots
// and the decoder's checks use.
func seconds(d time.Duration) float64 { return float64(d) / 1e9 }

// clamp is v limited to [lo, hi], for v, lo and hi not NaN.
func clamp(v, lo, hi float64) float64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// cleanReason makes reason valid UTF-8 of at most MaxReasonBytes.
func cleanReason(reason string) string {
	if !utf8.ValidString(reason) {
		reason = strings.ToValidUTF8(reason, "\uFFFD")
	}
	if len(reason) <= MaxReasonBytes {
		return reason
	}
	cut := MaxReasonBytes
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}

// Config returns the tracker's window size and half-life.
func (t *Tracker) Config() Config {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Config{Window: len(t.s.window), HalfLife: t.s.halfLife}
}

// samples appends the window's samples, oldest first, to dst.
func (s *state) samples(dst []time.Duration) []time.Duration {
	start := s.head - s.n
	if start < 0 {
		start += len(s.window)
	}
	for i := range s.n {
		j := start + i
		if j >= len(s.window) {
			j -= len(s.window)
		}
		dst = append(dst, s.window[j])
	}
	return dst
}

// reconfigure sets the window size and half-life to cfg's (with
// defaults), keeping the most recent samples that fit.
func (s *state) reconfigure(cfg Config) {
	cfg = cfg.WithDefaults()
	s.setHalfLife(cfg.HalfLife)
	if cfg.Window == len(s.window) {
		return
	}
	recent := s.samples(nil)
	if len(recent) > cfg.Window {
		recent = recent[len(recent)-cfg.Window:]
	}
	s.window = make([]time.Duration, cfg.Window)
	s.n = copy(s.window, recent)
	s.head = s.n % cfg.Window
}
