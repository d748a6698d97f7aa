package node

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// Sparkline size in CSS pixels.
const (
	sparkWidth  = 120
	sparkHeight = 24
)

// sparkline draws values, oldest first, as an inline SVG polyline scaled
// to their range. It is built from numbers only (and label, escaped), so
// it is safe to insert as HTML. Fewer than two values draw nothing.
func sparkline(values []float64, label string) template.HTML {
	values = downsample(values, statusSparkPoints)
	if len(values) < 2 {
		return ""
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		lo, hi = min(lo, v), max(hi, v)
	}
	const pad = 2.0
	var pts strings.Builder
	for i, v := range values {
		x := pad + float64(i)*(sparkWidth-2*pad)/float64(len(values)-1)
		y := sparkHeight / 2.0
		if hi > lo {
			y = pad + (hi-v)*(sparkHeight-2*pad)/(hi-lo)
		}
		if i > 0 {
			pts.WriteByte(' ')
		}
		pts.WriteString(strconv.FormatFloat(x, 'f', 1, 64))
		pts.WriteByte(',')
		pts.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
	}
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s"><polyline points="%s"/></svg>`,
		sparkWidth, sparkHeight, sparkWidth, sparkHeight, template.HTMLEscapeString(label), pts.String()))
}

// downsample averages values into at most n buckets, dropping NaN and
// infinities.
func downsample(values []float64, n int) []float64 {
	finite := make([]float64, 0, len(values))
	for _, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			finite = append(finite, v)
		}
	}
	if len(finite) <= n {
		return finite
	}
	out := make([]float64, n)
	for i := range out {
		from, to := i*len(finite)/n, (i+1)*len(finite)/n
		sum := 0.0
		for _, v := range finite[from:to] {
			sum += v
		}
		out[i] = sum / float64(to-from)
	}
	return out
}

// ago says how long before now t was, roughly: "4 s ago", "3 min ago".
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d d ago", int(d.Hours()/24))
}

// formatSeconds shows a latency in a unit that suits it.
func formatSeconds(s float64) string {
	switch {
	case s == 0:
		return "0"
	case s < 1e-3:
		return fmt.Sprintf("%.0f µs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.1f ms", s*1e3)
	}
	return fmt.Sprintf("%.2f s", s)
}

// formatFigure shows a count or rate with at most three decimals, and
// large ones with a unit prefix.
func formatFigure(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return strconv.FormatFloat(v/1e9, 'f', 2, 64) + " G"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + " M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + " k"
	case a == math.Trunc(a):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// formatBytesRate shows bytes per second in binary units.
func formatBytesRate(v float64) string {
	units := []string{"B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"}
	i := 0
	for math.Abs(v) >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(v, 'f', 0, 64) + " " + units[i]
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}
