package streams

import (
	"errors"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// errUndecided is the scanner's answer for a message it cannot decide with
// certainty; Decode then asks decodeReference.
var errUndecided = errors.New("not decided by the scanner")

// decoder is a single-pass scanner for the v1 JSON wire format. It builds a
// Decoded straight from the message, or gives up with errUndecided on
// anything where its reading might differ from decodeReference's: escaped
// or non-ASCII field names, duplicate fields or labels, nulls, values of an
// unexpected JSON type (in the envelope or in any entry), entries that are
// not objects, invalid UTF-8, surrogate escapes, numbers strconv rejects,
// unknown fields nested deeper than maxSkipDepth, and invalid JSON of any
// kind (the reference then says undecodable). Field names are matched
// exactly, as the reference does: a case variant is an unknown field.
//
// The message is scanned as a string so that names and values can be
// checked as substrings without copying. Decode passes the caller's bytes
// as that string, unsafe.String over data, so no substring of the message
// may outlive the call: the caller may reuse its buffer, and a substring
// would also keep the whole message alive. A valid entry's name and labels
// are substrings of its series key, and everything else the result holds is
// copied; errors only format the message's strings. FuzzDecodeMatchesReference
// overwrites the input after decoding to check this.
//
// A decoder is reused through decoders; its slices are scratch space.
type decoder struct {
	s      string
	i      int
	limits series.Limits

	entries []Entry // the result's
	floats  []float64
	uints   []uint64
	buf     []byte    // unescaped strings
	reused  *reusable // what the result hands back on Release

	// help and helpCopy are the last help text seen and the copy given to
	// its entries: consecutive series of one metric share one copy.
	help, helpCopy string
}

var decoders = sync.Pool{New: func() any { return new(decoder) }}

// maxSkipDepth bounds the nesting of unknown fields' values the scanner
// skips; deeper ones go to the reference, which allows 10000 levels.
const maxSkipDepth = 32

// reset drops every reference into the last message and its results, so a
// pooled decoder keeps neither alive.
func (d *decoder) reset() {
	d.entries, d.reused = nil, nil
	d.s, d.help, d.helpCopy = "", "", ""
}

// reusable is what a Decoded hands back on Release for later messages: its
// entries slice, zeroed, and the arena its series keys were written into.
type reusable struct {
	entries []Entry
	keys    keyArena
}

// keyArena holds the series keys of one message back to back. A key is a
// string over its bytes, which are never written again while the message
// is held; when the arena grows, earlier keys keep the old array.
type keyArena struct{ b []byte }

var reusables sync.Pool

// add appends the key of name and labels and returns it.
func (a *keyArena) add(name string, labels []series.Label) string {
	start := len(a.b)
	a.b = series.AppendKey(a.b, name, labels)
	return unsafe.String(&a.b[start], len(a.b)-start)
}

// Field bits, for telling a repeated field. JSON keys name them exactly;
// any other key is an unknown field.
const (
	fieldV uint = 1 << iota
	fieldNode
	fieldProducer
	fieldSeq
	fieldTime
	fieldMetrics
	fieldName
	fieldType
	fieldHelp
	fieldLabels
	fieldValue
	fieldBuckets
	fieldCounts
	fieldSum
)

func (d *decoder) decode(msg, node string, limits series.Limits) (*Decoded, error) {
	d.s, d.i, d.limits = msg, 0, limits
	var (
		w    wireBatch
		seen uint
	)
	d.space()
	more, ok := d.open('{', '}')
	for ok && more {
		var key string
		if key, ok = d.fieldKey(); !ok {
			break
		}
		var bit uint
		switch key {
		case "v":
			bit = fieldV
			w.Version, ok = d.int()
			w.HasVersion = true
		case "node":
			bit = fieldNode
			w.Node, _, ok = d.str()
		case "producer":
			bit = fieldProducer
			w.Producer, _, ok = d.str()
		case "seq":
			bit = fieldSeq
			w.Seq, ok = d.uint()
		case "time":
			bit = fieldTime
			w.Time, ok = d.int()
		case "metrics":
			bit = fieldMetrics
			ok = d.metrics()
			w.HasMetrics = true
		default:
			ok = d.skip(0)
		}
		if !ok || seen&bit != 0 {
			return nil, errUndecided
		}
		seen |= bit
		more, ok = d.next('}')
	}
	if !ok || !d.end() {
		return nil, errUndecided
	}
	if err := checkEnvelope(&w, node); err != nil {
		return nil, err
	}
	if d.entries == nil {
		d.entries = []Entry{}
	}
	return &Decoded{
		Node:     node,
		Producer: strings.Clone(w.Producer),
		Seq:      w.Seq,
		Time:     w.Time,
		Entries:  d.entries,
		reuse:    d.reused,
	}, nil
}

func (d *decoder) metrics() bool {
	more, ok := d.open('[', ']')
	n := maxEntries(d.s[d.i:])
	// A released message's entries (zero again) and key arena, when there
	// is one; else the keys get an arena of their own.
	r, _ := reusables.Get().(*reusable)
	if r == nil {
		r = new(reusable)
	}
	if cap(r.entries) < n {
		r.entries = make([]Entry, 0, n)
	}
	d.entries, d.reused = r.entries[:0], r
	r.keys.b = r.keys.b[:0]
	if cap(r.keys.b) == 0 {
		// A key is shorter than its entry's JSON: about half the array.
		r.keys.b = make([]byte, 0, (len(d.s)-d.i)/2)
	}
	for ok && more {
		// The memory past len is zero already; append would zero it again.
		if n := len(d.entries); n < cap(d.entries) {
			d.entries = d.entries[:n+1]
		} else {
			d.entries = append(d.entries, Entry{})
		}
		if !d.entry(&d.entries[len(d.entries)-1]) {
			return false
		}
		more, ok = d.next(']')
	}
	return ok
}

// maxEntries estimates the entries of the metrics array that starts msg,
// to size the result once; append grows it if the estimate is short. Every
// entry opens with a brace, and a brace right after a colon, as in
// "labels":{, opens no entry. Braces inside strings count too, so the count
// stops at one entry per minEntryBytes of message: a message cannot make
// the result much larger than itself.
func maxEntries(msg string) int {
	limit := len(msg) / minEntryBytes
	n := 0
	for i := strings.IndexByte(msg, '{'); i >= 0 && n < limit; {
		if i == 0 || msg[i-1] != ':' {
			n++
		}
		j := strings.IndexByte(msg[i+1:], '{')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return n
}

// minEntryBytes is about the shortest entry that can be applied:
// {"name":"x","type":"gauge","value":0}.
const minEntryBytes = 32

// entry scans one element of "metrics" and decides it into e. It builds
// the entry on the stack and stores it once: while the collector marks,
// every pointer stored into the heap costs a write barrier.
func (d *decoder) entry(e *Entry) bool {
	var (
		m        Metric
		hasValue bool
		seen     uint
		buf      [8]series.Label
	)
	labels := buf[:0]
	more, ok := d.open('{', '}')
	for ok && more {
		var key string
		if key, ok = d.fieldKey(); !ok {
			break
		}
		var bit uint
		switch key {
		case "name":
			bit = fieldName
			m.Name, _, ok = d.str()
		case "type":
			bit = fieldType
			var t string
			t, _, ok = d.str()
			m.Type = Kind(t)
		case "help":
			bit = fieldHelp
			var owned bool
			m.Help, owned, ok = d.str()
			m.Help = d.ownHelp(m.Help, owned)
		case "labels":
			bit = fieldLabels
			labels, ok = d.labelSet(labels)
		case "value":
			bit = fieldValue
			m.Value, ok = d.float()
			hasValue = true
		case "buckets":
			bit = fieldBuckets
			m.Buckets, ok = numbers(d, &d.floats, (*decoder).float)
		case "counts":
			bit = fieldCounts
			m.Counts, ok = numbers(d, &d.uints, (*decoder).uint)
		case "sum":
			bit = fieldSum
			m.Sum, ok = d.float()
		default:
			ok = d.skip(0)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		more, ok = d.next('}')
	}
	if !ok {
		return false
	}
	sortLabels(labels)
	for i := 1; i < len(labels); i++ {
		if labels[i].Name == labels[i-1].Name {
			// The reference keeps the last value of a repeated key.
			return false
		}
	}
	// After the check for repeated names: {"a":"1","a":""} has no label a.
	labels = dropEmpty(labels)
	// Until here m.Name, m.Type and labels may be substrings of the
	// message; what the entry keeps is made its own below.
	name := m.Name
	m.Type = ownKind(m.Type)
	if rej := checkMetric(&m, hasValue, labels, d.limits); rej != nil {
		m.Name = strings.Clone(name)
		*e = Entry{Metric: m, Reject: rej}
		return true
	}
	key := d.reused.keys.add(name, labels)
	// The key starts with the name: name{a="1",b="2"}.
	m.Name = within(key, 0, name)
	e.Key = key
	e.setMetric(&m)
	return true
}

// setMetric stores m into e, whose memory is zero, field by field: copying
// the whole struct would cost a write barrier over all of it while the
// collector marks, and most fields are empty.
func (e *Entry) setMetric(m *Metric) {
	e.Name, e.Type, e.Value = m.Name, m.Type, m.Value
	if m.Help != "" {
		e.Help = m.Help
	}
	if m.Buckets != nil || m.Counts != nil {
		e.Buckets, e.Counts = m.Buckets, m.Counts
	}
	e.Sum = m.Sum
}

// within returns s as the substring of key at pos when key holds it there,
// and a copy of s otherwise.
func within(key string, pos int, s string) string {
	if end := pos + len(s); end <= len(key) && key[pos:end] == s {
		return key[pos:end]
	}
	return strings.Clone(s)
}

// sortLabels sorts labels by name like series.SortLabels, without
// allocating; names are unique, so any sort gives the same order.
func sortLabels(ls []series.Label) {
	if len(ls) > 16 {
		slices.SortFunc(ls, func(a, b series.Label) int { return strings.Compare(a.Name, b.Name) })
		return
	}
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Name < ls[j-1].Name; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

// ownKind returns k as one of the Kind constants, or a copy.
func ownKind(k Kind) Kind {
	switch k {
	case KindCounter:
		return KindCounter
	case KindGauge:
		return KindGauge
	case KindHistogram:
		return KindHistogram
	}
	return Kind(strings.Clone(string(k)))
}

// ownHelp returns a help text that does not point into the message.
func (d *decoder) ownHelp(h string, owned bool) string {
	switch {
	case h == "":
		return ""
	case h == d.help:
		return d.helpCopy
	case !owned:
		d.help, d.helpCopy = h, strings.Clone(h)
	default:
		d.help, d.helpCopy = h, h
	}
	return d.helpCopy
}

// labelSet scans a labels object, appending to labels.
func (d *decoder) labelSet(labels []series.Label) ([]series.Label, bool) {
	more, ok := d.open('{', '}')
	for ok && more {
		var name, value string
		if name, _, ok = d.str(); !ok || !d.colon() {
			return labels, false
		}
		if value, _, ok = d.str(); !ok {
			return labels, false
		}
		labels = append(labels, series.Label{Name: name, Value: value})
		more, ok = d.next('}')
	}
	return labels, ok
}

// numbers scans an array of numbers with parse into a new slice of its
// exact length, collecting them in scratch first.
func numbers[T float64 | uint64](d *decoder, scratch *[]T, parse func(*decoder) (T, bool)) ([]T, bool) {
	s := (*scratch)[:0]
	defer func() { *scratch = s }()
	more, ok := d.open('[', ']')
	for ok && more {
		var v T
		if v, ok = parse(d); !ok {
			return nil, false
		}
		s = append(s, v)
		more, ok = d.next(']')
	}
	return append(make([]T, 0, len(s)), s...), ok
}

// skip scans over any JSON value.
func (d *decoder) skip(depth int) bool {
	if depth > maxSkipDepth || d.i >= len(d.s) {
		return false
	}
	switch d.s[d.i] {
	case '{':
		more, ok := d.open('{', '}')
		for ok && more {
			if _, _, ok = d.str(); !ok || !d.colon() || !d.skip(depth+1) {
				return false
			}
			more, ok = d.next('}')
		}
		return ok
	case '[':
		more, ok := d.open('[', ']')
		for ok && more {
			if !d.skip(depth + 1) {
				return false
			}
			more, ok = d.next(']')
		}
		return ok
	case '"':
		_, _, ok := d.str()
		return ok
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	_, _, ok := d.number()
	return ok
}

func (d *decoder) literal(lit string) bool {
	if !strings.HasPrefix(d.s[d.i:], lit) {
		return false
	}
	d.i += len(lit)
	return true
}

// space skips JSON whitespace.
func (d *decoder) space() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// open consumes the opening bracket of an object or array and the space
// after it; more reports whether a member follows.
func (d *decoder) open(opening, closing byte) (more, ok bool) {
	if d.i >= len(d.s) || d.s[d.i] != opening {
		return false, false
	}
	d.i++
	d.space()
	if d.i < len(d.s) && d.s[d.i] == closing {
		d.i++
		return false, true
	}
	return true, true
}

// next consumes what follows a member: a comma and space (more is true) or
// the closing bracket.
func (d *decoder) next(closing byte) (more, ok bool) {
	d.space()
	if d.i >= len(d.s) {
		return false, false
	}
	switch d.s[d.i] {
	case ',':
		d.i++
		d.space()
		return true, true
	case closing:
		d.i++
		return false, true
	}
	return false, false
}

// colon consumes the colon between a key and its value, with the space
// around it.
func (d *decoder) colon() bool {
	d.space()
	if d.i >= len(d.s) || d.s[d.i] != ':' {
		return false
	}
	d.i++
	d.space()
	return true
}

// end reports whether only space is left.
func (d *decoder) end() bool {
	d.space()
	return d.i == len(d.s)
}

// plainRun returns the index of the first byte at or after i that a JSON
// string does not hold as it is: anything but printable ASCII other than
// the quote and the backslash. It looks at eight bytes at a time.
func plainRun(s string, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q := x ^ (ones * '"')
		b := x ^ (ones * '\\')
		// A byte's high bit is set in t where it is below 0x20, a quote, a
		// backslash or non-ASCII; borrows only mark bytes after a true one.
		t := ((x-ones*0x20)|(q-ones)|(b-ones))&^x | x
		if t &= highs; t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			break
		}
	}
	return i
}

// fieldKey scans an object key made of plain bytes only, and the colon
// after it. An escaped or non-ASCII key may fold to a field name in ways
// only the reference knows.
func (d *decoder) fieldKey() (string, bool) {
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return "", false
	}
	start := d.i + 1
	i := plainRun(d.s, start)
	if i >= len(d.s) || d.s[i] != '"' {
		return "", false
	}
	d.i = i + 1
	return d.s[start:i], d.colon()
}

// str scans a JSON string of valid UTF-8. Without escapes its value is a
// substring of the message; with them, a new string (owned).
func (d *decoder) str() (v string, owned, ok bool) {
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return "", false, false
	}
	start := d.i + 1
	i := start
	for {
		if i = plainRun(d.s, i); i >= len(d.s) {
			return "", false, false
		}
		switch c := d.s[i]; {
		case c == '"':
			d.i = i + 1
			return d.s[start:i], false, true
		case c == '\\':
			return d.unescape(start, i)
		case c < utf8.RuneSelf:
			return "", false, false
		}
		r, n := utf8.DecodeRuneInString(d.s[i:])
		if r == utf8.RuneError && n == 1 {
			return "", false, false
		}
		i += n
	}
}

// unescape continues str from the first backslash at i.
func (d *decoder) unescape(start, i int) (string, bool, bool) {
	b := append(d.buf[:0], d.s[start:i]...)
	defer func() { d.buf = b[:0] }()
	for i < len(d.s) {
		c := d.s[i]
		switch {
		case c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\':
			b = append(b, c)
			i++
			continue
		case c == '"':
			d.i = i + 1
			return string(b), true, true
		case c != '\\':
			if c < utf8.RuneSelf {
				return "", false, false
			}
			r, n := utf8.DecodeRuneInString(d.s[i:])
			if r == utf8.RuneError && n == 1 {
				return "", false, false
			}
			b = append(b, d.s[i:i+n]...)
			i += n
			continue
		}
		if i+1 >= len(d.s) {
			return "", false, false
		}
		switch e := d.s[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(d.s[i+2:])
			if !ok || utf16.IsSurrogate(r) {
				// encoding/json pairs surrogates or replaces them.
				return "", false, false
			}
			b = utf8.AppendRune(b, r)
			i += 4
		default:
			return "", false, false
		}
		i += 2
	}
	return "", false, false
}

func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number scans a JSON number and returns its text; integer reports that
// it has neither a fraction nor an exponent.
func (d *decoder) number() (lit string, integer, ok bool) {
	s, i := d.s, d.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s):
		return "", false, false
	case s[i] == '0':
		i++
	case '1' <= s[i] && s[i] <= '9':
		i = digits(s, i+1)
	default:
		return "", false, false
	}
	integer = true
	if i < len(s) && s[i] == '.' {
		integer = false
		if i = digits(s, i+1); s[i-1] == '.' {
			return "", false, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		integer = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			return "", false, false
		}
		i = j
	}
	lit, d.i = s[d.i:i], i
	return lit, integer, true
}

