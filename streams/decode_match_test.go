package streams_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// matchLimits are the limits the decoders are compared under: the defaults,
// and tight ones so that inputs of any size reach every limit.
var matchLimits = []series.Limits{{}, {MaxLabels: 2, MaxLabelValueBytes: 4, MaxNameBytes: 6}}

// FuzzDecodeMatchesReference checks that Decode decides every input as the
// encoding/json reference does: the same rejection, or the same Decoded
// down to every entry. It also checks that nothing Decode returns points
// into the message, which the caller may reuse or which would stay alive.
func FuzzDecodeMatchesReference(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, limits := range matchLimits {
			checkMatchesReference(t, data, limits)
		}
	})
}

func checkMatchesReference(t *testing.T, data []byte, limits series.Limits) {
	t.Helper()
	want, wantErr := streams.DecodeReference(data, "n1", limits)

	in := bytes.Clone(data)
	got, gotErr := streams.Decode(in, "n1", limits)
	for i := range in {
		in[i] = '#'
	}
	if diff := diffDecoded(got, gotErr, want, wantErr); diff != "" {
		t.Fatalf("Decode differs from the reference with limits %+v: %s\ninput: %q", limits, diff, data)
	}

	msg := string(data)
	scanned, decided, err := streams.DecodeScanned(msg, "n1", limits)
	if !decided {
		return
	}
	if diff := diffDecoded(scanned, err, want, wantErr); diff != "" {
		t.Fatalf("scanner differs from the reference with limits %+v: %s\ninput: %q", limits, diff, data)
	}
	if s, ok := aliasing(scanned, msg); ok {
		t.Fatalf("decoded string %q points into the message %q", s, data)
	}
}

// diffDecoded describes how two outcomes of decoding differ, or returns "".
// Floats compare bitwise, except that two NaNs are equal.
func diffDecoded(got *streams.Decoded, gotErr error, want *streams.Decoded, wantErr error) string {
	if gotErr != nil || wantErr != nil {
		if gotErr == nil || wantErr == nil {
			return fmt.Sprintf("error %v, want %v", gotErr, wantErr)
		}
		return diffReject("error", rejectOf(gotErr), rejectOf(wantErr))
	}
	if got == nil || want == nil {
		return fmt.Sprintf("decoded %v, want %v", got, want)
	}
	if got.Node != want.Node || got.Producer != want.Producer || got.Seq != want.Seq || got.Time != want.Time {
		return fmt.Sprintf("envelope %q %q %d %d, want %q %q %d %d",
			got.Node, got.Producer, got.Seq, got.Time, want.Node, want.Producer, want.Seq, want.Time)
	}
	if (got.Entries == nil) != (want.Entries == nil) || len(got.Entries) != len(want.Entries) {
		return fmt.Sprintf("entries %#v, want %#v", got.Entries, want.Entries)
	}
	for i := range got.Entries {
		if d := diffEntry(&got.Entries[i], &want.Entries[i]); d != "" {
			return fmt.Sprintf("entry %d: %s", i, d)
		}
	}
	return ""
}

func diffEntry(g, w *streams.Entry) string {
	switch {
	case g.Name != w.Name || g.Type != w.Type || g.Help != w.Help || g.Key != w.Key:
		return fmt.Sprintf("name %q type %q help %q key %q, want %q %q %q %q", g.Name, g.Type, g.Help, g.Key, w.Name, w.Type, w.Help, w.Key)
	case (g.Labels == nil) != (w.Labels == nil) || !maps.Equal(g.Labels, w.Labels):
		return fmt.Sprintf("labels %#v, want %#v", g.Labels, w.Labels)
	case !sameFloat(g.Value, w.Value) || !sameFloat(g.Sum, w.Sum):
		return fmt.Sprintf("value %v sum %v, want %v %v", g.Value, g.Sum, w.Value, w.Sum)
	case (g.Buckets == nil) != (w.Buckets == nil) || !slices.EqualFunc(g.Buckets, w.Buckets, sameFloat):
		return fmt.Sprintf("buckets %#v, want %#v", g.Buckets, w.Buckets)
	case (g.Counts == nil) != (w.Counts == nil) || !slices.Equal(g.Counts, w.Counts):
		return fmt.Sprintf("counts %#v, want %#v", g.Counts, w.Counts)
	}
	return diffReject("reject", g.Reject, w.Reject)
}

func diffReject(what string, g, w *streams.RejectError) string {
	switch {
	case g == nil && w == nil:
		return ""
	case g == nil || w == nil:
		return fmt.Sprintf("%s %v, want %v", what, g, w)
	case g.Reason != w.Reason || g.Error() != w.Error():
		return fmt.Sprintf("%s %q, want %q", what, g.Error(), w.Error())
	}
	return ""
}

