// Package datadir claims a node's data directory: an exclusive lock held
// for the life of the process, so two nodes never share one directory, and
// a record of the node the directory belongs to, so a node started under
// another name does not silently take over a directory whose streams,
// Redis files and marks are another node's.
//
// The lock is flock(2) on a file in the directory: the kernel releases it
// when the process exits, however it exits, so a crashed node restarts
// without cleanup. A Dir is not safe for concurrent use; Close releases it.
package datadir
