package streams_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jetmetrics/jetmetrics/streams"
)

func validProbeResult() streams.ProbeResult {
	return streams.ProbeResult{
		Service:       "payments/api",
		Success:       true,
		Latency:       12500 * time.Microsecond,
		ObservedAt:    time.Date(2026, 12, 7, 7, 0, 10, 123456789, time.UTC),
		Duration:      13 * time.Millisecond,
		Node:          "n1",
		LeaseRevision: 77,
	}
}

func failedProbeResult() streams.ProbeResult {
	r := validProbeResult()
	r.Success, r.Latency, r.Reason, r.Error = false, 0, "tls", "http GET: TLS: unknown authority"
	return r
}

func TestProbeResultRoundTrip(t *testing.T) {
	for _, r := range []streams.ProbeResult{validProbeResult(), failedProbeResult()} {
		b, err := streams.EncodeProbeResult(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := streams.DecodeProbeResult(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		r.Version = streams.ProbeResultVersion
		if got != r {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
	b, _ := streams.EncodeProbeResult(validProbeResult())
	// The wire names are part of the contract (docs/wire-format.md).
	for _, field := range []string{`"v":1`, `"service":"payments/api"`, `"success":true`, `"latency_ns":12500000`,
		`"observed_at":"2026-12-07T07:00:10.123456789Z"`, `"duration_ns":13000000`, `"node":"n1"`, `"lease_revision":77`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("%s lacks %s", b, field)
		}
	}
	if strings.Contains(string(b), "reason") || strings.Contains(string(b), "error") {
		t.Errorf("a success carries a reason or an error: %s", b)
	}
	b, _ = streams.EncodeProbeResult(failedProbeResult())
	for _, field := range []string{`"success":false`, `"latency_ns":0`, `"reason":"tls"`, `"error":"http GET: TLS: unknown authority"`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("%s lacks %s", b, field)
		}
	}
	// A time in another zone decodes as the same instant in UTC.
	r, err := streams.DecodeProbeResult([]byte(strings.Replace(string(b), `"2026-12-07T07:00:10.123456789Z"`, `"2026-12-07T08:00:10.123456789+01:00"`, 1)))
	if err != nil || r.ObservedAt != validProbeResult().ObservedAt {
		t.Errorf("zoned time: %v, %v", r.ObservedAt, err)
	}
}

func TestProbeResultRejects(t *testing.T) {
	mod := func(base streams.ProbeResult, f func(*streams.ProbeResult)) streams.ProbeResult {
		f(&base)
		return base
	}
	ok, bad := validProbeResult(), failedProbeResult()
	for name, r := range map[string]streams.ProbeResult{
		"no time":               mod(ok, func(r *streams.ProbeResult) { r.ObservedAt = time.Time{} }),
		"negative latency":      mod(ok, func(r *streams.ProbeResult) { r.Latency = -1 }),
		"huge latency":          mod(ok, func(r *streams.ProbeResult) { r.Latency = streams.MaxProbeDuration + 1 }),
		"negative duration":     mod(ok, func(r *streams.ProbeResult) { r.Duration = -1 }),
		"success with reason":   mod(ok, func(r *streams.ProbeResult) { r.Reason = "timeout" }),
		"success with error":    mod(ok, func(r *streams.ProbeResult) { r.Error = "x" }),
		"failure with latency":  mod(bad, func(r *streams.ProbeResult) { r.Latency = time.Millisecond }),
		"failure without error": mod(bad, func(r *streams.ProbeResult) { r.Error = "" }),
		"failure no reason":     mod(bad, func(r *streams.ProbeResult) { r.Reason = "" }),
		"reason with space":     mod(bad, func(r *streams.ProbeResult) { r.Reason = "no route" }),
		"reason upper":          mod(bad, func(r *streams.ProbeResult) { r.Reason = "TLS" }),
		"reason long":           mod(bad, func(r *streams.ProbeResult) { r.Reason = strings.Repeat("a", streams.MaxProbeReasonBytes+1) }),
		"error long":            mod(bad, func(r *streams.ProbeResult) { r.Error = strings.Repeat("x", streams.MaxProbeErrorBytes+1) }),
		"error not utf8":        mod(bad, func(r *streams.ProbeResult) { r.Error = "\xff" }),
		"no service":            mod(ok, func(r *streams.ProbeResult) { r.Service = "" }),
		"service too long":      mod(ok, func(r *streams.ProbeResult) { r.Service = strings.Repeat("/", 200) }),
		"bad node":              mod(ok, func(r *streams.ProbeResult) { r.Node = "a.b" }),
		"version from far":      mod(ok, func(r *streams.ProbeResult) { r.Version = 2 }),
	} {
		if b, err := streams.EncodeProbeResult(r); !errors.Is(err, streams.ErrProbeResult) {
			t.Errorf("%s: encoded %s, %v", name, b, err)
		}
	}
	good, err := streams.EncodeProbeResult(validProbeResult())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"empty":            "",
		"not json":         "{",
		"no version":       `{"service":"a"}`,
		"version 2":        strings.Replace(string(good), `"v":1`, `"v":2`, 1),
		"unknown field":    strings.Replace(string(good), `"v":1`, `"v":1,"extra":true`, 1),
		"trailing":         string(good) + `{}`,
		"fraction":         strings.Replace(string(good), `"latency_ns":12500000`, `"latency_ns":1.5`, 1),
		"nan":              strings.Replace(string(good), `"latency_ns":12500000`, `"latency_ns":NaN`, 1),
		"wrong type":       strings.Replace(string(good), `"lease_revision":77`, `"lease_revision":"77"`, 1),
		"negative":         strings.Replace(string(good), `"lease_revision":77`, `"lease_revision":-1`, 1),
		"oversize":         `{"v":1,"error":"` + strings.Repeat("x", streams.MaxProbeResultBytes) + `"}`,
		"volume not probe": `{"v":1,"volume":"a","status":"ok"}`,
	} {
		if r, err := streams.DecodeProbeResult([]byte(data)); !errors.Is(err, streams.ErrProbeResult) {
			t.Errorf("%s: decoded %+v, %v", name, r, err)
		}
	}
}

func TestProbeResultNewer(t *testing.T) {
	base := validProbeResult()
	later := base
	later.ObservedAt = base.ObservedAt.Add(time.Second)
	later.LeaseRevision = 1
	fenced := base
	fenced.LeaseRevision = base.LeaseRevision + 5
	for _, tc := range []struct {
		name     string
		new, old streams.ProbeResult
		want     bool
	}{
		{"later", later, base, true},
		{"earlier", base, later, false},
		{"same time, higher revision", fenced, base, true},
		{"same time, lower revision", base, fenced, false},
		{"replay", base, base, false},
	} {
		if got := tc.new.Newer(&tc.old); got != tc.want {
			t.Errorf("%s: Newer = %v", tc.name, got)
		}
	}
}

func TestTruncateProbeError(t *testing.T) {
	long := strings.Repeat("é", streams.MaxProbeErrorBytes) // 2 bytes each
	got := streams.TruncateProbeError(long)
	if len(got) > streams.MaxProbeErrorBytes || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("%d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if got := streams.TruncateProbeError("bad \xff byte"); got != "bad \uFFFD byte" {
		t.Errorf("%q", got)
	}
	if got := streams.TruncateProbeError("short"); got != "short" {
		t.Errorf("%q", got)
	}
}

func FuzzDecodeProbeResult(f *testing.F) {
	for _, r := range []streams.ProbeResult{validProbeResult(), failedProbeResult()} {
		b, err := streams.EncodeProbeResult(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := streams.DecodeProbeResult(data)
		if err != nil {
			return
		}
		b, err := streams.EncodeProbeResult(r)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", r, err)
		}
		r2, err := streams.DecodeProbeResult(b)
		if err != nil || r2 != r || !utf8.Valid(b) || len(b) > streams.MaxProbeResultBytes {
			t.Fatalf("re-decode of %s: %+v, %v", b, r2, err)
		}
	})
}
