package streams

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"

	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// wireBatch is a batch's envelope as read from the message, for
// checkEnvelope.
type wireBatch struct {
	// HasVersion tells whether "v" is present. Version is its value when
	// it is an integer; otherwise VersionText describes it.
	HasVersion  bool
	Version     int64
	VersionText string
	// BadField names the first of node, producer, seq and metrics whose
	// JSON type is wrong; BadType is what it is, BadWant what it must be.
	BadField, BadType, BadWant string

	Node     string
	Producer string
	Seq      uint64
	Time     int64
	// HasMetrics tells whether "metrics" is an array.
	HasMetrics bool
}

// decodeReference is Decode written with encoding/json. It is the
// definition of Decode's outcome for every input: the scanner in
// decode_scan.go only decides messages it is certain it reads the same way,
// and hands everything else to this function.
//
// The message must be a JSON object, or it is undecodable. Its fields, and
// each entry's, are matched by their exact names (encoding/json's structs
// would match "Value" to value); other names are unknown and ignored, and
// of a repeated name the last one counts. The envelope is read field by
// field, so a wrong type there is a bad envelope (or an unknown version),
// and each entry of "metrics" is read on its own, so a wrong type inside
// one rejects that entry alone.
func decodeReference(data []byte, node string, limits series.Limits) (*Decoded, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, reject(ReasonUndecodable, "decode batch: %w", err)
	}
	if top == nil {
		return nil, reject(ReasonUndecodable, "decode batch: the message is null, want an object")
	}
	var w wireBatch
	bad := func(field string, raw json.RawMessage, want string) {
		if w.BadField == "" {
			w.BadField, w.BadType, w.BadWant = field, describe(raw), want
		}
	}
	if raw, ok := top["v"]; ok {
		w.HasVersion = true
		var integer bool
		if w.Version, integer = jsonInt(raw); !integer {
			w.VersionText = describe(raw)
		}
	}
	if raw, ok := top["node"]; ok && !jsonString(raw, &w.Node) {
		bad("node", raw, "a string")
	}
	if raw, ok := top["producer"]; ok && !jsonString(raw, &w.Producer) {
		bad("producer", raw, "a string")
	}
	if raw, ok := top["seq"]; ok {
		var integer bool
		if w.Seq, integer = jsonUint(raw); !integer {
			bad("seq", raw, "an integer from 1 to 2^64-1")
		}
	}
	// The time is informational: one that is not an integer is ignored
	// rather than costing the batch.
	if raw, ok := top["time"]; ok {
		if t, integer := jsonInt(raw); integer {
			w.Time = t
		}
	}
	var items []json.RawMessage
	if raw, ok := top["metrics"]; ok && !isNull(raw) {
		if first(raw) != '[' {
			bad("metrics", raw, "an array")
		} else if err := json.Unmarshal(raw, &items); err != nil {
			return nil, reject(ReasonUndecodable, "decode batch metrics: %w", err)
		} else {
			w.HasMetrics = true
		}
	}
	if err := checkEnvelope(&w, node); err != nil {
		return nil, err
	}
	d := &Decoded{Node: w.Node, Producer: w.Producer, Seq: w.Seq, Time: w.Time, Entries: make([]Entry, len(items))}
	var labels []series.Label
	for i, raw := range items {
		labels = decodeEntry(&d.Entries[i], raw, limits, labels[:0])
	}
	return d, nil
}

