package latency_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/latency"
)

// Offsets of the version 1 layout (docs/latency.md), for tests that edit
// a state's fields and seal it again with a valid checksum.
const (
	offVersion  = 4
	offBodyLen  = 5
	offSize     = 9
	offHalfLife = 13
	offCount    = 21
	offFailures = 29
	offConsec   = 37
	offMean     = 45
	offEWMA     = 53
	offWeight   = 61
	offMin      = 69
	offMax      = 77
	offLast     = 85
	offSuccess  = 93
	offFailure  = 101
	offK        = 109
	offSamples  = 113
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// seal rewrites b's checksum to match its contents.
func seal(b []byte) []byte {
	n := len(b) - 4
	binary.LittleEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

// edit returns a sealed copy of b after f changed it.
func edit(b []byte, f func(b []byte)) []byte {
	c := slices.Clone(b)
	f(c)
	return seal(c)
}

func put64(off int, v uint64) func([]byte) {
	return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) }
}

func putF(off int, v float64) func([]byte) { return put64(off, math.Float64bits(v)) }

func put32(off int, v uint32) func([]byte) {
	return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
}

func encode(t testing.TB, tr *latency.Tracker) []byte {
	t.Helper()
	b, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// baseState has three samples (1 s, 3 s, 2 s) in a window of 4 and one
// failure ("refused").
func baseState(t testing.TB) []byte {
	tr := newTracker(t, latency.Config{Window: 4, HalfLife: time.Minute})
	observe(t, tr, t0, time.Second)
	observe(t, tr, t0.Add(10*time.Second), 3*time.Second)
	fail(t, tr, t0.Add(20*time.Second), "refused")
	observe(t, tr, t0.Add(30*time.Second), 2*time.Second)
	return encode(t, tr)
}

func emptyState(t testing.TB) []byte {
	return encode(t, newTracker(t, latency.Config{}))
}

type stateCase struct {
	name  string
	state []byte
	want  latency.Reason // "" : decodes
}

// stateCases are valid states and one or more of each malformation
// class. They are also the fuzz seed corpus (TestSeedCorpus).
func stateCases(t testing.TB) []stateCase {
	base := baseState(t)
	empty := emptyState(t)
	n := len(base)
	// The base window holds 1 s, 3 s, 2 s: samples at offSamples+0, +8, +16.
	errOff := offSamples + 3*8
	return []stateCase{
		{"valid-base", base, ""},
		{"valid-empty", empty, ""},
		{"valid-failures-only", func() []byte {
			tr := newTracker(t, latency.Config{Window: 1})
			fail(t, tr, t0, "dial tcp 127.0.0.1:9: connection refused")
			return encode(t, tr)
		}(), ""},

		{"missing-nil", nil, latency.ReasonMissing},
		{"missing-empty", []byte{}, latency.ReasonMissing},

		{"truncated-in-magic", base[:3], latency.ReasonTruncated},
		{"truncated-after-magic", base[:4], latency.ReasonTruncated},
		{"truncated-in-length", base[:7], latency.ReasonTruncated},
		{"truncated-in-body", base[:n/2], latency.ReasonTruncated},
		{"truncated-in-checksum", base[:n-1], latency.ReasonTruncated},

		{"malformed-magic", []byte("hello, world"), latency.ReasonMalformed},
		{"malformed-json", []byte(`{"average":0.1,"count":3}`), latency.ReasonMalformed},
		{"malformed-trailing", append(slices.Clone(base), 0), latency.ReasonMalformed},
		{"malformed-huge-length", edit(base, put32(offBodyLen, math.MaxUint32)), latency.ReasonMalformed},
		{"malformed-short-body", func() []byte {
			c := append(slices.Clone(base[:offSize]), make([]byte, 10+4)...)
			binary.LittleEndian.PutUint32(c[offBodyLen:], 10)
			return seal(c)
		}(), latency.ReasonMalformed},
		{"malformed-samples-past-body", edit(base, put32(offK, 1000)), latency.ReasonMalformed},
		{"malformed-error-length", edit(base, func(b []byte) { binary.LittleEndian.PutUint16(b[errOff:], 3) }), latency.ReasonMalformed},

		{"version-2", edit(base, func(b []byte) { b[offVersion] = 2 }), latency.ReasonVersion},
		{"version-0-unsealed", func() []byte { c := slices.Clone(base); c[offVersion] = 0; return c }(), latency.ReasonVersion},

		{"checksum-body-bit", func() []byte { c := slices.Clone(base); c[offMean] ^= 1; return c }(), latency.ReasonChecksum},
		{"checksum-crc-bit", func() []byte { c := slices.Clone(base); c[n-1] ^= 0x80; return c }(), latency.ReasonChecksum},

		{"inconsistent-count-0-with-mean", edit(empty, putF(offMean, 0.5)), latency.ReasonInconsistent},
		{"inconsistent-count-0-with-samples", edit(base, put64(offCount, 0)), latency.ReasonInconsistent},
		{"inconsistent-window-over-size", edit(base, put32(offSize, 2)), latency.ReasonInconsistent},
		{"inconsistent-window-size-0", edit(empty, put32(offSize, 0)), latency.ReasonInconsistent},
		{"inconsistent-window-size-huge", edit(empty, put32(offSize, latency.MaxWindow+1)), latency.ReasonInconsistent},
		{"inconsistent-count-below-window", edit(base, put64(offCount, 2)), latency.ReasonInconsistent},
		{"inconsistent-nan-mean", edit(base, putF(offMean, math.NaN())), latency.ReasonInconsistent},
		{"inconsistent-inf-ewma", edit(base, putF(offEWMA, math.Inf(1))), latency.ReasonInconsistent},
		{"inconsistent-negative-zero-mean", edit(empty, putF(offMean, math.Copysign(0, -1))), latency.ReasonInconsistent},
		{"inconsistent-mean-above-max", edit(base, putF(offMean, 3.5)), latency.ReasonInconsistent},
		{"inconsistent-weight-0", edit(base, putF(offWeight, 0)), latency.ReasonInconsistent},
		{"inconsistent-weight-nan", edit(base, putF(offWeight, math.NaN())), latency.ReasonInconsistent},
		{"inconsistent-min-above-max", edit(base, put64(offMin, uint64(5*time.Second))), latency.ReasonInconsistent},
		{"inconsistent-negative-min", edit(base, put64(offMin, uint64(math.MaxUint64))), latency.ReasonInconsistent},
		{"inconsistent-last-not-newest", edit(base, put64(offLast, uint64(time.Second))), latency.ReasonInconsistent},
		{"inconsistent-sample-above-max", edit(base, put64(offSamples+8, uint64(9*time.Second))), latency.ReasonInconsistent},
		{"inconsistent-consecutive-over-failures", edit(base, put64(offConsec, 2)), latency.ReasonInconsistent},
		{"inconsistent-failures-without-time", edit(base, put64(offFailure, 0)), latency.ReasonInconsistent},
		{"inconsistent-error-without-failures", edit(base, put64(offFailures, 0)), latency.ReasonInconsistent},
		{"inconsistent-success-without-time", edit(base, put64(offSuccess, 0)), latency.ReasonInconsistent},
		{"inconsistent-half-life-0", edit(base, put64(offHalfLife, 0)), latency.ReasonInconsistent},
		{"inconsistent-error-not-utf8", edit(base, func(b []byte) { b[errOff+2] = 0xff }), latency.ReasonInconsistent},
	}
}

// TestDecodeReasons: each malformation class is refused with its reason,
// as a *DecodeError, and Restore falls back to a fresh tracker with it.
func TestDecodeReasons(t *testing.T) {
	for _, c := range stateCases(t) {
		t.Run(c.name, func(t *testing.T) {
			tr, err := latency.Decode(c.state)
			if c.want == "" {
				if err != nil {
					t.Fatalf("valid state refused: %v", err)
				}
				if got := encode(t, tr); !bytes.Equal(got, c.state) {
					t.Errorf("re-encoded differently")
				}
				return
			}
			var de *latency.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode: %v, want a *DecodeError", err)
			}
			if de.Reason != c.want {
				t.Fatalf("reason %q (%v), want %q", de.Reason, err, c.want)
			}
			if strings.Contains(err.Error(), "refused") {
				t.Errorf("the error %q repeats the state's last error", err)
			}
			fresh, reason, err := latency.Restore(c.state, latency.Config{Window: 7})
			if err != nil || reason != c.want {
				t.Fatalf("Restore: reason %q, err %v; want %q", reason, err, c.want)
			}
			if s := fresh.Snapshot(); s.Count != 0 || s.Failures != 0 || s.WindowSize != 7 {
				t.Errorf("Restore did not start afresh: %+v", s)
			}
			// An unusable state leaves an existing tracker alone.
			keep := newTracker(t, latency.Config{})
			observe(t, keep, t0, time.Second)
			if err := keep.UnmarshalBinary(c.state); err == nil || keep.Snapshot().Count != 1 {
				t.Errorf("UnmarshalBinary: %v, count %d", err, keep.Snapshot().Count)
			}
		})
	}
}

