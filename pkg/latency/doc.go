// Package latency keeps the latency statistics of a service: how many
// checks succeeded and failed, the running mean, a time-decayed EWMA, a
// window of recent samples with its percentiles, min, max and the last
// sample, error and times. A probe consumer folds probe results into one
// Tracker per service and stores its encoded state in Redis; any Go process
// can also keep Trackers in memory (a Set keyed by service name) around its
// own calls to other services.
//
// A failure is counted as a failure, never as a latency: Fail changes the
// failure counters, the last error and the last failure time, and no
// latency statistic. Observe refuses a negative duration and a time outside
// the Unix nanosecond range, so no statistic is ever NaN or infinite.
//
// The encoded state (MarshalBinary, Decode) is versioned and checksummed.
// Decoding an unusable state returns a *DecodeError whose Reason is one of
// a closed set (missing, truncated, malformed, version, checksum,
// inconsistent); Restore falls back to a fresh Tracker and says why, and
// Resets counts jetmetrics_latency_state_resets_total{service,reason} and
// logs each (service, reason) once. docs/latency.md describes the
// statistics and the state layout.
//
// Concurrency: a Tracker, a Set and Resets are safe for concurrent use.
// Observe and Fail take the tracker's mutex for a few arithmetic steps;
// Observe never allocates, Fail only to repair a reason that is not UTF-8.
package latency
