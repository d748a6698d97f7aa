package streams_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

func TestTargetToken(t *testing.T) {
	for _, tc := range []struct {
		name, token string
	}{
		{"vol-1", "vol-1"},
		{"PureVolume01", "PureVolume01"},
		{"vol_1", "vol_5f1"},
		{"svm1/vol.projects", "svm1_2fvol_2eprojects"},
		{"a b", "a_20b"},
		{"*", "_2a"},
		{">", "_3e"},
		{"日本", "_e6_97_a5_e6_9c_ac"},
		{strings.Repeat("x", 64), strings.Repeat("x", 64)},
	} {
		tok, err := streams.TargetToken(tc.name)
		if err != nil || tok != tc.token {
			t.Errorf("TargetToken(%q) = %q, %v; want %q", tc.name, tok, err, tc.token)
			continue
		}
		if err := streams.CheckToken("token", tok); err != nil {
			t.Errorf("token %q of %q: %v", tok, tc.name, err)
		}
		back, err := streams.ParseTargetToken(tok)
		if err != nil || back != tc.name {
			t.Errorf("ParseTargetToken(%q) = %q, %v; want %q", tok, back, err, tc.name)
		}
	}
}

func TestTargetTokenRejects(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("x", 65), strings.Repeat("/", 22)} {
		if tok, err := streams.TargetToken(name); !errors.Is(err, streams.ErrTargetName) {
			t.Errorf("TargetToken(%q) = %q, %v; want ErrTargetName", name, tok, err)
		}
	}
	// Tokens TargetToken never writes: each name has exactly one token.
	for _, tok := range []string{"a_", "a_2", "_2F", "_61", "_zz", "a.b", ""} {
		if name, err := streams.ParseTargetToken(tok); err == nil {
			t.Errorf("ParseTargetToken(%q) = %q, want an error", tok, name)
		}
	}
}

func FuzzTargetToken(f *testing.F) {
	for _, s := range []string{"vol-1", "a/b", "_", "日本", "a_5fb", "_2f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := streams.TargetToken(s)
		if err == nil {
			if err := streams.CheckToken("token", tok); err != nil {
				t.Fatalf("token %q of %q: %v", tok, s, err)
			}
			back, err := streams.ParseTargetToken(tok)
			if err != nil || back != s {
				t.Fatalf("round trip of %q through %q gives %q, %v", s, tok, back, err)
			}
		}
		// Any token that parses is the token of what it parses to.
		if name, err := streams.ParseTargetToken(s); err == nil {
			if tok, err := streams.TargetToken(name); err != nil || tok != s {
				t.Fatalf("%q parses to %q whose token is %q, %v", s, name, tok, err)
			}
		}
	})
}

func TestObservationSubjects(t *testing.T) {
	s := streams.Subjects{}
	subj, err := s.Observation(streams.ObsKindVolume, "svm1/vol_a")
	if err != nil || subj != "jetmetrics.obs.volume.svm1_2fvol_5fa" {
		t.Fatalf("Observation = %q, %v", subj, err)
	}
	kind, target, err := s.ParseObservation(subj)
	if err != nil || kind != "volume" || target != "svm1/vol_a" {
		t.Errorf("ParseObservation(%q) = %q, %q, %v", subj, kind, target, err)
	}
	for _, bad := range []string{"jetmetrics.obs.volume", "jetmetrics.obs.volume.a.b", "jetmetrics.delta.volume.a", "jetmetrics.obs.volume._zz"} {
		if _, _, err := s.ParseObservation(bad); err == nil {
			t.Errorf("ParseObservation(%q) accepted", bad)
		}
	}
	if _, err := s.Observation("vol.ume", "a"); err == nil {
		t.Error("a kind with a dot accepted")
	}
	if got := s.ObservationKind(streams.ObsKindProbe); got != "jetmetrics.obs.probe.*" {
		t.Errorf("ObservationKind = %q", got)
	}
}

func validObservation() streams.Observation {
	return streams.Observation{
		Volume: "svm1/vol_a",
		Metric: streams.VolumeMetric{
			IOPSRead: 1200.5, IOPSWrite: 300, ThroughputBytesRead: 52428800, ThroughputBytesWrite: 1048576,
			LatencyUsecRead: 250, LatencyUsecWrite: 900.25,
		},
		ObservedAt:    time.Date(2026, 12, 7, 7, 0, 10, 123456789, time.UTC),
		Duration:      42 * time.Millisecond,
		Status:        streams.ObsStatusOK,
		Node:          "n1",
		LeaseRevision: 77,
	}
}

func TestObservationRoundTrip(t *testing.T) {
	o := validObservation()
	b, err := streams.EncodeObservation(o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := streams.DecodeObservation(b)
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	o.Version = streams.ObservationVersion
	if got != o {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, o)
	}
	// The wire names are part of the contract (docs/wire-format.md).
	for _, field := range []string{`"v":1`, `"volume":"svm1/vol_a"`, `"iops_read":1200.5`, `"io_bytes_write":1048576`,
		`"io_usec_write":900.25`, `"observed_at":"2026-12-07T07:00:10.123456789Z"`, `"duration_ns":42000000`,
		`"status":"ok"`, `"node":"n1"`, `"lease_revision":77`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("%s lacks %s", b, field)
		}
	}
}

