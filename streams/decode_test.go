package streams_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
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
		{"null", `null`, streams.ReasonUndecodable},
		{"invalid json inside an entry", `{"v":1,"node":"n1","producer":"p","seq":1,"metrics":[{"name":"x","value":NaN}]}`, streams.ReasonUndecodable},
		{"no version", `{"node":"n1","producer":"p","seq":1,"metrics":[]}`, streams.ReasonVersion},
		{"future version", `{"v":2,"node":"n1","producer":"p","seq":1,"metrics":[]}`, streams.ReasonVersion},
		{"version as a string", `{"v":"1","node":"n1","producer":"p","seq":1,"metrics":[]}`, streams.ReasonVersion},
		{"version as a float", `{"v":1.0,"node":"n1","producer":"p","seq":1,"metrics":[]}`, streams.ReasonVersion},
		{"version null", `{"v":null,"node":"n1","producer":"p","seq":1,"metrics":[]}`, streams.ReasonVersion},
		{"version too large", `{"v":99999999999999999999,"node":"n1","producer":"p","seq":1,"metrics":[]}`, streams.ReasonVersion},
		{"version in another case", `{"V":1,"node":"n1","producer":"p","seq":1,"metrics":[]}`, streams.ReasonVersion},
		{"other node", `{"v":1,"node":"n2","producer":"p","seq":1,"metrics":[]}`, streams.ReasonEnvelope},
		{"node as a number", `{"v":1,"node":1,"producer":"p","seq":1,"metrics":[]}`, streams.ReasonEnvelope},
		{"node in another case", `{"v":1,"NODE":"n1","producer":"p","seq":1,"metrics":[]}`, streams.ReasonEnvelope},
		{"bad producer", `{"v":1,"node":"n1","producer":"p.q","seq":1,"metrics":[]}`, streams.ReasonEnvelope},
		{"producer as an array", `{"v":1,"node":"n1","producer":["p"],"seq":1,"metrics":[]}`, streams.ReasonEnvelope},
		{"seq zero", `{"v":1,"node":"n1","producer":"p","metrics":[]}`, streams.ReasonEnvelope},
		{"seq as a string", `{"v":1,"node":"n1","producer":"p","seq":"1","metrics":[]}`, streams.ReasonEnvelope},
		{"seq as a float", `{"v":1,"node":"n1","producer":"p","seq":1.5,"metrics":[]}`, streams.ReasonEnvelope},
		{"seq negative", `{"v":1,"node":"n1","producer":"p","seq":-1,"metrics":[]}`, streams.ReasonEnvelope},
		{"seq past uint64", `{"v":1,"node":"n1","producer":"p","seq":18446744073709551616,"metrics":[]}`, streams.ReasonEnvelope},
		{"no metrics", `{"v":1,"node":"n1","producer":"p","seq":1}`, streams.ReasonEnvelope},
		{"metrics null", `{"v":1,"node":"n1","producer":"p","seq":1,"metrics":null}`, streams.ReasonEnvelope},
		{"metrics an object", `{"v":1,"node":"n1","producer":"p","seq":1,"metrics":{"name":"x"}}`, streams.ReasonEnvelope},
		{"metrics in another case", `{"v":1,"node":"n1","producer":"p","seq":1,"Metrics":[]}`, streams.ReasonEnvelope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, dec := range decoders {
				_, err := dec.decode([]byte(tc.data), "n1", series.Limits{})
				var rej *streams.RejectError
				if !errors.As(err, &rej) || rej.Reason != tc.want {
					t.Fatalf("%s error = %v, want reason %s", dec.name, err, tc.want)
				}
			}
		})
	}
}

// decoders are Decode and the reference that defines it: the tests of
// outcomes hold for both.
var decoders = []struct {
	name   string
	decode func([]byte, string, series.Limits) (*streams.Decoded, error)
}{{"Decode", streams.Decode}, {"reference", streams.DecodeReference}}

// The time is informational: one that is not an integer is ignored, and
// the batch applies.
func TestDecodeUnreadableTime(t *testing.T) {
	for _, tm := range []string{`1763702400123.5`, `"2025-11-21T05:20:00Z"`, `null`, `-1e3`, `{}`, `99999999999999999999`} {
		data := `{"v":1,"node":"n1","producer":"p","seq":3,"time":` + tm + `,"metrics":[{"name":"x","type":"gauge","value":1}]}`
		for _, dec := range decoders {
			d, err := dec.decode([]byte(data), "n1", series.Limits{})
			if err != nil {
				t.Fatalf("%s with time %s: %v", dec.name, tm, err)
			}
			if d.Time != 0 || d.Seq != 3 || len(d.Entries) != 1 || d.Entries[0].Reject != nil {
				t.Errorf("%s with time %s: %+v, want time 0 and the entry applied", dec.name, tm, d)
			}
		}
	}
}

