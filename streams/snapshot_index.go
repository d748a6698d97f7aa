package streams

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
)

// Indexed snapshots (docs/wire-format.md, "Family index"). A full or
// incremental snapshot's data is a sequence of zstd frames whose
// decompressed outputs, concatenated, are the snapshot's JSON, exactly as
// before; it starts with a zstd skippable frame holding an index of the
// others. Every zstd decoder skips the index and joins the frames, so a
// receiver that predates the index reads the same JSON. The frames are the
// JSON's head (everything before the series-hash fields), the series-hash
// fields grouped by metric family (small families share a frame, a large
// one spans several of about snapshotFrameTarget bytes of JSON), and the
// tail; a delta's
// tombstones are grouped the same way. The index names each frame's
// compressed length and the families it holds, so a reader that wants some
// families decompresses only their frames (DecodeSnapshotFamilies). Data
// without the index (every snapshot written before it) is decoded whole and
// filtered after.

// snapshotIndexMagic is the zstd skippable-frame magic number the index
// frame uses (any of 0x184D2A50..5F is skippable).
const snapshotIndexMagic = 0x184D2A5A

// snapshotIndexTag starts the index frame's payload: its format version.
const snapshotIndexTag = "jmix1"

// snapshotFrameTarget is the JSON a family frame holds before it is closed
// at the next family: large enough that the frames compress about as
// well as one, small enough that one family's frame decodes quickly.
const snapshotFrameTarget = 256 << 10

// maxIndexBytes bounds an index frame's payload a reader accepts.
const maxIndexBytes = 64 << 20

// snapshotIndex is the index frame's payload.
type snapshotIndex struct {
	Frames []indexFrame `json:"frames"`
}

// indexFrame is one frame: its compressed length and the families whose
// fields it holds (none for a head or tail frame, which every reader
// decodes).
type indexFrame struct {
	Len      int      `json:"len"`
	Families []string `json:"families,omitempty"`
}

// framedWriter compresses a snapshot's JSON frame by frame.
type framedWriter struct {
	raw    []byte // the current frame's JSON
	out    []byte // the frames so far, compressed
	index  snapshotIndex
	fams   []string // families of the current frame
	family string   // the family being written
	n      int      // fields written in the current container
}

// flush closes the current frame, if it holds anything.
func (w *framedWriter) flush() {
	if len(w.raw) == 0 {
		return
	}
	before := len(w.out)
	w.out = zenc.EncodeAll(w.raw, w.out)
	w.index.Frames = append(w.index.Frames, indexFrame{Len: len(w.out) - before, Families: w.fams})
	w.raw, w.fams = w.raw[:0], nil
}

// fixed appends JSON every reader decodes (a head or tail), in a frame of
// its own.
func (w *framedWriter) fixed(s string) {
	if len(w.fams) > 0 {
		w.flush()
	}
	w.raw = append(w.raw, s...)
	w.n = 0
}

// field starts a member of the container open (a series-hash field or a
// tombstone) of family fam, in a family frame, and returns the JSON to
// append it to; done takes it back.
func (w *framedWriter) field(fam string) []byte {
	switch {
	case len(w.fams) == 0:
		w.flush() // a head
	case len(w.raw) >= snapshotFrameTarget, fam != w.family && len(w.raw) >= snapshotFrameTarget/4:
		// A large family spans frames; small ones share one.
		w.flush()
	}
	if len(w.fams) == 0 || fam != w.family {
		w.fams = append(w.fams, fam)
		w.family = fam
	}
	if w.n > 0 {
		w.raw = append(w.raw, ',')
	}
	w.n++
	return w.raw
}

func (w *framedWriter) done(b []byte) { w.raw = b }

// finish returns the data: the index frame, then the frames.
func (w *framedWriter) finish() []byte {
	w.flush()
	payload, _ := json.Marshal(w.index) // plain values always marshal
	data := make([]byte, 8, 8+len(snapshotIndexTag)+len(payload)+len(w.out))
	binary.LittleEndian.PutUint32(data[0:], snapshotIndexMagic)
	binary.LittleEndian.PutUint32(data[4:], uint32(len(snapshotIndexTag)+len(payload)))
	data = append(data, snapshotIndexTag...)
	data = append(data, payload...)
	return append(data, w.out...)
}

