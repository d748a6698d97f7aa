// Package latency is the latency-state writer: a consumer of the probe
// results in JETMETRICS_OBS (<prefix>.obs.probe.>) that folds each result
// exactly once into its service's latency state in Redis (pkg/latency's
// encoded Tracker), and the collectors that expose those states as gauges.
//
// One Redis hash per service, "<prefix>:latency:{<service token>}", holds
// the encoded state together with the stream sequence of the last result
// folded into it ("the offset with the state"). A fold reads both, applies
// the result to the restored tracker and writes state and sequence back in
// one compare-and-set script that succeeds only if the hash still holds what
// was read; a result at or below the stored sequence is skipped. So a
// replay after a restart, a redelivery, or a second node folding into the
// same Redis changes nothing, and every node, folding the same stream in
// the same order, holds the same state.
//
// A stored state that cannot be used (truncated, corrupt, of another
// version, a sequence that is not a number, a key of the wrong type) is
// counted in jetmetrics_latency_state_resets_total{service,reason} and
// logged once per service and reason; the state starts again from the
// current result.
//
// Concurrency: a Writer's Run is called once; Store and the collectors are
// safe for concurrent use.
package latency