// TestDecodeEntryTypes: a wrong JSON type, a null or a field name in
// another case inside one entry rejects that entry alone, with a precise
// reason; the valid entries before and after it apply.
func TestDecodeEntryTypes(t *testing.T) {
	const ok1 = `{"name":"ok_total","type":"counter","labels":{"k":"a"},"value":1}`
	const ok2 = `{"name":"ok_g","type":"gauge","value":2}`
	for _, tc := range []struct {
		name, entry string
		want        streams.Reason
		key         string // for an entry that applies
		value       float64
	}{
		{"numeric label value", `{"name":"x_total","type":"counter","labels":{"code":200},"value":1}`, streams.ReasonLabelValue, "", 0},
		{"object label value", `{"name":"x_total","type":"counter","labels":{"a":{"b":"c"}},"value":1}`, streams.ReasonLabelValue, "", 0},
		{"array label value", `{"name":"x_total","type":"counter","labels":{"a":["b"]},"value":1}`, streams.ReasonLabelValue, "", 0},
		{"bool label value", `{"name":"x_total","type":"counter","labels":{"a":true},"value":1}`, streams.ReasonLabelValue, "", 0},
		{"null label value", `{"name":"x_total","type":"counter","labels":{"a":null},"value":1}`, streams.ReasonLabelValue, "", 0},
		{"labels an array", `{"name":"x_total","type":"counter","labels":[],"value":1}`, streams.ReasonEntry, "", 0},
		{"labels a string", `{"name":"x_total","type":"counter","labels":"a=b","value":1}`, streams.ReasonEntry, "", 0},
		{"labels null", `{"name":"x_total","type":"counter","labels":null,"value":1}`, "", "x_total", 1},
		{"value a string", `{"name":"x_total","type":"counter","value":"5"}`, streams.ReasonValue, "", 0},
		{"value null", `{"name":"x","type":"gauge","value":null}`, streams.ReasonValue, "", 0},
		{"value past float64", `{"name":"x","type":"gauge","value":1e999}`, streams.ReasonValue, "", 0},
		{"value an array", `{"name":"x","type":"gauge","value":[1]}`, streams.ReasonValue, "", 0},
		{"value in another case", `{"name":"x","type":"gauge","Value":5}`, streams.ReasonValue, "", 0},
		{"a case variant never overrides", `{"name":"x","type":"gauge","value":1,"Value":5,"VALUE":6}`, "", "x", 1},
		{"a case variant never supplies", `{"Name":"x","type":"gauge","value":1}`, streams.ReasonMetricName, "", 0},
		{"name a number", `{"name":5,"type":"gauge","value":1}`, streams.ReasonMetricName, "", 0},
		{"name null", `{"name":null,"type":"gauge","value":1}`, streams.ReasonMetricName, "", 0},
		{"type a number", `{"name":"x","type":1,"value":1}`, streams.ReasonValue, "", 0},
		{"help a number", `{"name":"x","type":"gauge","help":1,"value":1}`, streams.ReasonEntry, "", 0},
		{"help null", `{"name":"x","type":"gauge","help":null,"value":1}`, "", "x", 1},
		{"entry a number", `5`, streams.ReasonEntry, "", 0},
		{"entry null", `null`, streams.ReasonEntry, "", 0},
		{"entry a string", `"x"`, streams.ReasonEntry, "", 0},
		{"entry an array", `[{"name":"x","type":"gauge","value":1}]`, streams.ReasonEntry, "", 0},
		{"buckets a string", `{"name":"h","type":"histogram","buckets":"x","counts":[0,0],"sum":0}`, streams.ReasonValue, "", 0},
		{"bucket null", `{"name":"h","type":"histogram","buckets":[1,null],"counts":[0,0,0],"sum":0}`, streams.ReasonValue, "", 0},
		{"counts with a float", `{"name":"h","type":"histogram","buckets":[1],"counts":[1.0,0],"sum":0}`, streams.ReasonValue, "", 0},
		{"count null", `{"name":"h","type":"histogram","buckets":[1],"counts":[null,0],"sum":0}`, streams.ReasonValue, "", 0},
		{"count negative", `{"name":"h","type":"histogram","buckets":[1],"counts":[-1,0],"sum":0}`, streams.ReasonValue, "", 0},
		{"count past uint64", `{"name":"h","type":"histogram","buckets":[1],"counts":[18446744073709551616,0],"sum":0}`, streams.ReasonValue, "", 0},
		{"counts null", `{"name":"h","type":"histogram","buckets":[1],"counts":null,"sum":0}`, streams.ReasonValue, "", 0},
		{"sum null", `{"name":"h","type":"histogram","buckets":[1],"counts":[1,0],"sum":null}`, streams.ReasonValue, "", 0},
		{"sum a string", `{"name":"h","type":"histogram","buckets":[1],"counts":[1,0],"sum":"1"}`, streams.ReasonValue, "", 0},
		{"counts adding up past uint64", `{"name":"h","type":"histogram","buckets":[1],"counts":[18446744073709551615,1],"sum":1}`, streams.ReasonOverflow, "", 0},
		{"counts adding up to uint64's largest", `{"name":"h","type":"histogram","buckets":[1],"counts":[18446744073709551614,1],"sum":1}`, "", "h", 0},
		{"go_ prefix", `{"name":"go_gc_duration_seconds_count","type":"counter","value":1}`, streams.ReasonMetricName, "", 0},
		{"process_ prefix", `{"name":"process_cpu_seconds_total","type":"counter","value":1}`, streams.ReasonMetricName, "", 0},
		{"promhttp_ prefix", `{"name":"promhttp_metric_handler_requests_total","type":"counter","value":1}`, streams.ReasonMetricName, "", 0},
		{"jetmetrics_ prefix", `{"name":"jetmetrics_x","type":"gauge","value":1}`, streams.ReasonMetricName, "", 0},
		{"service latency in its shape", `{"name":"jetmetrics_service_latency_seconds","type":"histogram","labels":{"service":"pay"},"buckets":[0.0001220703125,0.00017263349150062197,0.000244140625,0.00034526698300124393,0.00048828125,0.0006905339660024879,0.0009765625,0.0013810679320049757,0.001953125,0.0027621358640099515,0.00390625,0.005524271728019903,0.0078125,0.011048543456039806,0.015625,0.02209708691207961,0.03125,0.04419417382415922,0.0625,0.08838834764831845,0.125,0.1767766952966369,0.25,0.3535533905932738,0.5,0.7071067811865476,1,1.4142135623730951,2,2.8284271247461903,4,5.656854249492381,8,11.313708498984761,16,22.627416997969522,32,45.254833995939045,64,90.50966799187809,128],"counts":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"sum":0.7}`, "", `jetmetrics_service_latency_seconds{service="pay"}`, 0},
		{"service latency in its former decimal layout", `{"name":"jetmetrics_service_latency_seconds","type":"histogram","labels":{"service":"pay"},"buckets":[0.0005,0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60],"counts":[0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0],"sum":0.7}`, streams.ReasonLayoutConflict, "", 0},
		{"service latency with other buckets", `{"name":"jetmetrics_service_latency_seconds","type":"histogram","labels":{"service":"pay"},"buckets":[1],"counts":[1,0],"sum":0.7}`, streams.ReasonLayoutConflict, "", 0},
		{"service latency as a gauge", `{"name":"jetmetrics_service_latency_seconds","type":"gauge","labels":{"service":"pay"},"value":1}`, streams.ReasonTypeConflict, "", 0},
		{"service latency without service", `{"name":"jetmetrics_service_latency_seconds","type":"histogram","buckets":[0.0001220703125,0.00017263349150062197,0.000244140625,0.00034526698300124393,0.00048828125,0.0006905339660024879,0.0009765625,0.0013810679320049757,0.001953125,0.0027621358640099515,0.00390625,0.005524271728019903,0.0078125,0.011048543456039806,0.015625,0.02209708691207961,0.03125,0.04419417382415922,0.0625,0.08838834764831845,0.125,0.1767766952966369,0.25,0.3535533905932738,0.5,0.7071067811865476,1,1.4142135623730951,2,2.8284271247461903,4,5.656854249492381,8,11.313708498984761,16,22.627416997969522,32,45.254833995939045,64,90.50966799187809,128],"counts":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"sum":0.7}`, streams.ReasonLabelName, "", 0},
		{"service latency with another label", `{"name":"jetmetrics_service_latency_seconds","type":"histogram","labels":{"service":"pay","zone":"a"},"buckets":[0.0001220703125,0.00017263349150062197,0.000244140625,0.00034526698300124393,0.00048828125,0.0006905339660024879,0.0009765625,0.0013810679320049757,0.001953125,0.0027621358640099515,0.00390625,0.005524271728019903,0.0078125,0.011048543456039806,0.015625,0.02209708691207961,0.03125,0.04419417382415922,0.0625,0.08838834764831845,0.125,0.1767766952966369,0.25,0.3535533905932738,0.5,0.7071067811865476,1,1.4142135623730951,2,2.8284271247461903,4,5.656854249492381,8,11.313708498984761,16,22.627416997969522,32,45.254833995939045,64,90.50966799187809,128],"counts":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"sum":0.7}`, streams.ReasonLabelName, "", 0},
		{"service checks in their shape", `{"name":"jetmetrics_service_checks_total","type":"counter","labels":{"service":"pay","result":"failure"},"value":2}`, "", `jetmetrics_service_checks_total{result="failure",service="pay"}`, 2},
		{"service checks with another result", `{"name":"jetmetrics_service_checks_total","type":"counter","labels":{"service":"pay","result":"timeout"},"value":2}`, streams.ReasonLabelValue, "", 0},
		{"service checks without result", `{"name":"jetmetrics_service_checks_total","type":"counter","labels":{"service":"pay"},"value":2}`, streams.ReasonLabelName, "", 0},
		{"service checks as a gauge", `{"name":"jetmetrics_service_checks_total","type":"gauge","labels":{"service":"pay","result":"success"},"value":2}`, streams.ReasonTypeConflict, "", 0},
		{"another name under the service prefix", `{"name":"jetmetrics_service_up","type":"gauge","labels":{"service":"pay"},"value":1}`, streams.ReasonMetricName, "", 0},
		{"a name that only starts like one", `{"name":"gopher","type":"gauge","value":1}`, "", "gopher", 1},
		{"empty label value", `{"name":"x","type":"gauge","labels":{"env":""},"value":3}`, "", "x", 3},
		{"empty label value among others", `{"name":"x","type":"gauge","labels":{"b":"","a":"1","c":""},"value":3}`, "", `x{a="1"}`, 3},
		{"empty label value of a reserved name", `{"name":"x","type":"gauge","labels":{"node":""},"value":3}`, "", "x", 3},
		{"repeated label, the last empty", `{"name":"x","type":"gauge","labels":{"a":"1","a":""},"value":3}`, "", "x", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := batchOf(ok1, tc.entry, ok2)
			for _, dec := range decoders {
				d, err := dec.decode([]byte(data), "n1", series.Limits{})
				if err != nil {
					t.Fatalf("%s: %v", dec.name, err)
				}
				if len(d.Entries) != 3 {
					t.Fatalf("%s: %d entries, want 3", dec.name, len(d.Entries))
				}
				for _, i := range []int{0, 2} {
					if d.Entries[i].Reject != nil || d.Entries[i].Key == "" {
						t.Errorf("%s: valid entry %d rejected: %v", dec.name, i, d.Entries[i].Reject)
					}
				}
				e := d.Entries[1]
				var got streams.Reason
				if e.Reject != nil {
					got = e.Reject.Reason
				}
				if got != tc.want || e.Key != tc.key || (tc.key != "" && e.Value != tc.value) {
					t.Errorf("%s: entry key %q value %v reason %q (%v), want key %q value %v reason %q", dec.name, e.Key, e.Value, got, e.Reject, tc.key, tc.value, tc.want)
				}
			}
		})
	}
}

