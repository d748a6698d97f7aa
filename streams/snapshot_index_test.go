package streams_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// indexDump is a dump of several families, one of them far larger than a
// frame, whose names sort differently from their keys ("a", "a_b", "a:c").
func indexDump(t *testing.T) *aggregate.Dump {
	t.Helper()
	d := &aggregate.Dump{Node: "n-1", Marks: map[string]string{"stream": "9"}, Rejected: map[string]string{"invalid_value": "2"},
		Meta: map[string]string{}, Series: map[string]string{}}
	for _, m := range []struct{ name, kind string }{{"a", "counter"}, {"a_b", "gauge"}, {"a:c", "gauge"}, {"big", "counter"}, {"h", "histogram"}} {
		meta := map[string]any{"type": m.kind}
		if m.kind == "histogram" {
			meta["buckets"] = []float64{1}
		}
		b, _ := json.Marshal(meta)
		d.Meta[m.name] = string(b)
	}
	d.Series["a"] = "1"
	d.Series[`a{x="|{"}`] = "2"
	d.Series[`a_b{x="1"}`] = "3"
	d.Series["a:c"] = "4"
	for i := range 20000 {
		d.Series[fmt.Sprintf(`big{i="%d",pad="%032d"}`, i, i)] = fmt.Sprint(i)
	}
	d.Series[`h{x="1"}|b0`] = "1"
	d.Series[`h{x="1"}|b1`] = "2"
	d.Series[`h{x="1"}|sum`] = "0.5"
	d.Series[`h|sum`] = "0"
	return d
}

func filtered(m map[string]string, names ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if slices.Contains(names, streams.FamilyOf(k)) {
			out[k] = v
		}
	}
	return out
}

