// Package obscache keeps the newest observation result per target in
// Redis, each key expiring a fixed time after the observation: the cache
// the observation consumers write and the API reads.
//
// A result replaces the stored one only if it is newer: a later
// observation time, or the same time and a higher lease revision (the
// fencing token). The comparison and the write are one Lua script, so
// concurrent writers (a replay racing a live message, two consumers during
// a restart) cannot interleave. Writing a result that is not newer, or
// already expired, changes nothing, so replays are harmless.
//
// A Cache is safe for concurrent use.
package obscache
