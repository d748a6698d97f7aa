// Package memlimit decides a process's soft memory limit, the one Go's
// runtime/debug.SetMemoryLimit sets: a size given, or a fraction of the
// memory limit of the cgroup the process runs in (a container's limit, a
// systemd unit's MemoryMax), or the GOMEMLIMIT the runtime read at start.
//
// Without a limit the runtime lets the heap grow to twice the live heap
// between collections (GOGC=100) and keeps the peaks of transient work; with
// one it collects more often as the heap nears the limit, trading GC CPU
// for memory. A limit below the live heap makes the collector run
// continuously, at most about half the CPU.
//
// Parse reads a setting, Decide turns it into a Limit from what it reads of
// a Machine (System is this one's; tests give fake cgroup files), and
// Limit.Apply sets it. The runtime's limit is one per process: Apply
// belongs to the command that owns the process, once, at start. Parse and
// Decide are safe for concurrent use.
package memlimit
