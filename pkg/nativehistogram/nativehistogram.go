package nativehistogram

import (
	"fmt"
	"math"
)

// The schemas of exponential native histograms that Prometheus accepts.
const (
	MinSchema = -4
	MaxSchema = 8
)

// tolerance is the relative distance from a boundary within which a
// classic bound is taken for it.
const tolerance = 1e-12

// fracs[s][j] is 2^(j/2^s) / 2 for schema s > 0: the fraction in [0.5, 1)
// of the boundaries whose index is j modulo 2^s.
var fracs = func() [MaxSchema + 1][]float64 {
	var out [MaxSchema + 1][]float64
	for s := 1; s <= MaxSchema; s++ {
		// roots[i] is 2^(2^i/2^s), by repeated square roots of 2: IEEE
		// square roots and products, the same on every platform.
		roots := make([]float64, s)
		v := 2.0
		for i := s - 1; i >= 0; i-- {
			v = math.Sqrt(v)
			roots[i] = v
		}
		out[s] = make([]float64, 1<<s)
		for j := range out[s] {
			f := 0.5
			for i := range s {
				if j&(1<<i) != 0 {
					f *= roots[i]
				}
			}
			out[s][j] = f
		}
	}
	return out
}()

// Bound is the upper boundary of native bucket idx in schema, 2^(idx/2^schema):
// +Inf past the largest float64, 0 below the smallest. schema must be within
// [MinSchema, MaxSchema].
func Bound(idx int, schema int32) float64 {
	if schema <= 0 {
		return math.Ldexp(1, idx<<-schema)
	}
	j := idx & (1<<schema - 1)
	return math.Ldexp(fracs[schema][j], idx>>schema+1)
}

// Layout describes a classic layout that coincides with native buckets:
// bound i (from 0) is the boundary First+i of Schema.
//
// Served as a native histogram, the observations at or below the lowest
// bound go to the zero bucket, whose threshold is the lowest bound (a
// native histogram's zero bucket is [-threshold, threshold]; the bounds
// are positive, so it holds exactly the lowest classic bucket); classic
// bucket i > 0 is native bucket First+i; and the observations above the
// highest bound, which a classic histogram keeps only in +Inf, go to the
// next native bucket, First+len(bounds). That last one is the one
// approximation: they may lie anywhere above the highest bound, the native
// bucket says below 2^(1/2^Schema) times it.
type Layout struct {
	Schema int32
	First  int
}

// Aligned reports the layout of bounds, finite upper bounds in ascending
// order without +Inf, when they coincide with native buckets: at least two,
// all positive, bound i equal (within a relative 1e-12) to the boundary
// First+i of one schema from MinSchema to MaxSchema, and the bucket above
// the highest bound a finite one.
func Aligned(bounds []float64) (Layout, bool) {
	if len(bounds) < 2 || !(bounds[0] > 0) || math.IsInf(bounds[len(bounds)-1], 0) {
		return Layout{}, false
	}
	// The ratio of neighbours is 2^(1/2^s).
	r := math.Log2(math.Log2(bounds[1] / bounds[0]))
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return Layout{}, false
	}
	s := -math.Round(r)
	if s < MinSchema || s > MaxSchema {
		return Layout{}, false
	}
	schema := int32(s)
	first := math.Round(math.Ldexp(math.Log2(bounds[0]), int(schema)))
	if math.Abs(first) > 1<<30 {
		return Layout{}, false
	}
	l := Layout{Schema: schema, First: int(first)}
	for i, b := range bounds {
		if !near(b, Bound(l.First+i, schema)) {
			return Layout{}, false
		}
	}
	if top := Bound(l.First+len(bounds), schema); math.IsInf(top, 0) || top > math.MaxFloat64/2 {
		return Layout{}, false
	}
	return l, true
}

func near(b, want float64) bool {
	return want > 0 && !math.IsInf(want, 0) && math.Abs(b-want) <= tolerance*want
}

// Bounds returns the finite upper bounds of the native buckets of schema
// from the boundary at or below min to the one at or above max: a classic
// layout that Aligned accepts. It fails for a schema outside [MinSchema,
// MaxSchema], for min or max not finite and positive, for max not above
// min, and for a layout of more than maxBounds bounds (0 for no limit).
func Bounds(schema int, min, max float64, maxBounds int) ([]float64, error) {
	switch {
	case schema < MinSchema || schema > MaxSchema:
		return nil, fmt.Errorf("schema %d is outside [%d, %d]", schema, MinSchema, MaxSchema)
	case !(min > 0) || math.IsInf(min, 0):
		return nil, fmt.Errorf("min %v is not a finite positive number of the unit", min)
	case !(max > min) || math.IsInf(max, 0):
		return nil, fmt.Errorf("max %v is not finite and above min %v", max, min)
	}
	s := int32(schema)
	// Start below the boundary at or below min, and above the one at or
	// above max, by a margin the logarithms' rounding never eats, then
	// close in.
	lo := int(math.Floor(math.Ldexp(math.Log2(min), schema))) - 2
	for range 4 {
		if b := Bound(lo+1, s); b < min || near(min, b) {
			lo++
		}
	}
	hi := int(math.Ceil(math.Ldexp(math.Log2(max), schema))) + 2
	for range 4 {
		if b := Bound(hi-1, s); b > max || near(max, b) {
			hi--
		}
	}
	if n := hi - lo + 1; maxBounds > 0 && n > maxBounds {
		return nil, fmt.Errorf("schema %d from %v to %v takes %d bounds, more than %d: raise the schema's lowest bound, lower its highest, or take a smaller schema", schema, min, max, n, maxBounds)
	}
	out := make([]float64, 0, hi-lo+1)
	for k := lo; k <= hi; k++ {
		b := Bound(k, s)
		if b == 0 || math.IsInf(b, 0) {
			return nil, fmt.Errorf("schema %d from %v to %v reaches past the float64 range", schema, min, max)
		}
		out = append(out, b)
	}
	if _, ok := Aligned(out); !ok {
		return nil, fmt.Errorf("schema %d from %v to %v: the bounds %v are not native buckets (the top one is too close to the float64 maximum)", schema, min, max, out)
	}
	return out, nil
}
