// Package volumes is the storage-volume observer: a Poller for the
// observer runtime (producers/observer) that asks each volume's Backend
// for its performance and publishes the result, success or failure, to the
// observation stream on <prefix>.obs.volume.<volume token>.
//
// Each result carries the poll's scheduled instant as observed_at, the
// polling node and its lease revision (the fencing token), and is
// published with the message id "<volume token>:<instant>", so the stream
// keeps at most one result per volume and instant even if two nodes ever
// polled the same one, or a publish is retried.
//
// Poll is safe for concurrent use; the observer calls it for many volumes
// at once, never twice at once for one volume. SetBackends (a
// configuration reload) may run while polls do: each poll uses the
// backend its volume had when it started.
package volumes
