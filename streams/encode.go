package streams

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// Errors returned by the Encoder's metric methods; the metric is not
// appended when they are returned.
var (
	// ErrNotFinite means a value, sum or bucket bound was NaN or ±Inf,
	// which JSON cannot carry.
	ErrNotFinite = errors.New("value is not finite")
	// ErrHistogramLayout means a histogram's counts do not have one entry
	// per bucket plus one for +Inf.
	ErrHistogramLayout = errors.New("histogram counts do not match buckets")
)

// Encoder writes a Batch as JSON by appending to a buffer it reuses, so a
// producer encodes every flush without reflection and, once the buffer has
// grown to its working size, without allocating.
//
// The output decodes with encoding/json into exactly the Batch that
// encoding/json would produce from marshalling the same values: fields
// tagged omitempty are left out under the same conditions (a zero time,
// empty help, no labels, a zero histogram sum), strings are escaped the
// same way (invalid UTF-8 becomes U+FFFD) and floats use the shortest
// representation that parses back to the same bits. A histogram carries no
// "value" field; it decodes as 0.
//
// Use: Begin, then one call per metric, then Finish. An Encoder is not safe
// for concurrent use.
type Encoder struct {
	buf   []byte
	count int
	// undoLen and undoCount restore the state before the last metric; -1
	// when there is nothing to undo.
	undoLen, undoCount int
}

// trailer closes the metrics array and the batch object.
const trailer = "]}"

// Begin starts a new batch, discarding anything encoded before. It
// invalidates slices returned by earlier Finish calls.
func (e *Encoder) Begin(node, producer string, seq uint64, unixMilli int64) {
	b := append(e.buf[:0], `{"v":`...)
	b = strconv.AppendInt(b, WireVersion, 10)
	b = append(b, `,"node":`...)
	b = appendString(b, node)
	b = append(b, `,"producer":`...)
	b = appendString(b, producer)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if unixMilli != 0 {
		b = append(b, `,"time":`...)
		b = strconv.AppendInt(b, unixMilli, 10)
	}
	e.buf = append(b, `,"metrics":[`...)
	e.count = 0
	e.undoLen = -1
}

// Counter appends a counter delta.
func (e *Encoder) Counter(name, help string, labels []series.Label, delta float64) error {
	return e.scalar(name, KindCounter, help, labels, delta)
}

// Gauge appends a gauge value.
func (e *Encoder) Gauge(name, help string, labels []series.Label, value float64) error {
	return e.scalar(name, KindGauge, help, labels, value)
}

func (e *Encoder) scalar(name string, kind Kind, help string, labels []series.Label, v float64) error {
	if !finite(v) {
		return fmt.Errorf("%s %s: %w: %v", kind, name, ErrNotFinite, v)
	}
	e.open(name, kind, help, labels)
	b := append(e.buf, `,"value":`...)
	b = appendFloat(b, v)
	e.buf = append(b, '}')
	return nil
}

// Histogram appends a histogram update: buckets are the upper bounds
// without +Inf, counts the per-bucket (not cumulative) observation counts
// with one more entry for +Inf, sum the sum of those observations.
func (e *Encoder) Histogram(name, help string, labels []series.Label, buckets []float64, counts []uint64, sum float64) error {
	if len(counts) != len(buckets)+1 {
		return fmt.Errorf("histogram %s: %w: %d buckets, %d counts", name, ErrHistogramLayout, len(buckets), len(counts))
	}
	if !finite(sum) {
		return fmt.Errorf("histogram %s: sum: %w: %v", name, ErrNotFinite, sum)
	}
	for _, ub := range buckets {
		if !finite(ub) {
			return fmt.Errorf("histogram %s: bucket: %w: %v", name, ErrNotFinite, ub)
		}
	}
	e.open(name, KindHistogram, help, labels)
	b := e.buf
	if len(buckets) > 0 {
		b = append(b, `,"buckets":[`...)
		for i, ub := range buckets {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendFloat(b, ub)
		}
		b = append(b, ']')
	}
	b = append(b, `,"counts":[`...)
	for i, c := range counts {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, c, 10)
	}
	b = append(b, ']')
	if sum != 0 {
		b = append(b, `,"sum":`...)
		b = appendFloat(b, sum)
	}
	e.buf = append(b, '}')
	return nil
}

// open writes the fields every metric has, up to and without the closing
// brace, and remembers how to undo it.
func (e *Encoder) open(name string, kind Kind, help string, labels []series.Label) {
	e.undoLen, e.undoCount = len(e.buf), e.count
	b := e.buf
	if e.count > 0 {
		b = append(b, ',')
	}
	e.count++
	b = append(b, `{"name":`...)
	b = appendString(b, name)
	b = append(b, `,"type":"`...)
	b = append(b, kind...)
	b = append(b, '"')
	if help != "" {
		b = append(b, `,"help":`...)
		b = appendString(b, help)
	}
	if len(labels) > 0 {
		b = append(b, `,"labels":{`...)
		for i, l := range labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, l.Name)
			b = append(b, ':')
			b = appendString(b, l.Value)
		}
		b = append(b, '}')
	}
	e.buf = b
}

// Undo removes the metric appended last, so a caller that finds the batch
// over its size limit can move that metric to the next batch. Only one
// metric can be undone; further calls do nothing.
func (e *Encoder) Undo() {
	if e.undoLen < 0 {
		return
	}
	e.buf, e.count = e.buf[:e.undoLen], e.undoCount
	e.undoLen = -1
}

// Len is the size in bytes Finish would return now.
func (e *Encoder) Len() int { return len(e.buf) + len(trailer) }

// Count is the number of metrics in the batch so far.
func (e *Encoder) Count() int { return e.count }

// Finish returns the batch as JSON. The slice aliases the Encoder's buffer:
// it is valid until the next call to any other Encoder method. Finish does
// not end the batch; more metrics may follow and Finish be called again.
func (e *Encoder) Finish() []byte {
	n := len(e.buf)
	e.buf = append(e.buf, trailer...)
	out := e.buf
	e.buf = e.buf[:n]
	return out
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func appendFloat(b []byte, v float64) []byte {
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does
// without HTML escaping: quote, backslash and control characters are
// escaped, invalid UTF-8 bytes become U+FFFD, and U+2028 and U+2029 are
// escaped so the output is also valid JavaScript.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