// A full snapshot decoded for some families holds exactly their fields,
// with its marks, metadata and rejections whole, from indexed data and from
// data without an index (a snapshot written before the index) alike; the
// index is invisible to a reader that decodes the whole.
func TestDecodeSnapshotFamilies(t *testing.T) {
	d := indexDump(t)
	msg, err := streams.SnapshotMsg("jetmetrics.snap.n-1", d, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !streams.SnapshotIndexed(msg.Data) {
		t.Fatal("SnapshotMsg wrote no index")
	}
	whole, err := streams.DecodeSnapshot(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(whole.Series, d.Series) || !maps.Equal(whole.Meta, d.Meta) || !maps.Equal(whole.Rejected, d.Rejected) {
		t.Fatal("the indexed snapshot decodes whole to another dump")
	}
	// Without the index: the JSON compressed in one frame, as before.
	raw, _ := json.Marshal(d)
	enc, _ := zstd.NewWriter(nil)
	old := enc.EncodeAll(raw, nil)
	if streams.SnapshotIndexed(old) {
		t.Fatal("a plain zstd frame taken for an index")
	}
	for _, names := range [][]string{{"a"}, {"a_b", "h"}, {"big"}, {"none"}, {"a", "a_b", "a:c", "big", "h"}} {
		match := func(f string) bool { return slices.Contains(names, f) }
		for form, data := range map[string][]byte{"indexed": msg.Data, "unindexed": old} {
			got, err := streams.DecodeSnapshotFamilies(data, streams.SnapshotLimits{}, match)
			if err != nil {
				t.Fatalf("%s %v: %v", form, names, err)
			}
			if want := filtered(d.Series, names...); !maps.Equal(got.Series, want) {
				t.Errorf("%s %v: %d fields, want %d", form, names, len(got.Series), len(want))
			}
			if got.Node != d.Node || !maps.Equal(got.Marks, d.Marks) || !maps.Equal(got.Meta, d.Meta) || !maps.Equal(got.Rejected, d.Rejected) {
				t.Errorf("%s %v: head %+v", form, names, got)
			}
		}
	}
}

// A filtered decode never decompresses another family's frame: with the
// big family's frames damaged, the others still decode, and the whole does
// not.
func TestDecodeSnapshotFamiliesSkipsFrames(t *testing.T) {
	d := indexDump(t)
	msg, err := streams.SnapshotMsg("jetmetrics.snap.n-1", d, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	frames, fams, ok := streams.SnapshotFrames(msg.Data)
	if !ok {
		t.Fatal("no index")
	}
	bigFrames := 0
	for i, f := range fams {
		if slices.Equal(f, []string{"big"}) {
			bigFrames++
			for j := range frames[i][4:] { // past the zstd magic
				frames[i][4+j] ^= 0x5a
			}
		}
	}
	if bigFrames < 2 {
		t.Fatalf("the big family is in %d frames of its own, want several: %v", bigFrames, fams)
	}
	if _, err := streams.DecodeSnapshot(msg.Data); err == nil {
		t.Fatal("damaged frames decoded whole")
	}
	got, err := streams.DecodeSnapshotFamilies(msg.Data, streams.SnapshotLimits{}, func(f string) bool { return f == "h" || f == "a" })
	if err != nil {
		t.Fatal(err)
	}
	if want := filtered(d.Series, "h", "a"); !maps.Equal(got.Series, want) {
		t.Errorf("%v, want %v", got.Series, want)
	}
}

// A delta decoded for some families holds their fields and tombstones
// only; decoded whole it is the delta written, indexed or not.
func TestDecodeSnapshotDeltaFamilies(t *testing.T) {
	d := indexDump(t)
	delta := &streams.SnapshotDelta{Marks: d.Marks, Meta: d.Meta, Rejected: d.Rejected, Series: map[string]string{},
		Deleted: []string{`a{x="gone"}`, `big{i="x"}`, `h{x="2"}|sum`, "a_b"}}
	for k, v := range d.Series {
		if len(delta.Series) < 3000 || streams.FamilyOf(k) != "big" {
			delta.Series[k] = v
		}
	}
	msg, err := streams.SnapshotDeltaMsg("jetmetrics.snap.n-1", "n-1", 10, streams.DeltaBase{Version: 9}, delta, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(delta)
	enc, _ := zstd.NewWriter(nil)
	for form, data := range map[string][]byte{"indexed": msg.Data, "unindexed": enc.EncodeAll(raw, nil)} {
		whole, err := streams.DecodeSnapshotDelta(data, streams.SnapshotLimits{})
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(whole.Series, delta.Series) || !slices.Equal(slices.Sorted(slices.Values(whole.Deleted)), slices.Sorted(slices.Values(delta.Deleted))) || !maps.Equal(whole.Rejected, delta.Rejected) {
			t.Fatalf("%s: decodes whole to another delta", form)
		}
		for _, names := range [][]string{{"a"}, {"h", "a_b"}, {"big"}, {"none"}} {
			got, err := streams.DecodeSnapshotDeltaFamilies(data, streams.SnapshotLimits{}, func(f string) bool { return slices.Contains(names, f) })
			if err != nil {
				t.Fatal(err)
			}
			if want := filtered(delta.Series, names...); !maps.Equal(got.Series, want) {
				t.Errorf("%s %v: %d fields, want %d", form, names, len(got.Series), len(want))
			}
			var wantDel []string
			for _, k := range delta.Deleted {
				if slices.Contains(names, streams.FamilyOf(k)) {
					wantDel = append(wantDel, k)
				}
			}
			if !slices.Equal(slices.Sorted(slices.Values(got.Deleted)), slices.Sorted(slices.Values(wantDel))) {
				t.Errorf("%s %v: deleted %v, want %v", form, names, got.Deleted, wantDel)
			}
			if !maps.Equal(got.Marks, delta.Marks) || !maps.Equal(got.Meta, delta.Meta) {
				t.Errorf("%s %v: head differs", form, names)
			}
		}
	}
}

// Decoding a snapshot of many frames allocates about its JSON once, not
// once per frame: the decoder, given too little room, grows its output to
// fit each frame exactly, copying all the frames before it (40 GB
// allocated to decode a 86 MB snapshot of 340 frames).
func TestDecodeManyFramesAllocatesOnce(t *testing.T) {
	d := &aggregate.Dump{Node: "n-1", Marks: map[string]string{"stream": "9"}, Meta: map[string]string{"big": `{"type":"counter"}`}, Series: map[string]string{}}
	for i := range 60000 {
		d.Series[fmt.Sprintf(`big{i="%d",pad="%0128d"}`, i, i)] = fmt.Sprint(i)
	}
	msg, err := streams.SnapshotMsg("jetmetrics.snap.n-1", d, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	frames, _, ok := streams.SnapshotFrames(msg.Data)
	if !ok || len(frames) < 20 {
		t.Fatalf("%d frames, want many", len(frames))
	}
	jsonBytes := 0
	for k, v := range d.Series {
		jsonBytes += len(k) + len(v)
	}
	for _, decode := range []struct {
		name string
		fn   func() (*aggregate.Dump, error)
	}{
		{"whole", func() (*aggregate.Dump, error) { return streams.DecodeSnapshot(msg.Data) }},
		{"families", func() (*aggregate.Dump, error) {
			return streams.DecodeSnapshotFamilies(msg.Data, streams.SnapshotLimits{}, func(string) bool { return true })
		}},
	} {
		var before, after runtime.MemStats
		runtime.GC() // two collections empty the decoders' pool, and its buffer
		runtime.GC()
		runtime.ReadMemStats(&before)
		got, err := decode.fn()
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Series) != len(d.Series) {
			t.Fatalf("%s: %d series, want %d", decode.name, len(got.Series), len(d.Series))
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d frames, %d JSON bytes: %.1f MB allocated", decode.name, len(frames), jsonBytes, float64(alloc)/1e6)
		// The JSON, the dump's strings (one buffer) and its map: a few
		// times the JSON, never one copy per frame.
		if limit := uint64(6 * jsonBytes); alloc > limit {
			t.Errorf("%s: decoding %d frames of %d JSON bytes allocated %d bytes, over %d", decode.name, len(frames), jsonBytes, alloc, limit)
		}
	}
}

// A frame header may declare any size: a message of a few bytes whose
// frames declare more than the limit is refused before anything is
// allocated for them, not after reserving the limit.
func TestDeclaredFrameSizeBeyondLimit(t *testing.T) {
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0} // magic; single segment, 8-byte content size
	frame = binary.LittleEndian.AppendUint64(frame, 1<<40)
	frame = append(frame, 0x01, 0x00, 0x00) // last block, raw, empty
	payload := fmt.Appendf([]byte("jmix1"), `{"frames":[{"len":%d}]}`, len(frame))
	msg := binary.LittleEndian.AppendUint32(nil, 0x184D2A5A)
	msg = binary.LittleEndian.AppendUint32(msg, uint32(len(payload)))
	msg = append(append(msg, payload...), frame...)
	for _, decode := range []struct {
		name string
		fn   func() error
	}{
		{"snapshot", func() error { _, err := streams.DecodeSnapshot(msg); return err }},
		{"families", func() error {
			_, err := streams.DecodeSnapshotFamilies(msg, streams.SnapshotLimits{}, func(string) bool { return true })
			return err
		}},
		{"delta", func() error { _, err := streams.DecodeSnapshotDelta(msg, streams.SnapshotLimits{}); return err }},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := decode.fn()
		runtime.ReadMemStats(&after)
		if !errors.Is(err, streams.ErrSnapshotTooLarge) {
			t.Errorf("%s of %d bytes declaring 1 TiB: %v, want ErrSnapshotTooLarge", decode.name, len(msg), err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%s of %d bytes declaring 1 TiB allocated %d bytes", decode.name, len(msg), alloc)
		}
	}
}
