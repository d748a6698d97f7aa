package aggregator

import (
	"context"
	"slices"
	"testing"

	"github.com/jetmetrics/jetmetrics/streams"
)

// A message whose entries are rejected for several reasons makes one dead
// letter per reason, in the order each first occurs, each listing the
// entries rejected for it; so each letter's reason and entry count are
// what jetmetrics_rejected_total counted in Redis.
func TestDeadLetterPerReason(t *testing.T) {
	f := newFolder(t)
	f.batch(1, `{"name":"g","type":"gauge","value":1}`)
	letters := f.batch(2,
		`{"name":"ok_total","type":"counter","value":1}`,
		`{"name":"9x","type":"counter","value":1}`,
		`{"name":"x_total","type":"counter","value":"5"}`,
		`{"name":"y","type":"gauge","labels":{"code":200},"value":1}`,
		`{"name":"go_x","type":"gauge","value":1}`,
		`{"name":"g","type":"counter","value":1}`,
		`{"name":"z_total","type":"counter","value":-1}`,
	)
	want := []struct {
		reason  streams.Reason
		entries []int
	}{
		{streams.ReasonMetricName, []int{1, 4}},
		{streams.ReasonValue, []int{2, 6}},
		{streams.ReasonLabelValue, []int{3}},
		{streams.ReasonTypeConflict, []int{5}},
	}
	if len(letters) != len(want) {
		t.Fatalf("%d dead letters, want %d: %+v", len(letters), len(want), letters)
	}
	for i, w := range want {
		l := letters[i]
		if l.rej.Reason != w.reason || !slices.Equal(l.entries, w.entries) || l.in.seq != 2 {
			t.Errorf("letter %d: seq %d reason %s entries %v, want seq 2 %s %v", i, l.in.seq, l.rej.Reason, l.entries, w.reason, w.entries)
		}
	}
	got, err := f.store.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if n := got.Rejected[string(w.reason)]; n != uint64(len(w.entries)) {
			t.Errorf("rejected{%s} = %d, want %d as its letter lists", w.reason, n, len(w.entries))
		}
	}
}

// The entry list fits a bounded header, whatever the number of entries.
func TestEntryList(t *testing.T) {
	for _, tc := range []struct {
		entries []int
		limit   int
		want    string
	}{
		{[]int{3}, 10, "3"},
		{[]int{1, 2, 30}, 10, "1,2,30"},
		{[]int{1, 2, 30, 400, 5000}, 10, "1,2,30,400"},
		{[]int{123456789012}, 10, ""},
	} {
		if got := entryList(tc.entries, tc.limit); got != tc.want {
			t.Errorf("entryList(%v, %d) = %q, want %q", tc.entries, tc.limit, got, tc.want)
		}
	}
}
