// Package series names Prometheus series: it validates metric and label
// names and values, and encodes a series (a metric name plus a sorted label
// set) as one canonical string key and back.
//
// The key is the series as it appears in the Prometheus text format,
// name{a="x",b="y"} with label names sorted and values escaped, so an
// operator reading a Redis hash with redis-cli sees familiar series. Every
// function is pure and safe for concurrent use.
package series
