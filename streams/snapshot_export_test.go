package streams

import "github.com/jetmetrics/jetmetrics/pkg/aggregate"

// DecodeSnapshotReference exposes the encoding/json snapshot decoder that
// defines DecodeSnapshot's outcome, for tests to compare against.
var DecodeSnapshotReference = decodeSnapshotReference

// DecodeSnapshotJSON is DecodeSnapshot on an uncompressed message.
func DecodeSnapshotJSON(raw []byte) (*aggregate.Dump, error) {
	return decodeSnapshotJSON(new(snapshotDecoder), raw)
}

// DecodeSnapshotScanned runs only the scanner on raw; decided is false
// where DecodeSnapshot would ask the reference.
func DecodeSnapshotScanned(raw []byte) (d *aggregate.Dump, decided bool) {
	dec := new(snapshotDecoder)
	d, decided = dec.decode(raw)
	dec.reset()
	return d, decided
}

// SnapshotFrames returns the compressed frames of indexed data and the
// families each holds (none for a head or tail frame).
func SnapshotFrames(data []byte) (frames [][]byte, families [][]string, ok bool) {
	idx, rest, ok, err := readIndex(data)
	if !ok || err != nil {
		return nil, nil, false
	}
	off := 0
	for _, f := range idx.Frames {
		frames = append(frames, rest[off:off+f.Len])
		families = append(families, f.Families)
		off += f.Len
	}
	return frames, families, true
}
