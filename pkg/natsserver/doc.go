// Package natsserver runs an embedded nats-server with JetStream enabled,
// alone or as one node of a cluster routed over loopback, and hands out
// in-process or TCP client connections to it.
//
// Start returns a running *Server; all of its methods are safe for
// concurrent use, and Shutdown may be called more than once. A stopped
// server is not restarted in place: call Start again with the value of
// Config, which carries the resolved name and ports, to recover the same
// node from its store directory.
package natsserver
