// Package natsauth is NATS authentication for jetmetrics: the users file
// of a node's embedded server (LoadUsers: each user's credential and
// role), and the client options of a node, the SDK or a CLI connecting
// to a NATS that requires credentials (ClientOptions). It holds no state;
// everything in it is safe for concurrent use.
//
// A producer connects with its credential and the reply inbox its
// permissions allow:
//
//	opts, err := natsauth.ClientOptions{User: "billing", PasswordFile: "/run/secrets/nats"}.NATSOptions()
//	if err != nil { … }
//	nc, err := nats.Connect(url, append(opts, nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))...)
package natsauth
