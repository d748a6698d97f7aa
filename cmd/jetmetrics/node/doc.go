// Package node assembles one jetmetrics node: NATS (embedded or external),
// Redis (managed child or external), stream provisioning, the HTTP server,
// and the components that do the work (components.go): the aggregator,
// the snapshot publisher, the broadcast consumer, the backlog scanner,
// with Demo a built-in producer, and for the volumes of the configuration
// file the volume observer, its cache writer and its API. It is wiring
// only; the parts live in streams/, consumers/, producers/ and pkg/.
//
// Each component is a Component (Run and Ready); one runner starts them in
// the node's group, and /-/ready reports each. Run owns every goroutine and
// child process it starts and tears them down in order when its context
// ends: stop producing and consuming, drain the NATS connection, stop the
// managed redis-server, shut the embedded NATS server down. A live call of
// the volume API runs under Run's context, so it ends with it.
package node
