package streams_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// referenceState is Dump.State as it was written before it was made fast
// for large snapshots: plain, and the definition of its outcome.
func referenceState(d *aggregate.Dump) (*aggregate.State, error) {
	metas := map[string]aggregate.Meta{}
	for name, raw := range d.Meta {
		var m aggregate.Meta
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return nil, err
		}
		metas[name] = m
	}
	st := &aggregate.State{Node: d.Node, Mark: d.Mark(), Rejected: map[string]uint64{}}
	for k, v := range d.Rejected {
		st.Rejected[k], _ = strconv.ParseUint(v, 10, 64)
	}
	fams := map[string]*aggregate.Family{}
	idx := map[string]int{}
	for field, raw := range d.Series {
		key, bucket, hist := referenceSplitField(field)
		name, lbs, err := series.ParseKey(key, nil)
		if err != nil {
			return nil, err
		}
		meta, ok := metas[name]
		if !ok || hist != (meta.Kind == aggregate.Histogram) || (hist && bucket > len(meta.Buckets)) {
			continue
		}
		f := fams[name]
		if f == nil {
			f = &aggregate.Family{Name: name, Meta: meta}
			fams[name] = f
		}
		i, ok := idx[key]
		if !ok {
			sr := aggregate.Series{Key: key, Labels: append([]series.Label(nil), lbs...)}
			if hist {
				sr.Counts = make([]uint64, len(meta.Buckets)+1)
			}
			f.Series = append(f.Series, sr)
			i = len(f.Series) - 1
			idx[key] = i
		}
		sr := &f.Series[i]
		switch {
		case !hist:
			sr.Value, err = referenceParseFloat(raw)
		case bucket < 0:
			sr.Sum, err = referenceParseFloat(raw)
		default:
			sr.Counts[bucket], err = strconv.ParseUint(raw, 10, 64)
		}
		if err != nil {
			return nil, err
		}
	}
	st.Families = make([]aggregate.Family, 0, len(fams))
	for _, f := range fams {
		sort.Slice(f.Series, func(i, j int) bool { return f.Series[i].Key < f.Series[j].Key })
		st.Families = append(st.Families, *f)
	}
	sort.Slice(st.Families, func(i, j int) bool { return st.Families[i].Name < st.Families[j].Name })
	return st, nil
}

func referenceSplitField(field string) (key string, bucket int, hist bool) {
	if !strings.HasSuffix(field, "}") {
		if i := strings.LastIndexByte(field, '|'); i > 0 && strings.IndexByte(field[i:], '"') < 0 {
			suffix := field[i:]
			if suffix == "|sum" {
				return field[:i], -1, true
			}
			if strings.HasPrefix(suffix, "|b") {
				if n, err := strconv.Atoi(suffix[2:]); err == nil && n >= 0 {
					return field[:i], n, true
				}
			}
		}
	}
	return field, 0, false
}

func referenceParseFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && errors.Is(err, strconv.ErrRange) {
		return f, nil
	}
	return f, err
}

// diffState describes how two outcomes of Dump.State differ, or returns
// "". Errors only need to agree on failing: which of several bad fields a
// state reports depends on map order.
func diffState(got *aggregate.State, gotErr error, want *aggregate.State, wantErr error) string {
	if gotErr != nil || wantErr != nil {
		if (gotErr == nil) != (wantErr == nil) {
			return fmt.Sprintf("error %v, want %v", gotErr, wantErr)
		}
		return ""
	}
	// %#v shows nil apart from empty, -0 apart from 0, and NaN as itself.
	if g, w := fmt.Sprintf("%#v", *got), fmt.Sprintf("%#v", *want); g != w {
		return fmt.Sprintf("state\n%s\nwant\n%s", g, w)
	}
	return ""
}

// stateMetas describe the metrics the fuzzed dumps hold series of.
var stateMetas = map[string]aggregate.Meta{
	"c":    {Kind: aggregate.Counter},
	"g":    {Kind: aggregate.Gauge, Help: "g"},
	"h":    {Kind: aggregate.Histogram, Buckets: []float64{1, 2}},
	"h2":   {Kind: aggregate.Histogram, Buckets: []float64{1}},
	"":     {Kind: aggregate.Counter},
	"x|b1": {Kind: aggregate.Gauge},
}

// fuzzDump makes a dump of data's lines, each a series field, a tab and
// its value. Of fields that name the same histogram bucket, as h|b1 and
// h|b01 do, it keeps the first: which one a state shows depends on map
// order.
func fuzzDump(data []byte) *aggregate.Dump {
	d := &aggregate.Dump{Node: "n", Marks: map[string]string{"stream": "9"}, Meta: map[string]string{},
		Series: map[string]string{}, Rejected: map[string]string{"r": "1"}}
	for name, m := range stateMetas {
		raw, _ := json.Marshal(m)
		d.Meta[name] = string(raw)
	}
	type slot struct {
		key    string
		bucket int
		hist   bool
	}
	taken := map[slot]bool{}
	for line := range strings.SplitSeq(string(data), "\n") {
		field, value, _ := strings.Cut(line, "\t")
		key, bucket, hist := referenceSplitField(field)
		if s := (slot{key, bucket, hist}); !taken[s] {
			taken[s] = true
			d.Series[field] = value
		}
	}
	return d
}

