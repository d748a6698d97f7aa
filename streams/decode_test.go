package streams_test

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

func TestDecodeEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       streams.Reason
	}{
		{"not json", `{"v":1,`, streams.ReasonUndecodable},
		{"wrong shape", `[1,2]`, streams.ReasonUndecodable},
		{"no version", `{"node":"n1","producer":"p","seq":1,"metrics":[]}`, streams.ReasonVersion},
		{"future version", `{"v":2,"node":"n1","producer":"p","seq":1,"metrics":[]}`, streams.ReasonVersion},
		{"other node", `{"v":1,"node":"n2","producer":"p","seq":1,"metrics":[]}`, streams.ReasonEnvelope},
		{"bad producer", `{"v":1,"node":"n1","producer":"p.q","seq":1,"metrics":[]}`, streams.ReasonEnvelope},
		{"seq zero", `{"v":1,"node":"n1","producer":"p","metrics":[]}`, streams.ReasonEnvelope},
		{"huge number", `{"v":1,"node":"n1","producer":"p","seq":1,"metrics":[{"name":"x","type":"counter","value":1e999}]}`, streams.ReasonUndecodable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := streams.Decode([]byte(tc.data), "n1", series.Limits{})
			var rej *streams.RejectError
			if !errors.As(err, &rej) || rej.Reason != tc.want {
				t.Fatalf("Decode error = %v, want reason %s", err, tc.want)
			}
		})
	}
}

func TestDecodeEntries(t *testing.T) {
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	data := `{"v":1,"node":"n1","producer":"api-1","seq":7,"time":5,"metrics":[
	 {"name":"ok_total","type":"counter","help":"h","labels":{"b":"2","a":"1"},"value":3},
	 {"name":"g","type":"gauge","value":0},
	 {"name":"h","type":"histogram","buckets":[0.1,1],"counts":[1,0,2],"sum":5.5},
	 {"name":"9bad","type":"counter","value":1},
	 {"name":"x","type":"counter","labels":{"1a":"v"},"value":1},
	 {"name":"x","type":"counter","labels":{"node":"v"},"value":1},
	 {"name":"x","type":"counter","labels":{"a":"` + string(long) + `"},"value":1},
	 {"name":"x","type":"counter","value":-1},
	 {"name":"x","type":"gauge"},
	 {"name":"x","type":"summary","value":1},
	 {"name":"h","type":"histogram","buckets":[1,0.1],"counts":[1,0,2],"sum":1},
	 {"name":"h","type":"histogram","buckets":[0.1,1],"counts":[1,0],"sum":1},
	 {"name":"x","type":"counter","labels":{"a":"1","b":"1","c":"1"},"value":1}
	]}`
	d, err := streams.Decode([]byte(data), "n1", series.Limits{MaxLabels: 2})
	if err != nil {
		t.Fatal(err)
	}
	if d.Producer != "api-1" || d.Seq != 7 || d.Time != 5 {
		t.Fatalf("envelope = %+v", d)
	}
	want := []struct {
		key    string
		reason streams.Reason
	}{
		{`ok_total{a="1",b="2"}`, ""},
		{"g", ""},
		{"h", ""},
		{"", streams.ReasonMetricName},
		{"", streams.ReasonLabelName},
		{"", streams.ReasonReservedLabel},
		{"", streams.ReasonLongLabelValue},
		{"", streams.ReasonValue},
		{"", streams.ReasonValue},
		{"", streams.ReasonValue},
		{"", streams.ReasonValue},
		{"", streams.ReasonValue},
		{"", streams.ReasonTooManyLabels},
	}
	if len(d.Entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(d.Entries), len(want))
	}
	for i, w := range want {
		e := d.Entries[i]
		var got streams.Reason
		if e.Reject != nil {
			got = e.Reject.Reason
		}
		if got != w.reason || e.Key != w.key {
			t.Errorf("entry %d: key %q reason %q (%v), want key %q reason %q", i, e.Key, got, e.Reject, w.key, w.reason)
		}
	}
}

// FuzzDecode checks that no input panics the decoder, and that a decoded
// entry without a rejection is fit to apply.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := streams.Decode(data, "n1", series.Limits{})
		if err != nil {
			var rej *streams.RejectError
			if !errors.As(err, &rej) || rej.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		for _, e := range d.Entries {
			if e.Reject != nil {
				continue
			}
			name, _, perr := series.ParseKey(e.Key, nil)
			if perr != nil || name != e.Name {
				t.Fatalf("entry key %q does not parse back to %q: %v", e.Key, e.Name, perr)
			}
			if e.Type == streams.KindHistogram && len(e.Counts) != len(e.Buckets)+1 {
				t.Fatalf("histogram entry with %d counts for %d buckets passed", len(e.Counts), len(e.Buckets))
			}
		}
	})
}

// Size covers a message's entries and the bytes of their series keys,
// from the fast decoder and from the reference alike.
func TestDecodedSize(t *testing.T) {
	data := `{"v":1,"node":"n1","producer":"p","seq":1,"time":1,"metrics":[
	 {"name":"a_total","type":"counter","labels":{"k":"v"},"value":1},
	 {"name":"b","type":"gauge","value":2}]}`
	fast, err := streams.Decode([]byte(data), "n1", series.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := streams.DecodeReference([]byte(data), "n1", series.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]*streams.Decoded{"Decode": fast, "reference": ref} {
		keys := 0
		for _, e := range d.Entries {
			keys += len(e.Key)
		}
		if want := len(d.Entries)*int(unsafe.Sizeof(streams.Entry{})) + keys; d.Size() < want {
			t.Errorf("%s: Size %d, want at least %d for %d entries and %d key bytes", name, d.Size(), want, len(d.Entries), keys)
		}
	}
}
