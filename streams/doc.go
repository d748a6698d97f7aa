// Package streams is the only contract between producers and consumers:
// subject builders, stream definitions as Go values, idempotent
// provisioning, and the delta-batch wire codec with its validation.
//
// Everything here is safe for concurrent use; Encoder values are not and
// belong to one goroutine at a time.
package streams