// TestRoundTrip is a property test: for random configurations and random
// sequences of samples and failures (times out of order and repeated
// included), the decoded tracker re-encodes to the same bytes, has the
// same snapshot, and goes on exactly as the original does.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	for trial := range 300 {
		cfg := latency.Config{Window: 1 + rng.IntN(12), HalfLife: time.Duration(1+rng.Int64N(int64(time.Minute))) * time.Nanosecond * 1000}
		a := newTracker(t, cfg)
		at := t0
		step := func(trs ...*latency.Tracker) {
			switch r := rng.IntN(10); {
			case r < 2:
				at = at.Add(-time.Duration(rng.Int64N(int64(time.Second))))
			case r < 4:
			default:
				at = at.Add(time.Duration(rng.Int64N(int64(time.Minute))))
			}
			fails := rng.IntN(4) == 0
			d := time.Duration(rng.Int64N(int64(10 * time.Second)))
			reason := fmt.Sprintf("error %d", rng.IntN(1000))
			for _, tr := range trs {
				if fails {
					fail(t, tr, at, reason)
				} else {
					observe(t, tr, at, d)
				}
			}
		}
		for range rng.IntN(40) {
			step(a)
		}
		state := encode(t, a)
		b, err := latency.Decode(state)
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if got := encode(t, b); !bytes.Equal(got, state) {
			t.Fatalf("trial %d: re-encoded differently", trial)
		}
		if !equalJSON(a.Snapshot(), b.Snapshot()) {
			t.Fatalf("trial %d: snapshots differ:\n%+v\n%+v", trial, a.Snapshot(), b.Snapshot())
		}
		for range 10 {
			step(a, b)
		}
		if !bytes.Equal(encode(t, a), encode(t, b)) {
			t.Fatalf("trial %d: the decoded tracker went on differently", trial)
		}
	}
}

