// Package aggregate holds one node's metric aggregate in Redis: the key
// schema, the script that applies a group of updates together with the
// node's stream mark and producers' batch marks in one atomic step, and the
// reader that loads the aggregate back as families of series.
//
// Every key of a node carries the hash tag {node}, so one script touches one
// slot and Redis Cluster works. A Store is safe for concurrent use; Apply's
// compare-and-set on the stream mark makes concurrent appliers safe too: at
// most one of two racing applies of the same position succeeds.
package aggregate
