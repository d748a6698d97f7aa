// Package observers holds the end-to-end tests of the storage-volume
// observer before it is wired into the node: several nodes, each with its
// leases, observer, volume poller and cache writer over its own Redis,
// sharing one NATS server.
package observers