// FuzzStateMatchesReference checks that Dump.State builds the state the
// reference does, from a dump as it is and from the dump decoded from its
// snapshot, whose strings share one buffer; the state must keep none of
// them.
func FuzzStateMatchesReference(f *testing.F) {
	for _, lines := range stateCases {
		f.Add([]byte(strings.Join(lines, "\n")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStateMatchesReference(t, fuzzDump(data))
	})
}

func checkStateMatchesReference(t *testing.T, d *aggregate.Dump) {
	t.Helper()
	want, wantErr := referenceState(d)
	got, gotErr := d.State()
	if diff := diffState(got, gotErr, want, wantErr); diff != "" {
		t.Fatalf("State differs from the reference: %s\nseries: %q", diff, d.Series)
	}

	msg, err := streams.SnapshotMsg("s", d, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := streams.DecodeSnapshot(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	want, wantErr = referenceState(decoded)
	got, gotErr = decoded.State()
	if diff := diffState(got, gotErr, want, wantErr); diff != "" {
		t.Fatalf("State of the decoded dump differs from the reference: %s\nseries: %q", diff, decoded.Series)
	}
	if s, ok := stateAliasesDump(got, decoded); ok {
		t.Fatalf("state string %q points into the dump", s)
	}
}

// stateAliasesDump returns a string of st that lies in the memory spanned
// by d's strings.
func stateAliasesDump(st *aggregate.State, d *aggregate.Dump) (string, bool) {
	if st == nil {
		return "", false
	}
	lo, hi := ^uintptr(0), uintptr(0)
	span := func(s string) {
		if s != "" {
			p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
			lo, hi = min(lo, p), max(hi, p+uintptr(len(s)))
		}
	}
	span(d.Node)
	for _, h := range []map[string]string{d.Marks, d.Meta, d.Series, d.Rejected} {
		for k, v := range h {
			span(k)
			span(v)
		}
	}
	all := []string{st.Node}
	for k := range st.Rejected {
		all = append(all, k)
	}
	for _, f := range st.Families {
		all = append(all, f.Name, f.Help)
		for _, s := range f.Series {
			all = append(all, s.Key)
			for _, l := range s.Labels {
				all = append(all, l.Name, l.Value)
			}
		}
	}
	for _, s := range all {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); s != "" && p >= lo && p < hi {
			return s, true
		}
	}
	return "", false
}

// stateCases are fields a state must skip, fail on, or read right, each
// case as fuzzDump reads it.
var stateCases = [][]string{
	{},
	{"c\t1", "c{a=\"1\"}\t2", "c{a=\"1\",b=\"\"}\t-0", "c{a=\"\\\"\\\\\\n|b1}\"}\t1e400", "c{a=\"1\",}\t3"},
	{"g\tNaN", "g{a=\"x\"}\t-Inf", "g{a=\"x\"}|b0\t1", "g|sum\t2"},
	{"h|b0\t1", "h|b1\t2", "h|b2\t3", "h|sum\t1.5", "h|b3\t9", "h\t1", "h{a=\"1\"}|b-0\t4", "h{a=\"1\"}|b+1\t5", "h{a=\"1\"}|b02\t6"},
	{"h{a=\"1\"}|sum\t1", "h{a=\"1\"}\t1", "h{a=\"x|b1\"}|b1\t1", "h2{a=\"1\"}|b1\t7", "h2|sum\t0", "c{a=\"2\"}\t1", "g\t2"},
	{"h{a=\"1\"}|b0\t1", "h{a=\"1\"}|b1\t-1"},
	{"c\tx"},
	{"undescribed{a=\"1\"}\t1", "undescribed\tnot a number", "c_total\t1"},
	{"undescribed{a=1}\t1"},
	{"c{a=\"1\"\t1"},
	{"c{a=\"1\"}x\t1"},
	{"h{a=\"1\"|b0\t1"},
	{"{}\t1", "\t2", "{a=\"1\"}\t3", "x|b1\t4", "x|b1|b1\t5"},
	{"c{a=\"\\\"\",b=\"\\\\\"}\t1", "c{a=\"\\x\"}\t2", "c{=\"1\"}\t3"},
}

// TestStateMatchesReference checks Dump.State on the bench workload, on
// awkward keys and values, and on stateCases.
func TestStateMatchesReference(t *testing.T) {
	checkStateMatchesReference(t, benchDump(5000))
	checkStateMatchesReference(t, awkwardDump())
	for _, lines := range stateCases {
		checkStateMatchesReference(t, fuzzDump([]byte(strings.Join(lines, "\n"))))
	}
}

// TestStateLabelsOwnMemory checks that the state's label slices, carved
// from shared ones, cannot be appended to over another series' labels.
func TestStateLabelsOwnMemory(t *testing.T) {
	st, err := benchDump(100).State()
	if err != nil {
		t.Fatal(err)
	}
	f := st.Families[0]
	first := bytes.Clone([]byte(fmt.Sprint(f.Series[1].Labels)))
	_ = append(f.Series[0].Labels, series.Label{Name: "x", Value: "y"})
	_ = append(f.Series[0].Counts, 1)
	if got := fmt.Sprint(f.Series[1].Labels); got != string(first) {
		t.Fatalf("appending to one series' labels changed the next: %s, was %s", got, first)
	}
}
