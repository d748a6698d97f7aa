package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// checkOpenMetrics validates an OpenMetrics 1.0 text exposition, as far as
// the families the harness serves go, and counts the series of families
// named with prefix by the value of their node label. prometheus/common
// has no OpenMetrics parser, and prometheus/prometheus's is a heavy
// dependency for a check, so this is the harness's own: it holds the
// exposition to the spec's rules that a renderer can get wrong.
//
//   - every line ends in a newline and the last one is "# EOF";
//   - HELP, TYPE and UNIT come before the family's samples, at most once
//     each, and a family's samples are contiguous (no family twice);
//   - sample names are the family's name with the suffixes its type allows;
//   - labels are name="value" with \\, \" and \n escapes only;
//   - values parse as floats, counts as integers;
//   - each histogram series has cumulative buckets ending in le="+Inf",
//     equal to its _count.
func checkOpenMetrics(body []byte, prefix string) (map[string]int, error) {
	if !bytes.HasSuffix(body, []byte("# EOF\n")) {
		return nil, errors.New("openmetrics: no final # EOF line")
	}
	counts := map[string]int{}
	seen := map[string]bool{}
	var fam, typ string
	type histState struct {
		last    float64
		inf     float64
		hasInf  bool
		count   float64
		counted bool
	}
	var hists map[string]*histState
	seriesSeen := map[string]bool{}
	finishFamily := func() error {
		for key, h := range hists {
			if !h.hasInf || !h.counted || h.inf != h.count {
				return fmt.Errorf("openmetrics: histogram %s: +Inf bucket %v (present %v), count %v", key, h.inf, h.hasInf, h.count)
			}
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(body[:len(body)-len("# EOF\n")]))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		fail := func(format string, args ...any) error {
			return fmt.Errorf("openmetrics line %d %q: %s", line, text, fmt.Sprintf(format, args...))
		}
		if rest, ok := strings.CutPrefix(text, "# "); ok {
			kind, rest, _ := strings.Cut(rest, " ")
			name, val, _ := strings.Cut(rest, " ")
			if kind != "HELP" && kind != "TYPE" && kind != "UNIT" {
				return nil, fail("unknown metadata")
			}
			if name != fam {
				if err := finishFamily(); err != nil {
					return nil, err
				}
				if seen[name] {
					return nil, fail("family %s appears twice", name)
				}
				seen[name] = true
				fam, typ, hists = name, "unknown", map[string]*histState{}
			}
			if kind == "TYPE" {
				switch val {
				case "counter", "gauge", "histogram", "unknown", "summary", "info", "stateset", "gaugehistogram":
					typ = val
				default:
					return nil, fail("unknown type")
				}
			}
			if kind == "HELP" {
				if _, err := unescapeOM(val, false); err != nil {
					return nil, fail("%v", err)
				}
			}
			continue
		}
		name, labels, value, err := splitSample(text)
		if err != nil {
			return nil, fail("%v", err)
		}
		suffix, ok := strings.CutPrefix(name, fam)
		if !ok || fam == "" {
			return nil, fail("sample outside its family %s", fam)
		}
		switch typ {
		case "counter":
			ok = suffix == "_total" || suffix == "_created"
		case "histogram":
			ok = suffix == "_bucket" || suffix == "_count" || suffix == "_sum" || suffix == "_created"
		case "summary":
			ok = suffix == "" || suffix == "_count" || suffix == "_sum" || suffix == "_created"
		default:
			ok = suffix == ""
		}
		if !ok {
			return nil, fail("suffix %q not allowed for a %s", suffix, typ)
		}
		lbls, err := parseLabels(labels)
		if err != nil {
			return nil, fail("%v", err)
		}
		v, err := parseOMFloat(value)
		if err != nil {
			return nil, fail("%v", err)
		}
		le, hasLE := lbls["le"]
		delete(lbls, "le")
		delete(lbls, "quantile")
		key := fam + canonical(lbls)
		if typ == "histogram" {
			h := hists[key]
			if h == nil {
				h = &histState{}
				hists[key] = h
			}
			switch suffix {
			case "_bucket":
				if !hasLE {
					return nil, fail("bucket without le")
				}
				if _, err := strconv.ParseUint(value, 10, 64); err != nil {
					return nil, fail("bucket count is not an integer")
				}
				if v < h.last {
					return nil, fail("buckets not cumulative")
				}
				h.last = v
				if le == "+Inf" {
					h.inf, h.hasInf = v, true
				}
			case "_count":
				if _, err := strconv.ParseUint(value, 10, 64); err != nil {
					return nil, fail("count is not an integer")
				}
				h.count, h.counted = v, true
			}
		}
		if !seriesSeen[key] {
			seriesSeen[key] = true
			if strings.HasPrefix(fam, prefix) {
				counts[lbls["node"]]++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("openmetrics: %w", err)
	}
	if err := finishFamily(); err != nil {
		return nil, err
	}
	return counts, nil
}

// splitSample splits `name{labels} value [timestamp]`.
func splitSample(s string) (name, labels, value string, err error) {
	i := strings.IndexAny(s, "{ ")
	if i <= 0 {
		return "", "", "", errors.New("no sample name")
	}
	name, rest := s[:i], s[i:]
	if rest[0] == '{' {
		end := labelsEnd(rest)
		if end < 0 {
			return "", "", "", errors.New("unterminated labels")
		}
		labels, rest = rest[1:end], rest[end+1:]
	}
	rest, ok := strings.CutPrefix(rest, " ")
	if !ok {
		return "", "", "", errors.New("no space before the value")
	}
	value, _, _ = strings.Cut(rest, " ")
	return name, labels, value, nil
}

// labelsEnd is the index of the brace closing the label set s starts.
func labelsEnd(s string) int {
	inQuote := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return i
		}
	}
	return -1
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return nil, fmt.Errorf("bad label in %q", s)
		}
		name := s[:eq]
		s = s[eq+2:]
		end := -1
		for i := 0; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 {
			return nil, errors.New("unterminated label value")
		}
		v, err := unescapeOM(s[:end], true)
		if err != nil {
			return nil, err
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("label %s twice", name)
		}
		out[name] = v
		s = s[end+1:]
		if len(s) > 0 {
			if s[0] != ',' || len(s) == 1 {
				return nil, fmt.Errorf("bad label separator in %q", s)
			}
			s = s[1:]
		}
	}
	return out, nil
}

func unescapeOM(s string, quoted bool) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", errors.New("dangling escape")
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case '"':
			b.WriteByte('"')
		default:
			return "", fmt.Errorf("bad escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

func parseOMFloat(s string) (float64, error) {
	switch s {
	case "+Inf", "-Inf", "NaN":
	default:
		if strings.ContainsAny(s, "xXpP_") || strings.EqualFold(s, "inf") {
			return 0, fmt.Errorf("bad number %q", s)
		}
	}
	return strconv.ParseFloat(s, 64)
}

// canonical writes labels sorted, for a series identity.
func canonical(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(l[n])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
