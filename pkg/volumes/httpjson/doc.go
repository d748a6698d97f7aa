// Package httpjson reports a volume's performance from any HTTP endpoint
// that answers JSON, through a mapping of each figure to a path in the
// answer ("data.volumes.0.read_iops") and a scale (1000 turns
// milliseconds into microseconds).
//
// A Volume is safe for concurrent use.
package httpjson
