package series

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Limits bounds what a single series may carry. The zero value means the
// defaults below.
type Limits struct {
	// MaxLabels is the most labels a series may have (default 16).
	MaxLabels int
	// MaxLabelValueBytes is the longest label value in bytes (default 256).
	MaxLabelValueBytes int
	// MaxNameBytes is the longest metric or label name in bytes (default 200).
	MaxNameBytes int
}

// Default limits.
const (
	DefaultMaxLabels          = 16
	DefaultMaxLabelValueBytes = 256
	DefaultMaxNameBytes       = 200
)

func (l Limits) withDefaults() Limits {
	if l.MaxLabels <= 0 {
		l.MaxLabels = DefaultMaxLabels
	}
	if l.MaxLabelValueBytes <= 0 {
		l.MaxLabelValueBytes = DefaultMaxLabelValueBytes
	}
	if l.MaxNameBytes <= 0 {
		l.MaxNameBytes = DefaultMaxNameBytes
	}
	return l
}

// Errors a caller may branch on; each validation error wraps one of them.
var (
	ErrMetricName    = errors.New("invalid metric name")
	ErrLabelName     = errors.New("invalid label name")
	ErrReservedLabel = errors.New("reserved label name")
	ErrTooManyLabels = errors.New("too many labels")
	ErrLabelValue    = errors.New("invalid label value")
	ErrLongValue     = errors.New("label value too long")
	ErrDuplicate     = errors.New("duplicate label name")
)

// Label is one name="value" pair.
type Label struct {
	Name, Value string
}

// ValidMetricName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func ValidMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == ':' || isAlpha(c) || (i > 0 && isDigit(c))) {
			return false
		}
	}
	return true
}

// ValidLabelName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]*.
func ValidLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || isAlpha(c) || (i > 0 && isDigit(c))) {
			return false
		}
	}
	return true
}

// Reserved reports whether a label name is kept for jetmetrics or Prometheus
// itself: "node" (added by cluster exposition), "le" and "quantile" (used by
// histograms and summaries) and every name starting with "__".
func Reserved(name string) bool {
	return name == "node" || name == "le" || name == "quantile" || strings.HasPrefix(name, "__")
}

func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// CheckMetricName returns an error wrapping ErrMetricName when name is not a
// valid Prometheus metric name or is longer than the limit.
func (l Limits) CheckMetricName(name string) error {
	l = l.withDefaults()
	if !ValidMetricName(name) || len(name) > l.MaxNameBytes {
		return fmt.Errorf("%w %q: want [a-zA-Z_:][a-zA-Z0-9_:]* of at most %d bytes", ErrMetricName, name, l.MaxNameBytes)
	}
	return nil
}

// CheckLabelNames validates a list of label names: syntax, reservation,
// duplicates and count.
func (l Limits) CheckLabelNames(names []string) error {
	l = l.withDefaults()
	if len(names) > l.MaxLabels {
		return fmt.Errorf("%w: %d, the limit is %d", ErrTooManyLabels, len(names), l.MaxLabels)
	}
	for i, n := range names {
		if !ValidLabelName(n) || len(n) > l.MaxNameBytes {
			return fmt.Errorf("%w %q: want [a-zA-Z_][a-zA-Z0-9_]* of at most %d bytes", ErrLabelName, n, l.MaxNameBytes)
		}
		if Reserved(n) {
			return fmt.Errorf("%w %q: node, le, quantile and __* are kept for jetmetrics and Prometheus", ErrReservedLabel, n)
		}
		for _, m := range names[:i] {
			if m == n {
				return fmt.Errorf("%w %q", ErrDuplicate, n)
			}
		}
	}
	return nil
}

// CheckLabelValue validates one label value: valid UTF-8 and not too long.
func (l Limits) CheckLabelValue(name, value string) error {
	l = l.withDefaults()
	if len(value) > l.MaxLabelValueBytes {
		return fmt.Errorf("%w: label %q has %d bytes, the limit is %d", ErrLongValue, name, len(value), l.MaxLabelValueBytes)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("%w: label %q is not valid UTF-8", ErrLabelValue, name)
	}
	return nil
}