// decodeEntry decodes and checks one entry of "metrics" into e, using
// labels as scratch space, which it returns.
//
// A field of the wrong JSON type rejects the entry. They are checked in a
// fixed order, name, type, help, labels, value, buckets, counts and sum,
// so an entry with several wrong is rejected for the same one whatever the
// order of its fields; only then are the values checked (checkMetric).
// null stands for an absent help or labels; anywhere else it is a wrong
// type (a JavaScript NaN is written as null).
func decodeEntry(e *Entry, raw json.RawMessage, limits series.Limits, labels []series.Label) []series.Label {
	if first(raw) != '{' {
		e.Reject = reject(ReasonEntry, "entry is %s, want an object", describe(raw))
		return labels
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		// Not reached: the message as a whole is valid JSON.
		e.Reject = reject(ReasonEntry, "decode entry: %w", err)
		return labels
	}
	m := &e.Metric
	wrong := func(r Reason, field string, raw json.RawMessage, want string) []series.Label {
		e.Reject = reject(r, "entry field %q is %s, want %s", field, describe(raw), want)
		return labels
	}
	if raw, ok := fields["name"]; ok && !jsonString(raw, &m.Name) {
		return wrong(ReasonMetricName, "name", raw, "a string")
	}
	if raw, ok := fields["type"]; ok {
		var t string
		if !jsonString(raw, &t) {
			return wrong(ReasonValue, "type", raw, "a string")
		}
		m.Type = Kind(t)
	}
	if raw, ok := fields["help"]; ok && !isNull(raw) && !jsonString(raw, &m.Help) {
		return wrong(ReasonEntry, "help", raw, "a string")
	}
	if raw, ok := fields["labels"]; ok && !isNull(raw) {
		var set map[string]json.RawMessage
		if first(raw) != '{' || json.Unmarshal(raw, &set) != nil {
			return wrong(ReasonEntry, "labels", raw, "an object")
		}
		for _, name := range slices.Sorted(maps.Keys(set)) {
			var v string
			if !jsonString(set[name], &v) {
				e.Reject = reject(ReasonLabelValue, "label %q is %s, want a string", name, describe(set[name]))
				return labels
			}
			labels = append(labels, series.Label{Name: name, Value: v})
		}
	}
	hasValue := false
	if raw, ok := fields["value"]; ok {
		if m.Value, hasValue = jsonFloat(raw); !hasValue {
			return wrong(ReasonValue, "value", raw, "a number within float64's range")
		}
	}
	if raw, ok := fields["buckets"]; ok {
		var ok bool
		if m.Buckets, ok = jsonArray(raw, jsonFloat); !ok {
			return wrong(ReasonValue, "buckets", raw, "an array of numbers within float64's range")
		}
	}
	if raw, ok := fields["counts"]; ok {
		var ok bool
		if m.Counts, ok = jsonArray(raw, jsonUint); !ok {
			return wrong(ReasonValue, "counts", raw, "an array of integers from 0 to 2^64-1")
		}
	}
	if raw, ok := fields["sum"]; ok {
		var number bool
		if m.Sum, number = jsonFloat(raw); !number {
			return wrong(ReasonValue, "sum", raw, "a number within float64's range")
		}
	}
	labels = dropEmpty(labels)
	if e.Reject = checkMetric(m, hasValue, labels, limits); e.Reject != nil {
		return labels
	}
	e.Key = series.Key(m.Name, labels)
	return labels
}

// first returns the first byte of a JSON value, which tells its type.
func first(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func isNull(raw json.RawMessage) bool { return first(raw) == 'n' }

// describe names the JSON type of raw for an error, with a short number's
// text.
func describe(raw json.RawMessage) string {
	switch c := first(raw); {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	}
	if t := bytes.TrimSpace(raw); len(t) <= 32 {
		return "the number " + string(t)
	}
	return "a number"
}

// jsonString decodes a JSON string into s, as encoding/json does (invalid
// UTF-8 becomes U+FFFD), and reports whether raw is one.
func jsonString(raw json.RawMessage, s *string) bool {
	return first(raw) == '"' && json.Unmarshal(raw, s) == nil
}

// number returns the text of a JSON number, and whether it is written as
// an integer: without a fraction or an exponent.
func number(raw json.RawMessage) (lit string, integer, ok bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || (t[0] != '-' && (t[0] < '0' || t[0] > '9')) {
		return "", false, false
	}
	return string(t), !bytes.ContainsAny(t, ".eE"), true
}

// jsonInt reads an integer that fits an int64.
func jsonInt(raw json.RawMessage) (int64, bool) {
	lit, integer, ok := number(raw)
	if !ok || !integer {
		return 0, false
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	return n, err == nil
}

// jsonUint reads an integer from 0 to 2^64-1.
func jsonUint(raw json.RawMessage) (uint64, bool) {
	lit, integer, ok := number(raw)
	if !ok || !integer {
		return 0, false
	}
	n, err := strconv.ParseUint(lit, 10, 64)
	return n, err == nil
}

// jsonFloat reads a number within float64's range, as encoding/json does.
func jsonFloat(raw json.RawMessage) (float64, bool) {
	lit, _, ok := number(raw)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(lit, 64)
	return f, err == nil
}

// jsonArray reads an array whose every element parse reads.
func jsonArray[T any](raw json.RawMessage, parse func(json.RawMessage) (T, bool)) ([]T, bool) {
	var items []json.RawMessage
	if first(raw) != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, false
	}
	out := make([]T, 0, len(items))
	for _, it := range items {
		v, ok := parse(it)
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}