// digits returns the index after the run of digits at i.
func digits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

// float, int and uint parse numbers as encoding/json does, with strconv on
// the number's text. Integers of up to 15 digits, the common case, are
// converted directly: they are exact in a float64, as strconv's are.
func (d *decoder) float() (float64, bool) {
	lit, integer, ok := d.number()
	if !ok {
		return 0, false
	}
	if digits := lit; integer && len(digits) <= 16 {
		neg := digits[0] == '-'
		if neg {
			digits = digits[1:]
		}
		if len(digits) <= 15 {
			f := float64(parseDigits(digits))
			if neg {
				f = -f
			}
			return f, true
		}
	}
	f, err := strconv.ParseFloat(lit, 64)
	return f, err == nil
}

func (d *decoder) int() (int64, bool) {
	lit, integer, ok := d.number()
	if !ok || !integer {
		return 0, false
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	return n, err == nil
}

func (d *decoder) uint() (uint64, bool) {
	lit, integer, ok := d.number()
	if !ok || !integer {
		return 0, false
	}
	if len(lit) <= 19 && lit[0] != '-' {
		return parseDigits(lit), true
	}
	n, err := strconv.ParseUint(lit, 10, 64)
	return n, err == nil
}

// parseDigits converts up to 19 decimal digits, which cannot overflow.
func parseDigits(s string) uint64 {
	var n uint64
	for i := 0; i < len(s); i++ {
		n = n*10 + uint64(s[i]-'0')
	}
	return n
}
