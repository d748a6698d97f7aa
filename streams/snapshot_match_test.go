package streams_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

var testZenc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))

// FuzzDecodeSnapshotMatchesReference checks that DecodeSnapshot decides
// every input as json.Unmarshal into an aggregate.Dump does: the same
// error, or the same dump down to every map entry. It also checks that
// nothing decoded points into the message, whose buffer DecodeSnapshot
// reuses and the caller of the scanner may reuse.
func FuzzDecodeSnapshotMatchesReference(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSnapshotMatchesReference(t, data)
	})
}

func checkSnapshotMatchesReference(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := streams.DecodeSnapshotReference(data)

	in := bytes.Clone(data)
	got, gotErr := streams.DecodeSnapshotJSON(in)
	for i := range in {
		in[i] = '#'
	}
	if diff := diffDump(got, gotErr, want, wantErr); diff != "" {
		t.Fatalf("DecodeSnapshot differs from the reference: %s\ninput: %q", diff, data)
	}

	if scanned, decided := streams.DecodeSnapshotScanned(data); decided {
		if diff := diffDump(scanned, nil, want, wantErr); diff != "" {
			t.Fatalf("scanner differs from the reference: %s\ninput: %q", diff, data)
		}
	}

	// Compressed, through the pooled buffer: a second message decoded into
	// the same buffer must leave the first dump as it was.
	got, gotErr = streams.DecodeSnapshot(testZenc.EncodeAll(data, nil))
	if _, err := streams.DecodeSnapshot(testZenc.EncodeAll(bytes.Repeat([]byte{'#'}, len(data)+64), nil)); err == nil {
		t.Fatal("DecodeSnapshot accepts a message of #")
	}
	if diff := diffDump(got, gotErr, want, wantErr); diff != "" {
		t.Fatalf("DecodeSnapshot of the compressed message differs from the reference: %s\ninput: %q", diff, data)
	}
}

// diffDump describes how two outcomes of decoding differ, or returns "".
func diffDump(got *aggregate.Dump, gotErr error, want *aggregate.Dump, wantErr error) string {
	if gotErr != nil || wantErr != nil {
		if gotErr == nil || wantErr == nil || gotErr.Error() != wantErr.Error() {
			return fmt.Sprintf("error %v, want %v", gotErr, wantErr)
		}
		return ""
	}
	if got == nil || want == nil {
		return fmt.Sprintf("dump %v, want %v", got, want)
	}
	if got.Node != want.Node {
		return fmt.Sprintf("node %q, want %q", got.Node, want.Node)
	}
	for _, h := range []struct {
		name      string
		got, want map[string]string
	}{
		{"marks", got.Marks, want.Marks},
		{"meta", got.Meta, want.Meta},
		{"series", got.Series, want.Series},
		{"rejected", got.Rejected, want.Rejected},
	} {
		if (h.got == nil) != (h.want == nil) || !maps.Equal(h.got, h.want) {
			return fmt.Sprintf("%s %#v, want %#v", h.name, h.got, h.want)
		}
	}
	return ""
}

// awkward are label values and texts that need escapes in JSON, or bytes
// json.Marshal writes as they are.
var awkward = []string{"", "plain", `q"b\s`, "line\nbreak\ttab\r", "\x00\x1f\x7f", "café ☕ 😀", "\u2028\u2029",
	"<html>&amp;", "{{}}=,|b1", `}|sum`, "bad\xffutf8\xc0", strings.Repeat("long ", 60)}

// awkwardDump is a small aggregate whose keys and values hold every
// awkward string.
func awkwardDump() *aggregate.Dump {
	d := &aggregate.Dump{
		Node:     "node-ü",
		Marks:    map[string]string{"stream": "42", "p:prod-1": "7"},
		Meta:     map[string]string{},
		Series:   map[string]string{},
		Rejected: map[string]string{"oversize": "1"},
	}
	for i, v := range awkward {
		c, _ := json.Marshal(aggregate.Meta{Kind: aggregate.Counter, Help: "help " + v})
		h, _ := json.Marshal(aggregate.Meta{Kind: aggregate.Histogram, Help: v, Buckets: []float64{0.5, 1e300}})
		d.Meta["c_total"], d.Meta["h"] = string(c), string(h)
		labels := []series.Label{{Name: "a", Value: fmt.Sprint(i)}, {Name: "b", Value: v}}
		d.Series[series.Key("c_total", labels)] = fmt.Sprint(float64(i) * 1.5)
		key := series.Key("h", labels)
		for b := range 3 {
			d.Series[aggregate.BucketField(key, b)] = fmt.Sprint(uint64(1)<<(20*b) - 1)
		}
		d.Series[aggregate.SumField(key)] = "-0"
		d.Marks["p:"+v] = "1"
	}
	d.Series["up"] = "1"
	return d
}

