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

// serviceLatencyBuckets: from 0.5 ms (a call within a data centre) to one
// minute (a client's longest timeout), about 2.5× apart. 16 bounds.
var serviceLatencyBuckets = []float64{
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}

// ServiceLatencyBuckets returns a copy of the upper bounds of
// jetmetrics_service_latency_seconds, in seconds, without +Inf: 0.5 ms,
// 1 ms, 2.5 ms, 5 ms, 10 ms, 25 ms, 50 ms, 100 ms, 250 ms, 500 ms, 1 s,
// 2.5 s, 5 s, 10 s, 30 s, 60 s.
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
