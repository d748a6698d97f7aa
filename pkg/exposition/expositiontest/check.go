// Package expositiontest checks scrapes as Prometheus and promtool would:
// each body parses in its format, no family or series appears twice, no
// sample name of one family is another's, and the families lint clean.
//
// Its functions are safe for concurrent use.
package expositiontest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Check parses body, served as contentType (text 0.0.4, OpenMetrics 1.0.0
// or delimited protobuf), and reports the first way in which a scraper
// would refuse it or misread it. It returns the families parsed; for
// OpenMetrics, which expfmt cannot parse, their names and types only.
func Check(body []byte, contentType string) (map[string]*dto.MetricFamily, error) {
	switch expfmt.Format(contentType).FormatType() {
	case expfmt.TypeTextPlain:
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("text parser: %w", err)
		}
		if err := checkLines(body, false); err != nil {
			return nil, err
		}
		return fams, disjoint(fams)
	case expfmt.TypeOpenMetrics:
		if err := checkLines(body, true); err != nil {
			return nil, err
		}
		return nil, nil
	case expfmt.TypeProtoDelim:
		fams := map[string]*dto.MetricFamily{}
		dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.NewFormat(expfmt.TypeProtoDelim))
		for {
			mf := &dto.MetricFamily{}
			if err := dec.Decode(mf); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("protobuf: %w", err)
			}
			if fams[mf.GetName()] != nil {
				return nil, fmt.Errorf("protobuf: family %s twice", mf.GetName())
			}
			seen := map[string]bool{}
			for _, m := range mf.GetMetric() {
				k := labelKey(m.GetLabel())
				if seen[k] {
					return nil, fmt.Errorf("protobuf: series %s{%s} twice", mf.GetName(), k)
				}
				seen[k] = true
			}
			fams[mf.GetName()] = mf
		}
		return fams, disjoint(fams)
	}
	return nil, fmt.Errorf("content type %q: not an exposition format", contentType)
}

func labelKey(ls []*dto.LabelPair) string {
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// disjoint reports a sample name two families of fams hold, or one
// family holds that is another family's name: the text parser, and
// Prometheus, would read it as the other's.
func disjoint(fams map[string]*dto.MetricFamily) error {
	owner := map[string]string{}
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		for _, s := range append(samples(n, strings.ToLower(fams[n].GetType().String()), false), n) {
			if o, ok := owner[s]; ok && o != n {
				return fmt.Errorf("families %s and %s both take %s", o, n, s)
			}
			owner[s] = n
		}
	}
	return nil
}

// samples are the sample names a family of type typ may hold, in the text
// format or (om) OpenMetrics.
func samples(name, typ string, om bool) []string {
	switch typ {
	case "counter":
		if om {
			return []string{name + "_total", name + "_created"}
		}
		return []string{name}
	case "histogram":
		return []string{name + "_bucket", name + "_count", name + "_sum", name + "_created"}
	case "summary":
		return []string{name, name + "_count", name + "_sum", name + "_created"}
	}
	return []string{name}
}

// checkLines reads a text or OpenMetrics body line by line: every family
// declared once, every sample inside the family declared last and of a
// name that family may hold, no series twice, no two families taking one
// name, and for OpenMetrics the final # EOF.
func checkLines(body []byte, om bool) error {
	types := map[string]string{}
	owner := map[string]string{}
	series := map[string]bool{}
	var fam, typ string
	eof := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if eof {
			return fmt.Errorf("line %d: %q after # EOF", n, line)
		}
		switch {
		case line == "# EOF" && om:
			eof = true
			continue
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 {
				return fmt.Errorf("line %d: %q", n, line)
			}
			if _, ok := types[f[2]]; ok {
				return fmt.Errorf("line %d: family %s declared twice", n, f[2])
			}
			fam, typ = f[2], f[3]
			types[fam] = typ
			for _, s := range append(samples(fam, typ, om), fam) {
				if o, ok := owner[s]; ok && o != fam {
					return fmt.Errorf("line %d: families %s and %s both take %s", n, o, fam, s)
				}
				owner[s] = fam
			}
			continue
		case strings.HasPrefix(line, "#") || line == "":
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			return fmt.Errorf("line %d: %q", n, line)
		}
		name := line[:end]
		if fam == "" || !slices.Contains(samples(fam, typ, om), name) {
			return fmt.Errorf("line %d: sample %s outside its family (in %s %s)", n, name, typ, fam)
		}
		id := line[:strings.LastIndexByte(line, ' ')]
		if series[id] {
			return fmt.Errorf("line %d: series %s twice", n, id)
		}
		series[id] = true
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if om && !eof {
		return errors.New("no # EOF")
	}
	return nil
}

// Lint runs promlint over fams. Problems of a family published names
// allows (published names chosen outside the project: it may lack help,
// and the suffix conventions are advice to the publisher) are left out;
// every other problem is returned, "metric not unique" always.
func Lint(fams map[string]*dto.MetricFamily, published func(name string) bool) ([]promlint.Problem, error) {
	list := make([]*dto.MetricFamily, 0, len(fams))
	for _, mf := range fams {
		list = append(list, mf)
	}
	problems, err := promlint.NewWithMetricFamilies(list).Lint()
	if err != nil {
		return nil, err
	}
	out := problems[:0]
	for _, p := range problems {
		if published != nil && published(p.Metric) && p.Text != "metric not unique" {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}