// TestRestoreReconfigures: a usable state takes the configured window
// (keeping its newest samples) and half-life; statistics carry over.
func TestRestoreReconfigures(t *testing.T) {
	base := baseState(t) // window 4: 1 s, 3 s, 2 s
	small, reason, err := latency.Restore(base, latency.Config{Window: 2, HalfLife: time.Second})
	if err != nil || reason != "" {
		t.Fatalf("Restore: %q %v", reason, err)
	}
	s := small.Snapshot()
	if s.WindowSize != 2 || !equalJSON(s.SamplesSeconds, []float64{3, 2}) || s.HalfLifeSeconds != 1 ||
		s.Count != 3 || s.Failures != 1 || s.MinSeconds != 1 || s.MaxSeconds != 3 || s.MeanSeconds != 2 {
		t.Errorf("smaller window: %+v", s)
	}
	observe(t, small, t0.Add(time.Hour), 4*time.Second)
	if s := small.Snapshot(); !equalJSON(s.SamplesSeconds, []float64{2, 4}) || s.Count != 4 {
		t.Errorf("after a sample: %+v", s)
	}
	if _, err := latency.Decode(encode(t, small)); err != nil {
		t.Errorf("a reconfigured tracker's state: %v", err)
	}
	large, _, _ := latency.Restore(base, latency.Config{Window: 10})
	if s := large.Snapshot(); s.WindowSize != 10 || !equalJSON(s.SamplesSeconds, []float64{1, 3, 2}) {
		t.Errorf("larger window: %+v", s)
	}
	if _, _, err := latency.Restore(base, latency.Config{Window: -1}); err == nil {
		t.Error("Restore accepted an invalid Config")
	}
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzDecode from stateCases")

const corpusDir = "testdata/fuzz/FuzzDecode"

// TestSeedCorpus keeps the fuzz seed corpus equal to stateCases: one file
// per case, named by it, so `go test` runs FuzzDecode over every valid
// state and every malformation. -update-corpus rewrites it.
func TestSeedCorpus(t *testing.T) {
	cases := stateCases(t)
	if *updateCorpus {
		if err := os.RemoveAll(corpusDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(c.state)) + ")\n"
			if err := os.WriteFile(filepath.Join(corpusDir, c.name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(cases) {
		t.Errorf("%d corpus files for %d cases; run go test ./pkg/latency -run TestSeedCorpus -update-corpus", len(files), len(cases))
	}
	for _, c := range cases {
		b, err := os.ReadFile(filepath.Join(corpusDir, c.name))
		if err != nil {
			t.Errorf("%v; run go test ./pkg/latency -run TestSeedCorpus -update-corpus", err)
			continue
		}
		lit := strings.TrimSuffix(strings.TrimPrefix(string(b), "go test fuzz v1\n[]byte("), ")\n")
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if _, err := latency.Decode([]byte(s)); (c.want == "") != (err == nil) {
			t.Errorf("%s: the corpus file decodes with %v; want reason %q", c.name, err, c.want)
		}
	}
}

// FuzzDecode: no input panics; a refused one is a *DecodeError with one
// of the documented reasons; an accepted one re-encodes to the same
// bytes, has a finite, ordered snapshot, and stays decodable after more
// samples and failures. Each input is also tried with its checksum made
// valid, so the fuzzer reaches the field checks behind the CRC.
func FuzzDecode(f *testing.F) {
	f.Add(baseState(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, data)
		if len(data) >= 4 {
			fuzzDecode(t, seal(slices.Clone(data)))
		}
	})
}

func fuzzDecode(t *testing.T, data []byte) {
	tr, err := latency.Decode(data)
	if err != nil {
		var de *latency.DecodeError
		if !errors.As(err, &de) || !slices.Contains(latency.Reasons, de.Reason) {
			t.Fatalf("error %v is not a *DecodeError with a documented reason", err)
		}
		return
	}
	if got := encode(t, tr); !bytes.Equal(got, data) {
		t.Fatalf("accepted state re-encodes differently")
	}
	checkSnapshot(t, tr.Snapshot())
	last := tr.Snapshot().LastSuccess
	if last.IsZero() {
		last = t0
	}
	observe(t, tr, last.Add(time.Second), time.Millisecond)
	fail(t, tr, last, "timeout")
	observe(t, tr, last, 0)
	checkSnapshot(t, tr.Snapshot())
	if _, err := latency.Decode(encode(t, tr)); err != nil {
		t.Fatalf("an accepted state broke after Observe and Fail: %v", err)
	}
}

func checkSnapshot(t *testing.T, s latency.Snapshot) {
	t.Helper()
	for _, v := range append([]float64{s.MeanSeconds, s.EWMASeconds, s.MinSeconds, s.MaxSeconds, s.LastSeconds,
		s.P50Seconds, s.P90Seconds, s.P99Seconds, s.HalfLifeSeconds}, s.SamplesSeconds...) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			t.Fatalf("a statistic is %g: %+v", v, s)
		}
	}
	if s.Count > 0 && !(s.MinSeconds <= s.P50Seconds && s.P50Seconds <= s.P90Seconds && s.P90Seconds <= s.P99Seconds &&
		s.P99Seconds <= s.MaxSeconds && s.MinSeconds <= s.MeanSeconds && s.MeanSeconds <= s.MaxSeconds &&
		s.MinSeconds <= s.EWMASeconds && s.EWMASeconds <= s.MaxSeconds) {
		t.Fatalf("statistics out of order: %+v", s)
	}
	if s.Successes != s.Count || s.ConsecutiveFailures > s.Failures || len(s.SamplesSeconds) > s.WindowSize ||
		uint64(len(s.SamplesSeconds)) > s.Count || (s.Count > 0) != (len(s.SamplesSeconds) > 0) {
		t.Fatalf("counts inconsistent: %+v", s)
	}
}
