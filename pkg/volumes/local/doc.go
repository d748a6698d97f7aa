// Package local reports the performance of this machine's Linux block
// devices, from /proc/diskstats, and of its NFS mounts, from
// /proc/self/mountstats: counters the kernel keeps since boot (or mount),
// turned into rates between two polls.
//
// A Volume is safe for concurrent use; concurrent polls share one previous
// sample, each rate covering the time since the poll before it.
package local
