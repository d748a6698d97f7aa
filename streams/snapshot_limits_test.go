package streams_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/jetmetrics/jetmetrics/streams"
)

// compress returns raw as one zstd frame; declared says whether the frame
// header carries its size (EncodeAll) or not (a stream).
func compress(t *testing.T, raw []byte, declared bool) []byte {
	t.Helper()
	if declared {
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		return enc.EncodeAll(raw, nil)
	}
	var b bytes.Buffer
	enc, err := zstd.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// snapshotJSON is a snapshot of n series fields; variant "Series" names
// the field as encoding/json matches it but the scanner does not, so the
// reference decodes it.
func snapshotJSON(n int, field string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"node":"n1","marks":{"stream":"1"},"%s":{`, field)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"s%d":"%d"`, i, i)
	}
	b.WriteString("}}")
	return []byte(b.String())
}

// A snapshot is refused as too large when it decompresses past MaxBytes,
// whether or not its frame declares its size, and when its maps hold more
// than MaxFields fields, whichever decoder reads it; one within both is
// decoded.
func TestDecodeSnapshotLimits(t *testing.T) {
	lim := streams.SnapshotLimits{MaxBytes: 64 << 10, MaxFields: 100}
	tests := []struct {
		name     string
		raw      []byte
		declared bool
		tooLarge bool
	}{
		{"within", snapshotJSON(50, "series"), true, false},
		{"within, reference", snapshotJSON(50, "Series"), false, false},
		{"fields over, scanner", snapshotJSON(101, "series"), true, true},
		{"fields over, reference", snapshotJSON(101, "Series"), true, true},
		{"bytes over, declared", bytes.Repeat([]byte{' '}, 1<<20), true, true},
		{"bytes over, undeclared", bytes.Repeat([]byte{' '}, 1<<20), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := streams.DecodeSnapshotLimited(compress(t, tc.raw, tc.declared), lim)
			if got := errors.Is(err, streams.ErrSnapshotTooLarge); got != tc.tooLarge {
				t.Fatalf("too large: %v (%v), want %v", got, err, tc.tooLarge)
			}
			if !tc.tooLarge && (err != nil || d.Node != "n1") {
				t.Fatalf("decoded %+v, %v", d, err)
			}
		})
	}
}