func rejectOf(err error) *streams.RejectError {
	var rej *streams.RejectError
	if !errors.As(err, &rej) {
		return &streams.RejectError{Reason: "not a RejectError", Err: err}
	}
	return rej
}

func sameFloat(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || (math.IsNaN(a) && math.IsNaN(b))
}

// aliasing returns a string of d whose bytes lie inside msg.
func aliasing(d *streams.Decoded, msg string) (string, bool) {
	if d == nil || msg == "" {
		return "", false
	}
	lo := uintptr(unsafe.Pointer(unsafe.StringData(msg)))
	hi := lo + uintptr(len(msg))
	inside := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return s != "" && p >= lo && p < hi
	}
	all := []string{d.Node, d.Producer}
	for _, e := range d.Entries {
		all = append(all, e.Name, string(e.Type), e.Help, e.Key)
	}
	for _, s := range all {
		if inside(s) {
			return s, true
		}
	}
	return "", false
}

// batch wraps entries in a valid envelope for node n1.
func batch(entries ...string) string {
	return `{"v":1,"node":"n1","producer":"p","seq":1,"metrics":[` + strings.Join(entries, ",") + `]}`
}

// TestDecodeScannerDecides lists messages the scanner must decide itself,
// so that the speed of Decode does not quietly rest on the reference.
func TestDecodeScannerDecides(t *testing.T) {
	for _, msg := range []string{
		`{}`,
		`{"v":2}`,
		`{"v":-0,"node":"n1","producer":"p","seq":1}`,
		`{"v":1,"node":"n2","producer":"p","seq":1}`,
		`{"v":1,"node":"n1","producer":"p.q","seq":1}`,
		`{"v":1,"node":"n1","producer":"p","seq":0}`,
		" \t\r\n{ \"v\" : 1 , \"node\" : \"n1\" , \"producer\" : \"p\" , \"seq\" : 1 , \"metrics\" : [ ] } \n",
		`{"v":1,"node":"n1","producer":"p","seq":18446744073709551615,"time":-9223372036854775808,"metrics":[]}`,
		`{"v":1,"node":"n1","producer":"p","seq":1}`,
		`{"v":1,"node":"n1","producer":"p","seq":1,"metrics":[{},{}]}`,
		batch(`{"name":"x","type":"gauge","help":"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{","value":1}`),
		batch(`{"name":"a_total","type":"counter","help":"h","labels":{"b":"2","a":"1"},"value":3}`,
			`{"name":"a_total","type":"counter","help":"h","labels":{"a":"2","b":"1"},"value":0.5}`,
			`{"name":"g","type":"gauge","value":-0}`,
			`{"name":"g","type":"gauge","labels":{},"value":-1.5e-300}`,
			`{"name":"h","type":"histogram","buckets":[0.1,1E2],"counts":[1,0,18446744073709551615],"sum":5.5}`),
		batch(`{"name":"x","type":"counter","labels":{"a":"q\"\\\n\u00e9/\/\b\f\r\t\u2028|}{="},"value":1}`),
		batch(`{"name":"x","type":"gauge","help":"caf\u00e9 ☕ \"q\"","labels":{"\u0061":"ü"},"value":1}`),
		batch(`{"name":"x","type":"gauge","value":1,"extra":{"a":[1,true,false,null,"s",{"b":-2.5e+3}]},"more":null}`),
		// Field names match exactly: a case variant is an unknown field.
		`{"V":1}`,
		`{"v":1,"NODE":"n1"}`,
		`{"v":1,"node":"n1","producer":"p","seq":1,"Metrics":[]}`,
		batch(`{"Name":"x"}`, `{"name":"x","type":"gauge","value":1,"Value":"5","VALUE":null,"Labels":{"a":1}}`),
		// An empty label value is no label.
		batch(`{"name":"x","type":"gauge","labels":{"env":""},"value":1}`, `{"name":"x","type":"gauge","labels":{"b":"","a":"1"},"value":1}`),
		batch(`{"name":"go_x","type":"gauge","value":1}`, `{"name":"process_x","type":"gauge","value":1}`, `{"name":"promhttp_x","type":"gauge","value":1}`),
		batch(`{"name":"h","type":"histogram","buckets":[1],"counts":[18446744073709551615,1],"sum":1}`),
		batch(`{}`, `{"name":"9x","type":"counter","value":1}`, `{"name":"jetmetrics_x","type":"counter","value":1}`,
			`{"name":"x","type":"counter","labels":{"le":"1"},"value":1}`, `{"name":"x","type":"summary","value":1}`,
			`{"name":"x","type":"counter","value":-1}`, `{"name":"x","type":"histogram","buckets":[],"counts":[]}`,
			`{"name":"x","type":"histogram","buckets":[2,1],"counts":[1,2,3]}`),
	} {
		for _, limits := range matchLimits {
			_, decided, _ := streams.DecodeScanned(msg, "n1", limits)
			if !decided {
				t.Errorf("scanner leaves %s to the reference", msg)
			}
			checkMatchesReference(t, []byte(msg), limits)
		}
	}
}

