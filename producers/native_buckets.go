package producers

import (
	"fmt"

	"github.com/jetmetrics/jetmetrics/pkg/nativehistogram"
	"github.com/jetmetrics/jetmetrics/streams"
)

// NativeBuckets returns histogram bounds that are Prometheus native-histogram
// buckets: 2^(k/2^schema) for consecutive k, from the one at or below min to
// the one at or above max. Histograms with these bounds are also exposed as
// Prometheus native histograms when a scrape negotiates protobuf, with the
// same counts (docs/operations.md, "Histograms as native histograms").
//
// schema sets the resolution, from -4 (each bound 65536 times the one
// before) through 0 (twice) and 1 (sqrt 2, about 1.41: the service latency
// buckets, streams.ServiceLatencyBuckets) to 8 (2^(1/256), about 1.003).
// min and max are positive and finite, max above min, in the unit of the
// observations (seconds, bytes). The result holds at most
// streams.MaxBuckets bounds; errors wrap ErrBuckets and say what to change.
//
// The bounds equal Prometheus' own bucket boundaries to a few units in the
// last place; the node accepts any bound within a relative 1e-12 of one.
func NativeBuckets(schema int, min, max float64) ([]float64, error) {
	b, err := nativehistogram.Bounds(schema, min, max, streams.MaxBuckets)
	if err != nil {
		return nil, fmt.Errorf("%w: native buckets: %v", ErrBuckets, err)
	}
	return b, nil
}