func batchOf(entries ...string) string {
	return `{"v":1,"node":"n1","producer":"p","seq":1,"metrics":[` + strings.Join(entries, ",") + `]}`
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

// FuzzDecodeEntryStandsAlone puts any JSON value between two valid entries
// of a batch and checks that it never costs them: the batch decodes, the
// two apply as they do alone, and the value is applied or rejected alone
// with a reason, as the scanner and the reference agree. The seeds are the
// entry-level type errors, nulls and case variants JavaScript publishers
// send.
func FuzzDecodeEntryStandsAlone(f *testing.F) {
	const ok1 = `{"name":"ok_total","type":"counter","labels":{"k":"a"},"value":1}`
	const ok2 = `{"name":"ok_h","type":"histogram","buckets":[1],"counts":[1,0],"sum":0.5}`
	alone, err := streams.DecodeReference([]byte(batchOf(ok1, ok2)), "n1", series.Limits{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, entry []byte) {
		if !json.Valid(entry) {
			return
		}
		data := []byte(batchOf(ok1, string(entry), ok2))
		for _, limits := range matchLimits {
			checkMatchesReference(t, data, limits)
		}
		d, err := streams.Decode(data, "n1", series.Limits{})
		if err != nil {
			t.Fatalf("one entry %s costs the batch: %v", entry, err)
		}
		if len(d.Entries) != 3 {
			t.Fatalf("%d entries, want 3", len(d.Entries))
		}
		for i, j := range []int{0, 2} {
			if diff := diffEntry(&d.Entries[j], &alone.Entries[i]); diff != "" {
				t.Fatalf("entry %d beside %s: %s", j, entry, diff)
			}
		}
		if rej := d.Entries[1].Reject; rej != nil && !slices.Contains(streams.Reasons, rej.Reason) {
			t.Fatalf("entry %s rejected for an unlisted reason %q", entry, rej.Reason)
		}
	})
}