// FamilyOf is the metric family of a series-hash field: the series key's
// metric name, before its labels or a histogram field's suffix.
func FamilyOf(field string) string {
	if i := strings.IndexAny(field, "{|"); i >= 0 {
		return field[:i]
	}
	return field
}

// sortByFamily sorts fields by family, then as strings, so each family's
// fields are contiguous.
func sortByFamily(fields []string) {
	slices.SortFunc(fields, func(a, b string) int {
		if c := strings.Compare(FamilyOf(a), FamilyOf(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
}

// readIndex splits data into its index and frames; ok is false for data
// without an index (decoded whole).
func readIndex(data []byte) (idx snapshotIndex, frames []byte, ok bool, err error) {
	if len(data) < 8 || binary.LittleEndian.Uint32(data) != snapshotIndexMagic {
		return idx, data, false, nil
	}
	n := int64(binary.LittleEndian.Uint32(data[4:]))
	if n > maxIndexBytes || n > int64(len(data)-8) || n < int64(len(snapshotIndexTag)) {
		return idx, nil, false, fmt.Errorf("snapshot index of %d bytes in %d bytes of data", n, len(data))
	}
	payload := data[8 : 8+n]
	if string(payload[:len(snapshotIndexTag)]) != snapshotIndexTag {
		// Another skippable frame, or a newer index: every zstd decoder
		// skips it, so the whole is readable.
		return idx, data, false, nil
	}
	if err := json.Unmarshal(payload[len(snapshotIndexTag):], &idx); err != nil {
		return idx, nil, false, fmt.Errorf("snapshot index: %w", err)
	}
	frames = data[8+n:]
	total := 0
	for _, f := range idx.Frames {
		if f.Len <= 0 || f.Len > len(frames)-total {
			return idx, nil, false, fmt.Errorf("snapshot index: frame of %d bytes past the data's %d", f.Len, len(frames))
		}
		total += f.Len
	}
	if total != len(frames) {
		return idx, nil, false, fmt.Errorf("snapshot index: frames of %d bytes, data of %d", total, len(frames))
	}
	return idx, frames, true, nil
}

// reserve returns b with room for n more bytes. The room is made, not
// written: pages fresh from the OS stay untouched until decoded into.
func reserve(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	out := make([]byte, len(b), len(b)+n)
	copy(out, b)
	return out
}

// allFamilies selects every family's frames.
func allFamilies(string) bool { return true }

// decodeFrames decompresses the frames of data that match selects (head
// and tail frames always), within lim, into the JSON they make: the
// snapshot's JSON less the other families' fields. Data without an index is
// decompressed whole.
func decodeFrames(data []byte, lim SnapshotLimits, match func(family string) bool, dst []byte) ([]byte, error) {
	zd, err := zdecFor(lim.MaxBytes)
	if err != nil {
		return nil, err
	}
	idx, frames, ok, err := readIndex(data)
	if err != nil {
		return nil, err
	}
	tooLarge := func(err error) error {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return fmt.Errorf("decompress snapshot: over %d bytes: %w", lim.MaxBytes, ErrSnapshotTooLarge)
		}
		return fmt.Errorf("decompress snapshot: %w", err)
	}
	if !ok {
		raw, err := zd.DecodeAll(data, dst)
		if err != nil {
			return nil, tooLarge(err)
		}
		return raw, nil
	}
	// The decoder grows dst to fit each frame exactly, which over a few
	// hundred frames copies what came before every time (quadratic: 40 GB
	// allocated for a snapshot of 86 MB). Room is made here instead, from
	// the sizes the frames' headers declare: a declared total past lim is
	// refused before anything is allocated, at most 32 bytes per
	// compressed byte are made at once (a header may lie), and a frame
	// that needs more than is left doubles the room.
	selected := func(f indexFrame) bool { return len(f.Families) == 0 || slices.ContainsFunc(f.Families, match) }
	sizes := make([]int, len(idx.Frames))
	need, off := int64(0), 0
	for i, f := range idx.Frames {
		if frame := frames[off : off+f.Len]; selected(f) {
			var h zstd.Header
			if h.Decode(frame) == nil && h.HasFCS {
				if h.FrameContentSize > uint64(lim.MaxBytes-need) {
					return nil, fmt.Errorf("decompress snapshot: frames declare over %d bytes: %w", lim.MaxBytes, ErrSnapshotTooLarge)
				}
				sizes[i] = int(h.FrameContentSize)
				need += int64(sizes[i])
			}
		}
		off += f.Len
	}
	raw := reserve(dst, int(min(need, 32*int64(len(data)))))
	off = 0
	for i, f := range idx.Frames {
		frame := frames[off : off+f.Len]
		off += f.Len
		if !selected(f) {
			continue
		}
		if cap(raw)-len(raw) < sizes[i] {
			raw = reserve(raw, max(sizes[i], len(raw)))
		}
		start := len(raw)
		if raw, err = zd.DecodeAll(frame, raw); err != nil {
			return nil, tooLarge(err)
		}
		if int64(len(raw)) > lim.MaxBytes {
			return nil, fmt.Errorf("decompress snapshot: over %d bytes: %w", lim.MaxBytes, ErrSnapshotTooLarge)
		}
		if len(f.Families) == 0 || start == len(raw) {
			continue
		}
		// A family frame's fields follow a comma unless they are its
		// container's first: fix the comma for the frames left out.
		first := start == 0 || raw[start-1] == '{' || raw[start-1] == '['
		switch {
		case first && raw[start] == ',':
			raw = append(raw[:start], raw[start+1:]...)
		case !first && raw[start] != ',':
			raw = slices.Insert(raw, start, ',')
		}
	}
	return raw, nil
}

// keepFamilies drops from m the fields whose family match refuses.
func keepFamilies(m map[string]string, match func(string) bool) {
	for k := range m {
		if !match(FamilyOf(k)) {
			delete(m, k)
		}
	}
}

// DecodeSnapshotFamilies decodes a full snapshot's data within lim, with
// only the series-hash fields of the families match selects: its marks,
// metadata and rejections whole. An indexed snapshot decompresses only the
// frames holding those families; one without an index is decoded whole and
// filtered.
func DecodeSnapshotFamilies(data []byte, lim SnapshotLimits, match func(family string) bool) (*aggregate.Dump, error) {
	lim = lim.withDefaults()
	d := snapshotDecoders.Get().(*snapshotDecoder)
	defer snapshotDecoders.Put(d)
	raw, err := decodeFrames(data, lim, match, d.raw[:0])
	if err != nil {
		d.raw = nil
		return nil, err
	}
	d.raw = raw[:0]
	d.maxFields = lim.MaxFields
	dump, err := decodeSnapshotJSON(d, raw)
	if err != nil {
		return nil, err
	}
	keepFamilies(dump.Series, match)
	return dump, nil
}

// DecodeSnapshotDeltaFamilies is DecodeSnapshotDelta with only the
// series-hash fields and tombstones of the families match selects.
func DecodeSnapshotDeltaFamilies(data []byte, lim SnapshotLimits, match func(family string) bool) (*SnapshotDelta, error) {
	lim = lim.withDefaults()
	raw, err := decodeFrames(data, lim, match, nil)
	if err != nil {
		return nil, err
	}
	d, err := parseSnapshotDelta(raw, lim)
	if err != nil {
		return nil, err
	}
	keepFamilies(d.Series, match)
	d.Deleted = slices.DeleteFunc(d.Deleted, func(k string) bool { return !match(FamilyOf(k)) })
	return d, nil
}

// DecodeSnapshotChainFamilies is DecodeSnapshotChain with only the
// families match selects.
func DecodeSnapshotChainFamilies(full []byte, deltas [][]byte, lim SnapshotLimits, match func(family string) bool) (*aggregate.Dump, error) {
	d, err := DecodeSnapshotFamilies(full, lim, match)
	if err != nil {
		return nil, err
	}
	for i, b := range deltas {
		delta, err := DecodeSnapshotDeltaFamilies(b, lim, match)
		if err != nil {
			return nil, fmt.Errorf("delta %d of %d: %w", i+1, len(deltas), err)
		}
		delta.ApplyTo(d)
	}
	return d, nil
}

// SnapshotIndexed reports whether a snapshot's data carries the family
// index.
func SnapshotIndexed(data []byte) bool {
	_, _, ok, err := readIndex(data)
	return ok && err == nil
}
