// Package redisserver runs redis-server as a managed child process with
// AOF persistence on a unix socket or a loopback TCP port, for tests and
// for single-host deployments that bring their own Redis.
//
// With Config.Password set, no client gets past AUTH without it: the
// password reaches the child on its standard input, never on its command
// line, and is blanked out of the child's output. A socket is mode 0700,
// and Config.TempSocket puts it in a private directory of its own when
// the data directory is too deep for a socket path, so a node never has
// to fall back to TCP.
//
// Start returns a running *Server. Its methods are safe for concurrent
// use: Stop, Kill, Restart and the restarts done by Supervise are
// serialised, and URL and Options never change for the life of a Server,
// so clients keep working across restarts. After Stop returns no child
// process and no goroutine of the Server is left running.
package redisserver