func TestObservationRejects(t *testing.T) {
	enc := func(mod func(*streams.Observation)) streams.Observation {
		o := validObservation()
		mod(&o)
		return o
	}
	for name, o := range map[string]streams.Observation{
		"no time":          enc(func(o *streams.Observation) { o.ObservedAt = time.Time{} }),
		"bad status":       enc(func(o *streams.Observation) { o.Status = "meh" }),
		"ok with error":    enc(func(o *streams.Observation) { o.Error = "x" }),
		"error without":    enc(func(o *streams.Observation) { o.Status = streams.ObsStatusError }),
		"nan":              enc(func(o *streams.Observation) { o.Metric.IOPSRead = math.NaN() }),
		"inf":              enc(func(o *streams.Observation) { o.Metric.LatencyUsecWrite = math.Inf(1) }),
		"negative":         enc(func(o *streams.Observation) { o.Metric.ThroughputBytesRead = -1 }),
		"negative time":    enc(func(o *streams.Observation) { o.Duration = -1 }),
		"no volume":        enc(func(o *streams.Observation) { o.Volume = "" }),
		"bad node":         enc(func(o *streams.Observation) { o.Node = "a.b" }),
		"version from far": enc(func(o *streams.Observation) { o.Version = 2 }),
	} {
		if b, err := streams.EncodeObservation(o); !errors.Is(err, streams.ErrObservation) {
			t.Errorf("%s: encoded %s, %v", name, b, err)
		}
	}
	good, err := streams.EncodeObservation(validObservation())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"empty":         "",
		"not json":      "{",
		"no version":    `{"volume":"a"}`,
		"version 2":     strings.Replace(string(good), `"v":1`, `"v":2`, 1),
		"unknown field": strings.Replace(string(good), `"v":1`, `"v":1,"extra":true`, 1),
		"trailing":      string(good) + `{}`,
		"wrong type":    strings.Replace(string(good), `"lease_revision":77`, `"lease_revision":"77"`, 1),
		"oversize":      `{"v":1,"error":"` + strings.Repeat("x", streams.MaxObservationBytes) + `"}`,
	} {
		if o, err := streams.DecodeObservation([]byte(data)); !errors.Is(err, streams.ErrObservation) {
			t.Errorf("%s: decoded %+v, %v", name, o, err)
		}
	}
}

func TestObservationNewer(t *testing.T) {
	base := validObservation()
	later := base
	later.ObservedAt = base.ObservedAt.Add(time.Second)
	later.LeaseRevision = 1 // a later poll wins whatever its revision
	fenced := base
	fenced.LeaseRevision = base.LeaseRevision + 5
	for _, tc := range []struct {
		name     string
		new, old streams.Observation
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

func FuzzDecodeObservation(f *testing.F) {
	good, err := streams.EncodeObservation(validObservation())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := streams.DecodeObservation(data)
		if err != nil {
			return
		}
		// Whatever decodes encodes again, and the same.
		b, err := streams.EncodeObservation(o)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", o, err)
		}
		o2, err := streams.DecodeObservation(b)
		if err != nil || o2 != o || !utf8.Valid(b) {
			t.Fatalf("re-decode of %s: %+v, %v", b, o2, err)
		}
	})
}

// The stream keeps HistoryDepth results per target and provisioning twice
// (as every node does) is harmless.
func TestProvisionObs(t *testing.T) {
	s := harness.NATS(t)
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	cfg := streams.ObsConfig{HistoryDepth: 3, MemoryStorage: true}
	for range 2 {
		if err := streams.ProvisionObs(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	subj := streams.Subjects{}
	for i := range 5 {
		for _, v := range []string{"a", "b/c"} {
			o := validObservation()
			o.Volume = v
			o.ObservedAt = o.ObservedAt.Add(time.Duration(i) * time.Second)
			b, err := streams.EncodeObservation(o)
			if err != nil {
				t.Fatal(err)
			}
			s, err := subj.Observation(streams.ObsKindVolume, v)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, s, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, err := js.Stream(ctx, "JETMETRICS_OBS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj.ObservationAll()))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 6 || info.State.NumSubjects != 2 || info.Config.MaxMsgsPerSubject != 3 {
		t.Errorf("stream holds %d messages on %d subjects (max %d per subject), want 3 on each of 2",
			info.State.Msgs, info.State.NumSubjects, info.Config.MaxMsgsPerSubject)
	}
	m, err := st.GetLastMsgForSubject(ctx, "jetmetrics.obs.volume.b_2fc")
	if err != nil {
		t.Fatal(err)
	}
	o, err := streams.DecodeObservation(m.Data)
	if err != nil || o.Volume != "b/c" || o.ObservedAt.Sub(validObservation().ObservedAt) != 4*time.Second {
		t.Errorf("newest of b/c: %+v, %v", o, err)
	}
	if err := streams.ProvisionObs(ctx, js, streams.ObsConfig{LeaseTTL: time.Millisecond}); err == nil {
		t.Error("a lease ttl of 1ms accepted")
	}
}
