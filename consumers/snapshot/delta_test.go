package snapshot

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

func testDump(series map[string]string) *aggregate.Dump {
	return &aggregate.Dump{Node: "n1", Marks: map[string]string{"stream": "1"},
		Meta: map[string]string{
			"c_total": `{"type":"counter"}`,
			"lat":     `{"type":"histogram","buckets":[0.1,1]}`,
		}, Series: maps.Clone(series)}
}

// sources are the two a snapshot is built from: the aggregate held in
// memory and a dump read from Redis.
func sources(t *testing.T, fields map[string]string) map[string]source {
	d := testDump(fields)
	st, err := d.State()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]source{"held": {held: &aggregate.Held{State: st}}, "dump": {dump: d}}
}

// TestTrackerDiff: a delta names exactly the fields set or changed since
// the last snapshot and the fields gone, spelled as Redis holds them, from
// either source.
func TestTrackerDiff(t *testing.T) {
	v1 := map[string]string{
		`c_total{a="x"}`: "1", `c_total{a="y"}`: "2", "c_total": "3",
		`lat{op="r"}|b0`: "1", `lat{op="r"}|b2`: "4", `lat{op="r"}|sum`: "2.5",
		`lat{op="w"}|b1`: "1", `lat{op="w"}|sum`: "0.5",
	}
	v2 := map[string]string{
		`c_total{a="x"}`: "1", `c_total{a="y"}`: "5", `c_total{a="z"}`: "1",
		`lat{op="r"}|b0`: "1", `lat{op="r"}|b1`: "1", `lat{op="r"}|b2`: "4", `lat{op="r"}|sum`: "3",
	}
	wantSet := map[string]string{`c_total{a="y"}`: "5", `c_total{a="z"}`: "1", `lat{op="r"}|b1`: "1", `lat{op="r"}|sum`: "3"}
	wantGone := []string{"c_total", `lat{op="w"}|b1`, `lat{op="w"}|sum`}
	for name, first := range sources(t, v1) {
		t.Run(name, func(t *testing.T) {
			var tr tracker
			tr.reset(first)
			d := &streams.SnapshotDelta{}
			tr.diff(sources(t, v2)[name], d)
			slices.Sort(d.Deleted)
			if !maps.Equal(d.Series, wantSet) || !slices.Equal(d.Deleted, wantGone) {
				t.Errorf("delta sets %v, deletes %q; want %v, %q", d.Series, d.Deleted, wantSet, wantGone)
			}
			// Nothing changed since: an empty delta.
			d = &streams.SnapshotDelta{}
			tr.diff(sources(t, v2)[name], d)
			if len(d.Series) != 0 || len(d.Deleted) != 0 {
				t.Errorf("unchanged: delta sets %v, deletes %q", d.Series, d.Deleted)
			}
		})
	}
}

// TestTrackerKeepsNoKeyCopy: the tracker holds a held aggregate's series
// by the state's own key strings, so a wide series (16 labels of 256 B)
// costs it a map entry and its value, not a second copy of its key.
func TestTrackerKeepsNoKeyCopy(t *testing.T) {
	const n = 2000
	fields := map[string]string{}
	for i := range n {
		var b strings.Builder
		b.WriteString("c_total{")
		for j := range 16 {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "l%02d=\"%0256d\"", j, i*16+j)
		}
		b.WriteString("}")
		fields[b.String()] = fmt.Sprint(i)
	}
	st, err := testDump(fields).State()
	if err != nil {
		t.Fatal(err)
	}
	fields = nil
	src := source{held: &aggregate.Held{State: st}}
	before := heapAfterGC()
	var tr tracker
	tr.reset(src)
	per := float64(heapAfterGC()-before) / n
	runtime.KeepAlive(&tr)
	runtime.KeepAlive(st)
	t.Logf("tracker: %.0f B per wide series", per)
	if per > 256 {
		t.Errorf("the tracker costs %.0f B per series of %d key bytes: it copies keys", per, len(st.Families[0].Series[0].Key))
	}
}

func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