// TestDecodeSnapshotScannerDecides lists messages the scanner must decide
// itself, so that the speed of DecodeSnapshot does not quietly rest on the
// reference.
func TestDecodeSnapshotScannerDecides(t *testing.T) {
	wrote, err := json.Marshal(awkwardDump())
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{
		string(wrote),
		`{}`,
		`{"node":"n"}`,
		`{"node":"","marks":{},"meta":{},"series":{},"rejected":{}}`,
		`{"node":null,"marks":null,"meta":null,"series":null,"rejected":null}`,
		" \t\r\n{ \"node\" : \"n\" , \"series\" : { \"a\" : \"1\" , \"b\" : \"\" } } \n",
		`{"series":{"a":"1","a":"2"}}`,
		`{"series":{"a\u0000\u001f\u00e9\u2028\uffff\/":"\b\f\n\r\t\"\\"}}`,
		`{"rejected":{"x":"1"},"node":"n","series":{"k{a=\"v\"}|b0":"0"}}`,
		"{\"series\":{\"\x7f\":\"é☕😀\"}}",
	} {
		if _, decided := streams.DecodeSnapshotScanned([]byte(msg)); !decided {
			t.Errorf("scanner leaves %s to the reference", msg)
		}
		checkSnapshotMatchesReference(t, []byte(msg))
	}
}

// TestDecodeSnapshotScannerDefers lists messages the scanner must leave to
// the reference: ones it might read differently from encoding/json.
func TestDecodeSnapshotScannerDefers(t *testing.T) {
	for _, msg := range []string{
		``,
		` `,
		`null`,
		`[]`,
		`"x"`,
		`{`,
		`{"node":"n"`,
		`{"node":"n",}`,
		`{"node":"n"}x`,
		`{"node":"n"}{}`,
		`{"node":"n","node":"m"}`,
		`{"series":{},"series":{}}`,
		`{"Node":"n"}`,
		`{"SERIES":{}}`,
		`{"ſeries":{}}`,
		`{"\u006eode":"n"}`,
		`{"extra":1}`,
		`{"node":1}`,
		`{"node":null,"node":"n"}`,
		`{"series":null,"series":{}}`,
		`{"series":{},"series":null}`,
		`{"series":nul}`,
		`{"series":[]}`,
		`{"series":{"a":1}}`,
		`{"series":{"a":null}}`,
		`{"series":{"a":{}}}`,
		`{"series":{"a":"1",}}`,
		`{"series":{"a" "1"}}`,
		`{"series":{"a":"1""b":"2"}}`,
		`{"series":{"a":"\ud83d\ude00"}}`,
		`{"series":{"a":"\ud800"}}`,
		`{"series":{"a":"\x"}}`,
		`{"series":{"a":"\u00g0"}}`,
		`{"series":{"a":"\u00e"}}`,
		`{"series":{"a":"\`,
		"{\"series\":{\"a\":\"\xff\"}}",
		"{\"series\":{\"\xc3\":\"x\"}}",
		"{\"series\":{\"a\":\"\t\"}}",
		"{\"series\":{\"a\":\"\xed\xa0\x80\"}}",
	} {
		if _, decided := streams.DecodeSnapshotScanned([]byte(msg)); decided {
			t.Errorf("scanner decides %s itself", msg)
		}
		checkSnapshotMatchesReference(t, []byte(msg))
	}
}

// TestDecodeSnapshotRoundTrip checks that what SnapshotMsg writes decodes
// to the dump it was given, through the scanner.
func TestDecodeSnapshotRoundTrip(t *testing.T) {
	for _, d := range []*aggregate.Dump{awkwardDump(), benchDump(3000), {Node: "empty"}} {
		msg, err := streams.SnapshotMsg("s", d, time.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got, err := streams.DecodeSnapshot(msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(d)
		want, _ := streams.DecodeSnapshotReference(raw)
		if diff := diffDump(got, nil, want, nil); diff != "" {
			t.Errorf("round trip of %s: %s", d.Node, diff)
		}
		if _, decided := streams.DecodeSnapshotScanned(raw); !decided {
			t.Errorf("scanner leaves the snapshot of %s to the reference", d.Node)
		}
	}
}
