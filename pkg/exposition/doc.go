// Package exposition turns node aggregates into Prometheus metric families:
// a prometheus.Gatherer over the aggregate held in Redis, served through
// promhttp with its content negotiation (text, OpenMetrics, protobuf) and
// compression.
//
// Counters are typed counter, gauges gauge and histograms histogram with
// cumulative buckets, _sum and _count. Gather is safe for concurrent use;
// each call reads the aggregate afresh.
package exposition
