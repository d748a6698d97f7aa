package series_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/jetmetrics/jetmetrics/pkg/series"
)

func TestKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels []series.Label
		want   string
	}{
		{"up", nil, "up"},
		{"http_requests_total", []series.Label{{"code", "200"}, {"method", "GET"}}, `http_requests_total{code="200",method="GET"}`},
		{"x", []series.Label{{"a", `quote " back \ nl` + "\n" + `|b3}`}}, `x{a="quote \" back \\ nl\n|b3}"}`},
		{"x", []series.Label{{"a", ""}}, `x{a=""}`},
		{"ns:sub_x", []series.Label{{"ü", "日本"}}, `ns:sub_x{ü="日本"}`},
	} {
		got := series.Key(tc.name, tc.labels)
		if got != tc.want {
			t.Errorf("Key(%q, %v) = %s, want %s", tc.name, tc.labels, got, tc.want)
		}
		name, labels, err := series.ParseKey(got, nil)
		if err != nil {
			t.Fatalf("ParseKey(%s): %v", got, err)
		}
		if name != tc.name || !slices.Equal(labels, tc.labels) {
			t.Errorf("ParseKey(%s) = %q %v, want %q %v", got, name, labels, tc.name, tc.labels)
		}
	}
}

func TestParseKeyRejectsMalformed(t *testing.T) {
	for _, key := range []string{`x{`, `x{a}`, `x{a="b}`, `x{a="b"`, `x{a="b"c="d"}`, `x{="b"}`} {
		if _, _, err := series.ParseKey(key, nil); !errors.Is(err, series.ErrKey) {
			t.Errorf("ParseKey(%q) error = %v, want ErrKey", key, err)
		}
	}
}

func TestLimits(t *testing.T) {
	var l series.Limits
	for _, tc := range []struct {
		labels []series.Label
		want   error
	}{
		{[]series.Label{{"a", "b"}}, nil},
		{[]series.Label{{"node", "b"}}, series.ErrReservedLabel},
		{[]series.Label{{"le", "b"}}, series.ErrReservedLabel},
		{[]series.Label{{"__name__", "b"}}, series.ErrReservedLabel},
		{[]series.Label{{"1a", "b"}}, series.ErrLabelName},
		{[]series.Label{{"a-b", "b"}}, series.ErrLabelName},
		{[]series.Label{{"a", "b"}, {"a", "c"}}, series.ErrDuplicate},
		{[]series.Label{{"a", strings.Repeat("x", 257)}}, series.ErrLongValue},
		{[]series.Label{{"a", "\xff"}}, series.ErrLabelValue},
		{manyLabels(17), series.ErrTooManyLabels},
		{manyLabels(16), nil},
	} {
		err := l.CheckLabels(tc.labels)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("CheckLabels(%v) = %v, want %v", tc.labels, err, tc.want)
		}
	}
	for name, ok := range map[string]bool{"a": true, "a:b_c9": true, "_x": true, "9a": false, "": false, "a-b": false, strings.Repeat("a", 201): false} {
		if err := l.CheckMetricName(name); (err == nil) != ok {
			t.Errorf("CheckMetricName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func manyLabels(n int) []series.Label {
	out := make([]series.Label, n)
	for i := range out {
		out[i] = series.Label{Name: "x" + string(rune('a'+i)), Value: "v"}
	}
	return out
}

// FuzzKey checks that every valid series survives Key then ParseKey.
func FuzzKey(f *testing.F) {
	f.Add("m", "a", "b", "c", "d")
	f.Add("m", "a", `"\`, "c", "\n}")
	f.Add("m_total", "a", "|b1", "z", "")
	f.Fuzz(func(t *testing.T, name, l1, v1, l2, v2 string) {
		labels := []series.Label{{l1, v1}, {l2, v2}}
		var lim series.Limits
		if lim.CheckMetricName(name) != nil || lim.CheckLabels(labels) != nil {
			return
		}
		series.SortLabels(labels)
		key := series.Key(name, labels)
		gotName, got, err := series.ParseKey(key, nil)
		if err != nil {
			t.Fatalf("ParseKey(%q): %v", key, err)
		}
		if gotName != name || !slices.Equal(got, labels) {
			t.Fatalf("round trip of %q %v gave %q %v", name, labels, gotName, got)
		}
	})
}

// TestParseKeyValuesShareKey checks that labels parsed from a key hold no
// bytes of their own unless escaped: a held series costs its label bytes
// once (docs/performance.md, "Memory per series").
func TestParseKeyValuesShareKey(t *testing.T) {
	key := series.Key("x", []series.Label{{"a", strings.Repeat("v", 256)}, {"b", `say "hi"`}, {"c", "plain"}})
	_, labels, err := series.ParseKey(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	within := func(s string) bool {
		p, k := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(key)))
		return p >= k && p+uintptr(len(s)) <= k+uintptr(len(key))
	}
	for _, l := range labels {
		if !within(l.Name) {
			t.Errorf("label name %q is a copy, not a substring of the key", l.Name)
		}
		if escaped := l.Name == "b"; within(l.Value) == escaped {
			t.Errorf("label %s=%q: substring of the key %v, want %v", l.Name, l.Value, !escaped, escaped)
		}
	}
	if labels[1].Value != `say "hi"` {
		t.Errorf("escaped value %q, want %q", labels[1].Value, `say "hi"`)
	}
}
