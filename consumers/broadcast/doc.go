// Package broadcast keeps, in this node's Redis, the newest snapshot of
// every node in the cluster, so that this node's /metrics/cluster shows the
// whole cluster.
//
// It reads the snapshot stream with an ordered consumer starting at the
// last message of each subject; a snapshot replaces the stored one only if
// its version is at least as high, and each stored snapshot expires with its
// time to live, so a node that dies drops out of the cluster view while the
// peer store still remembers it (down, until forgotten), and one that stops
// gracefully, or that an operator forgets, is removed at once. Run owns its
// goroutine and returns nil when its context ends.
package broadcast
