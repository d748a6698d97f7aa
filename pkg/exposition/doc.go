// Package exposition turns node aggregates into the Prometheus exposition
// formats.
//
// Handler serves aggregates with promhttp's content negotiation (text
// 0.0.4, OpenMetrics 1.0.0, delimited protobuf; identity or gzip),
// rendering them straight from the aggregate's series with an append-based
// writer: the bytes are those expfmt writes for the families Families
// builds, without building them. It keeps what it rendered of each node's
// families at each version and reuses it (gzip included: responses are
// assembled from deflate segments compressed apart), and renders a new
// version's families on every core.
//
// Every view decides first which families it serves (resolve): no two
// families served share a name in any format, the process's own families
// keep theirs, and the same states make the same families whatever node
// serves them and whatever order the states come in. A family left out is
// counted in ConflictsName, logged once, and kept whole in the JSON form.
//
// Families builds the same families as dto.MetricFamily values, for
// promhttp and for tests. Counters are typed counter, gauges gauge and
// histograms histogram with cumulative buckets, _sum and _count.
//
// Handler, Families and WriteJSON are safe for concurrent use; none of them
// modifies the states it is given.
package exposition
