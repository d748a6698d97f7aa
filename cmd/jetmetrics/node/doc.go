// Package node assembles one jetmetrics node: NATS (embedded or external),
// Redis (managed child or external), stream provisioning, the aggregator,
// the HTTP exposition server and, with Demo, a built-in producer. It is
// wiring only; the parts live in streams/, consumers/, producers/ and pkg/.
//
// Run owns every goroutine and child process it starts and tears them down
// in order when its context ends: stop producing and consuming, drain the
// NATS connection, stop the managed redis-server, shut the embedded NATS
// server down.
package node
