// Package snapshot publishes a node's aggregate to the snapshot stream on a
// fixed interval: a broadcast copy with a time to live for every peer's
// cluster view, and, less often, a checkpoint without one that the node
// restores from after losing its Redis.
//
// The snapshot is an atomic dump of the node's Redis hashes, so its version
// (the applied stream mark) describes its content exactly. Run owns its
// goroutine, publishes a removal when its context ends, and returns nil.
package snapshot
