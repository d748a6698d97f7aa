package streams

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
)

// decodeSnapshotReference is the snapshot decoder written with
// encoding/json. It defines DecodeSnapshot's outcome for every input: the
// scanner below only decides snapshots it is certain it reads the same way,
// and hands everything else to this function.
func decodeSnapshotReference(raw []byte) (*aggregate.Dump, error) {
	var d aggregate.Dump
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w", err)
	}
	return &d, nil
}

// decodeSnapshotJSON decodes a decompressed snapshot: with the scanner when
// it decides, with the reference otherwise. Nothing it returns points into
// raw.
func decodeSnapshotJSON(d *snapshotDecoder, raw []byte) (*aggregate.Dump, error) {
	limit := d.maxFields
	if limit <= 0 {
		limit = DefaultMaxSnapshotFields
	}
	d.maxFields = limit
	dump, ok := d.decode(raw)
	over := d.over
	d.reset()
	if over {
		return nil, fmt.Errorf("decode snapshot: over %d fields: %w", limit, ErrSnapshotTooLarge)
	}
	if !ok {
		if dump, err := decodeSnapshotReference(raw); err != nil {
			return nil, err
		} else if n := len(dump.Marks) + len(dump.Meta) + len(dump.Series) + len(dump.Rejected); n > limit {
			return nil, fmt.Errorf("decode snapshot: %d fields, over %d: %w", n, limit, ErrSnapshotTooLarge)
		} else {
			return dump, nil
		}
	}
	return dump, nil
}

// snapshotDecoder is a single-pass scanner for a snapshot's JSON, the
// encoding/json form of aggregate.Dump that json.Marshal writes. A 100k
// series snapshot holds some 230k series-hash fields, and encoding/json
// spends most of its time on them: it validates the whole message before
// decoding it, unquotes through reflection and allocates every key and
// value on its own, and grows each map as it fills it.
//
// The scanner instead unescapes every string of the message into one
// buffer, noting where each lies, and makes the dump's keys and values
// substrings of it: one allocation for all of them, and each map made at
// its final size. Unescaping never lengthens a string, so the buffer is the
// message's length (some 12% more than its strings need) and never grows.
// The dump's strings then share it, so one kept string keeps all of them
// alive; aggregate's State copies what it keeps.
//
// It gives up (decode returns false) on anything where its reading might
// differ from encoding/json's, and the reference decides then: a message
// that is not an object, a field other than the five of Dump as
// json.Marshal names them (case variants, escapes and unknown fields
// included), a repeated field, a value of another JSON type (but null for
// a field, which json.Marshal writes for a nil map), invalid UTF-8,
// surrogate escapes, and invalid JSON of any kind (the reference then gives
// the error). json.Marshal writes none of these.
//
// It scans with the primitives of decoder (decode_scan.go), which it
// embeds; decoder's own fields stay unused. A snapshotDecoder is reused
// through snapshotDecoders; its slices are scratch space.
type snapshotDecoder struct {
	decoder

	in    []byte // the message; d.s is the same as a string
	raw   []byte // DecodeSnapshot's decompressed message
	arena []byte // unescaped strings, back to back: the dump's
	w     int    // arena's length so far
	spans []span // of arena: map keys and values alternate
	// maxFields caps the fields of all maps together; over is set when a
	// message passes it, and the scan stops there.
	maxFields int
	over      bool
}

// span locates one string in arena. A message is at most 4 GiB
// (decode refuses a longer one), so 32-bit offsets halve the scratch
// space.
type span struct{ start, end uint32 }

var snapshotDecoders = sync.Pool{New: func() any { return new(snapshotDecoder) }}

// Fields of aggregate.Dump, in its order, as bits for telling a repeated
// one.
const (
	snapNode = iota
	snapMarks
	snapMeta
	snapSeries
	snapRejected
	snapFields
)

// reset drops every reference into the last message, which may be the
// caller's, and into the last dump.
func (d *snapshotDecoder) reset() {
	d.s, d.i, d.in, d.arena = "", 0, nil, nil
	d.maxFields, d.over = 0, false
}

