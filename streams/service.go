package streams

import (
	"slices"

	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// The service latency families are the only names under ReservedPrefix
// that a producer may publish: the SDK's per-service latency handle
// (producers.Producer.Latency) sends a service's call latencies and check
// results through the delta pipeline under the names the node's service
// probes expose, so that PromQL sees one family per name whatever measured
// it. Because every producer and the probes must agree on their shape,
// the decoder accepts them in that shape only (checkServiceFamily):
//
//	jetmetrics_service_latency_seconds{service}       histogram, ServiceLatencyBuckets
//	jetmetrics_service_checks_total{service,result}   counter, result "success" or "failure"
const (
	ServiceLatencyName = "jetmetrics_service_latency_seconds"
	ServiceLatencyHelp = "Latency of a service's successful checks and calls, in seconds; failures are counted in jetmetrics_service_checks_total, never here."
	ServiceChecksName  = "jetmetrics_service_checks_total"
	ServiceChecksHelp  = "Checks and calls of a service, by result (success or failure)."

	// ServiceLabel names the service, a label value.
	ServiceLabel = "service"
	// ResultLabel is ResultSuccess or ResultFailure.
	ResultLabel   = "result"
	ResultSuccess = "success"
	ResultFailure = "failure"
)

// serviceLatencyBuckets are the native-histogram buckets of schema 1
// (each bound sqrt 2 times the one before) from 2^-13 s (about 122 µs, a
// call within a data centre) to 2^7 s (128 s, past a client's longest
// timeout): 2^(k/2) s for k from -26 to 14, 41 bounds. Being native
// buckets (pkg/nativehistogram), the family is served as a Prometheus
// native histogram too when a scrape negotiates protobuf. The values are
// written out, not computed, because they are part of the wire format:
// a JSON producer sends these float64 values exactly (docs/wire-format.md).
var serviceLatencyBuckets = []float64{
	0.0001220703125, 0.00017263349150062197, 0.000244140625, 0.00034526698300124393, 0.00048828125, 0.0006905339660024879,
	0.0009765625, 0.0013810679320049757, 0.001953125, 0.0027621358640099515, 0.00390625, 0.005524271728019903,
	0.0078125, 0.011048543456039806, 0.015625, 0.02209708691207961, 0.03125, 0.04419417382415922,
	0.0625, 0.08838834764831845, 0.125, 0.1767766952966369, 0.25, 0.3535533905932738,
	0.5, 0.7071067811865476, 1, 1.4142135623730951, 2, 2.8284271247461903,
	4, 5.656854249492381, 8, 11.313708498984761, 16, 22.627416997969522,
	32, 45.254833995939045, 64, 90.50966799187809, 128,
}

// ServiceLatencyBuckets returns a copy of the upper bounds of
// jetmetrics_service_latency_seconds, in seconds, without +Inf: the 41
// native-histogram buckets of schema 1 from 2^-13 s (about 122 µs) to
// 2^7 s (128 s), 2^(k/2) for k from -26 to 14, each sqrt 2 (about 1.41)
// times the one before. Served in protobuf, the family is a Prometheus
// native histogram too.
func ServiceLatencyBuckets() []float64 { return slices.Clone(serviceLatencyBuckets) }

// isServiceFamily reports whether name is one of the service latency
// families.
func isServiceFamily(name string) bool {
	return name == ServiceLatencyName || name == ServiceChecksName
}

// checkServiceFamily rejects an entry of a service latency family that is
// not in the family's fixed shape. labels are the entry's labels without
// empty values, sorted by name.
func checkServiceFamily(m *Metric, labels []series.Label) *RejectError {
	switch m.Name {
	case ServiceLatencyName:
		if m.Type != KindHistogram {
			return reject(ReasonTypeConflict, "%s is a histogram, not a %s", m.Name, m.Type)
		}
		if !slices.Equal(m.Buckets, serviceLatencyBuckets) {
			return reject(ReasonLayoutConflict, "%s has the fixed buckets %v (streams.ServiceLatencyBuckets), not %v", m.Name, serviceLatencyBuckets, m.Buckets)
		}
		if len(labels) != 1 || labels[0].Name != ServiceLabel {
			return reject(ReasonLabelName, "%s has exactly one label, %s", m.Name, ServiceLabel)
		}
	default: // ServiceChecksName
		if m.Type != KindCounter {
			return reject(ReasonTypeConflict, "%s is a counter, not a %s", m.Name, m.Type)
		}
		// Sorted: result before service.
		if len(labels) != 2 || labels[0].Name != ResultLabel || labels[1].Name != ServiceLabel {
			return reject(ReasonLabelName, "%s has exactly the labels %s and %s", m.Name, ServiceLabel, ResultLabel)
		}
		if r := labels[0].Value; r != ResultSuccess && r != ResultFailure {
			return reject(ReasonLabelValue, "%s label %s is %s or %s", m.Name, ResultLabel, ResultSuccess, ResultFailure)
		}
	}
	return nil
}