// TestDecodeScannerDefers lists messages the scanner must leave to the
// reference: ones it might read differently from encoding/json.
func TestDecodeScannerDefers(t *testing.T) {
	long := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	for _, msg := range []string{
		``,
		`null`,
		`[]`,
		`{"v":1,`,
		`{"v":1}x`,
		`{"v":1,"v":1}`,
		`{"v":1,"ſeq":1}`,
		`{"\u0076":1}`,
		`{"v":1.0}`,
		`{"v":1e0}`,
		`{"v":01}`,
		`{"v":+1}`,
		`{"v":1,"seq":-0}`,
		`{"v":1,"seq":-1}`,
		`{"v":1,"seq":18446744073709551616}`,
		`{"v":1,"node":null}`,
		`{"v":1,"node":1}`,
		`{"v":1,"node":"\ud83d\ude00"}`,
		"{\"v\":1,\"node\":\"\xff\"}",
		"{\"v\":1,\"node\":\"\t\"}",
		`{"v":1,"node":"\x"}`,
		`{"v":1,"x":` + long + `}`,
		`{"v":1,"x":tru}`,
		`{"v":1,"x":1.}`,
		`{"v":1,"x":[1,]}`,
		batch(`null`),
		batch(`{"name":"x","name":"y"}`),
		batch(`{"name":"x","labels":{"a":"1","a":"2"}}`),
		batch(`{"name":"x","labels":{"a":"1","\u0061":"2"}}`),
		batch(`{"name":"x","labels":{"a":null}}`),
		batch(`{"name":"x","labels":null}`),
		batch(`{"name":"x","value":null}`),
		batch(`{"name":"x","value":1e999}`),
		batch(`{"name":"x","buckets":[1,null]}`),
		batch(`{"name":"x","counts":[1.5]}`),
		batch(`{"name":"x","type":"counter","value":"1"}`),
		batch(`{"name":"x","labels":{"code":200}}`),
		batch(`{"name":"x","labels":[]}`),
		batch(`{"name":"x","help":null}`),
		batch(`5`),
		batch(`{"name":"x","counts":[1.0]}`),
		`{"v":"1","node":"n1","producer":"p","seq":1,"metrics":[]}`,
		`{"v":1,"node":"n1","producer":"p","seq":1,"metrics":null}`,
		`{"v":1,"node":"n1","producer":"p","seq":1,"time":1.5,"metrics":[]}`,
		`{"v":1,"node":"n1","producer":"p","seq":1,"time":"2025-11-21T05:20:00Z","metrics":[]}`,
	} {
		for _, limits := range matchLimits {
			if _, decided, _ := streams.DecodeScanned(msg, "n1", limits); decided {
				t.Errorf("scanner decides %s itself", msg)
			}
			checkMatchesReference(t, []byte(msg), limits)
		}
	}
}

// TestDecodeScannerDecidesEncoderOutput checks that what the SDK writes,
// escapes included, never needs the reference.
func TestDecodeScannerDecidesEncoderOutput(t *testing.T) {
	var e streams.Encoder
	e.Begin("n1", "p-1", 42, 1763702400123)
	values := []string{"", "plain", `q"b\s`, "line\nbreak\ttab\r", "\x00\x1f\x7f", "café ☕ 😀", "\u2028\u2029", "bad\xffutf8\xc0", "{{}}=,"}
	for i, v := range values {
		labels := []series.Label{{Name: "b", Value: v}, {Name: "a", Value: fmt.Sprint(i)}}
		for _, err := range []error{
			e.Counter("c_total", "help "+v, labels, float64(i)*1.5),
			e.Gauge("g", "", labels, -float64(i)/3),
			e.Histogram("h", v, labels, []float64{1e-9, 0.5, 1e300}, []uint64{0, 1, 1 << 63, 18446744073709551615}, 1e-7),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	msg := string(e.Finish())
	for _, limits := range matchLimits {
		if _, decided, _ := streams.DecodeScanned(msg, "n1", limits); !decided {
			t.Errorf("scanner leaves the Encoder's output to the reference with limits %+v", limits)
		}
		checkMatchesReference(t, []byte(msg), limits)
	}
}
