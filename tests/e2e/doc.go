// Package e2e holds the end-to-end tests: real nodes with embedded NATS and
// managed redis-server processes, producers publishing through the SDK or
// plain nats.go, and assertions on what /metrics serves.
package e2e