// CheckLabels validates a full label set.
func (l Limits) CheckLabels(labels []Label) error {
	l = l.withDefaults()
	if len(labels) > l.MaxLabels {
		return fmt.Errorf("%w: %d, the limit is %d", ErrTooManyLabels, len(labels), l.MaxLabels)
	}
	for i, lb := range labels {
		if !ValidLabelName(lb.Name) || len(lb.Name) > l.MaxNameBytes {
			return fmt.Errorf("%w %q: want [a-zA-Z_][a-zA-Z0-9_]* of at most %d bytes", ErrLabelName, lb.Name, l.MaxNameBytes)
		}
		if Reserved(lb.Name) {
			return fmt.Errorf("%w %q: node, le, quantile and __* are kept for jetmetrics and Prometheus", ErrReservedLabel, lb.Name)
		}
		for _, m := range labels[:i] {
			if m.Name == lb.Name {
				return fmt.Errorf("%w %q", ErrDuplicate, lb.Name)
			}
		}
		if err := l.CheckLabelValue(lb.Name, lb.Value); err != nil {
			return err
		}
	}
	return nil
}

// SortLabels sorts labels by name in place.
func SortLabels(labels []Label) {
	sort.Slice(labels, func(i, j int) bool { return labels[i].Name < labels[j].Name })
}

// AppendKey appends the canonical key of a series to dst. labels must be
// sorted by name (SortLabels) and valid; an empty label set gives the bare
// name.
func AppendKey(dst []byte, name string, labels []Label) []byte {
	dst = append(dst, name...)
	if len(labels) == 0 {
		return dst
	}
	dst = append(dst, '{')
	for i, lb := range labels {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, lb.Name...)
		dst = append(dst, '=', '"')
		dst = appendEscaped(dst, lb.Value)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// Key returns the canonical key of a series; see AppendKey.
func Key(name string, labels []Label) string {
	return string(AppendKey(make([]byte, 0, len(name)+32*len(labels)), name, labels))
}

func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '"':
			dst = append(dst, '\\', '"')
		case '\n':
			dst = append(dst, '\\', 'n')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// ErrKey is wrapped by ParseKey's errors.
var ErrKey = errors.New("malformed series key")

// ParseKey splits a canonical key into its metric name and labels, appending
// the labels to dst (which may be nil) in key order. The name, the label
// names and every label value without escapes are substrings of key, so
// labels parsed from a key that is kept cost no bytes beside it; only a
// value with escapes is a string of its own.
func ParseKey(key string, dst []Label) (string, []Label, error) {
	brace := strings.IndexByte(key, '{')
	if brace < 0 {
		return key, dst, nil
	}
	name := key[:brace]
	rest := key[brace+1:]
	if !strings.HasSuffix(rest, "}") {
		return "", dst, fmt.Errorf("%w %q: no closing brace", ErrKey, key)
	}
	rest = rest[:len(rest)-1]
	for len(rest) > 0 {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 || eq+1 >= len(rest) || rest[eq+1] != '"' {
			return "", dst, fmt.Errorf("%w %q", ErrKey, key)
		}
		lname := rest[:eq]
		rest = rest[eq+2:]
		if q := strings.IndexAny(rest, `"\\`); q >= 0 && rest[q] == '"' {
			// No escapes: the value is the key's own bytes.
			dst = append(dst, Label{Name: lname, Value: rest[:q]})
			if rest = rest[q+1:]; len(rest) > 0 {
				if rest[0] != ',' {
					return "", dst, fmt.Errorf("%w %q", ErrKey, key)
				}
				rest = rest[1:]
			}
			continue
		}
		var b strings.Builder
		closed := false
		i := 0
		for ; i < len(rest); i++ {
			c := rest[i]
			if c == '"' {
				closed = true
				break
			}
			if c == '\\' && i+1 < len(rest) {
				i++
				switch rest[i] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(rest[i])
				}
				continue
			}
			b.WriteByte(c)
		}
		if !closed {
			return "", dst, fmt.Errorf("%w %q: unterminated value", ErrKey, key)
		}
		dst = append(dst, Label{Name: lname, Value: b.String()})
		rest = rest[i+1:]
		if len(rest) > 0 {
			if rest[0] != ',' {
				return "", dst, fmt.Errorf("%w %q", ErrKey, key)
			}
			rest = rest[1:]
		}
	}
	return name, dst, nil
}