func (d *snapshotDecoder) decode(raw []byte) (*aggregate.Dump, bool) {
	if uint64(len(raw)) > math.MaxUint32 {
		return nil, false
	}
	d.in, d.s, d.i = raw, unsafe.String(unsafe.SliceData(raw), len(raw)), 0
	d.arena, d.w, d.spans = make([]byte, len(raw)), 0, d.spans[:0]
	// spans[found[f][0]:found[f][1]] are field f's strings; seen has the
	// fields given a value, nulls those given null.
	var (
		found       [snapFields][2]int
		seen, nulls uint
	)
	d.space()
	more, ok := d.open('{', '}')
	for ok && more {
		var key string
		if key, ok = d.fieldKey(); !ok {
			return nil, false
		}
		var f int
		switch key {
		case "node":
			f = snapNode
		case "marks":
			f = snapMarks
		case "meta":
			f = snapMeta
		case "series":
			f = snapSeries
		case "rejected":
			f = snapRejected
		default:
			return nil, false
		}
		if (seen|nulls)&(1<<f) != 0 {
			return nil, false
		}
		start := len(d.spans)
		switch {
		case d.literal("null"):
			nulls |= 1 << f // the field stays zero: a map stays nil
		case f == snapNode:
			seen |= 1 << f
			ok = d.str()
		default:
			seen |= 1 << f
			ok = d.hash()
		}
		if !ok {
			return nil, false
		}
		found[f] = [2]int{start, len(d.spans)}
		more, ok = d.next('}')
	}
	if !ok || !d.end() {
		return nil, false
	}

	// The dump owns arena from here on; nothing writes to it again.
	strs := unsafe.String(unsafe.SliceData(d.arena), d.w)
	at := func(sp span) string { return strs[sp.start:sp.end] }
	dump := new(aggregate.Dump)
	if seen&(1<<snapNode) != 0 {
		dump.Node = at(d.spans[found[snapNode][0]])
	}
	for f, m := range [snapFields]*map[string]string{snapMarks: &dump.Marks, snapMeta: &dump.Meta, snapSeries: &dump.Series, snapRejected: &dump.Rejected} {
		if f == snapNode || seen&(1<<f) == 0 {
			continue // an absent map stays nil, as with encoding/json
		}
		spans := d.spans[found[f][0]:found[f][1]]
		h := make(map[string]string, len(spans)/2)
		for j := 0; j+1 < len(spans); j += 2 {
			// A repeated key keeps its last value, as with encoding/json.
			h[at(spans[j])] = at(spans[j+1])
		}
		*m = h
	}
	return dump, true
}

// hash scans an object of strings, one of Dump's maps.
func (d *snapshotDecoder) hash() bool {
	more, ok := d.open('{', '}')
	for ok && more {
		if !d.str() || !d.colon() || !d.str() {
			return false
		}
		if d.maxFields > 0 && len(d.spans)/2 > d.maxFields {
			d.over = true
			return false
		}
		more, ok = d.next('}')
	}
	return ok
}

// str scans a JSON string of valid UTF-8, writing its value to arena and
// its span to spans. Series keys quote their label values, so nearly every
// key has escapes; they are unescaped on the way.
func (d *snapshotDecoder) str() bool {
	b, i := d.in, d.i
	if i >= len(b) || b[i] != '"' {
		return false
	}
	i++
	a, w := d.arena, d.w
	start := w
	for {
		if i, w = copyPlain(a, w, b, i); i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '"':
			d.i, d.w = i+1, w
			if len(d.spans) == cap(d.spans) {
				// Doubling: append grows a large slice by a quarter.
				d.spans = slices.Grow(d.spans, max(len(d.spans), 64))
			}
			d.spans = append(d.spans, span{uint32(start), uint32(w)})
			return true
		case c == '\\':
			var ok bool
			if i, w, ok = escape(a, w, d.s, i); !ok {
				return false
			}
			continue
		case c < utf8.RuneSelf:
			return false // a control character
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return false // encoding/json would replace it
		}
		w += copy(a[w:], b[i:i+n])
		i += n
	}
}

// copyPlain copies from b at i to a at w up to the first byte that a JSON
// string does not hold as it is (see plainRun), and returns the indexes
// there. It moves eight bytes at a time and stores each word whole: bytes
// past the stop are overwritten next or lie past the string's end. It needs
// w <= i and len(a) >= len(b), which hold for arena, as a string's value is
// never longer than its JSON.
func copyPlain(a []byte, w int, b []byte, i int) (int, int) {
	for i+8 <= len(b) && w+8 <= len(a) {
		x := binary.LittleEndian.Uint64(b[i:])
		binary.LittleEndian.PutUint64(a[w:], x)
		if t := notPlain(x); t != 0 {
			n := bits.TrailingZeros64(t) / 8
			return i + n, w + n
		}
		i, w = i+8, w+8
	}
	for ; i < len(b) && w < len(a); i, w = i+1, w+1 {
		c := b[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			break
		}
		a[w] = c
	}
	return i, w
}

// notPlain sets the high bit of the first byte of the little-endian word x
// that is below 0x20, a quote, a backslash or not ASCII, and possibly of
// later bytes; it is zero when there is none. This is plainRun's test.
func notPlain(x uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	// Borrows only mark bytes after a true one.
	return (((x-ones*0x20)|(q-ones)|(bs-ones))&^x | x) & highs
}

// escape writes the value of the escape sequence at s[i] to a at w and
// returns the indexes after each.
func escape(a []byte, w int, s string, i int) (int, int, bool) {
	if i+1 >= len(s) || w >= len(a) {
		return 0, 0, false
	}
	var c byte
	switch e := s[i+1]; e {
	case '"', '\\', '/':
		c = e
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		r, ok := hex4(s[i+2:])
		if !ok || utf16.IsSurrogate(r) || w+utf8.RuneLen(r) > len(a) {
			// encoding/json pairs surrogates or replaces them.
			return 0, 0, false
		}
		return i + 6, w + utf8.EncodeRune(a[w:], r), true
	default:
		return 0, 0, false
	}
	a[w] = c
	return i + 2, w + 1, true
}
