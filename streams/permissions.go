package streams

// Permissions are the NATS subjects a role may publish to and subscribe
// to (allow lists: everything else is denied). They are what the roles
// of docs/security.md mean as NATS enforces them, for the node's embedded
// server and for an operator writing nsc or server configuration by hand.
type Permissions struct {
	Publish, Subscribe []string
}

// InboxPrefix is the reply inbox prefix of a client authenticated as
// user: a producer may subscribe to nothing else, so its client must be
// given nats.CustomInboxPrefix(InboxPrefix(user)) for JetStream
// acknowledgements to reach it.
func InboxPrefix(user string) string { return "_INBOX." + user }

// ProducerPermissions lets a producer credential publish deltas under the
// names in owners ("*": any) to the nodes in nodes ("*": any), and read
// nothing but the replies to its own publishes (user's inbox): no
// JetStream API, no other stream, no KV.
func (c Config) ProducerPermissions(user string, owners, nodes []string) Permissions {
	s := c.Subjects()
	var pub []string
	for _, n := range nodes {
		for _, o := range owners {
			pub = append(pub, s.DeltaOwner(n, o))
		}
	}
	return Permissions{Publish: pub, Subscribe: []string{InboxPrefix(user) + ".>"}}
}

// NodePermissions lets node publish its own snapshots and checkpoints,
// dead letters, observation results and lease writes, and make the
// JetStream API calls its consumers need on the jetmetrics streams (stream
// info, message get, consumer create, info, next, ack, delete). It cannot
// create, update, purge or delete a stream or bucket: that is the admin
// role's (the node recreates a deleted stream through an admin
// connection).
func (c Config) NodePermissions(node string, obs ObsConfig) Permissions {
	s := c.Subjects()
	kvStream := "KV_" + obs.LeaseBucket()
	pub := []string{
		s.Snapshot(node),
		s.Checkpoint(node),
		s.Snapshot(node) + ".*", // chunks (snapshot_chunk.go)
		s.Checkpoint(node) + ".*",
		s.SnapshotRequestAll(), // asking a peer for a full snapshot (snapshot_delta.go)
		s.DeadLetterAll(),
		obs.Subjects().ObservationAll(),
		"$KV." + obs.LeaseBucket() + ".>",
		"$JS.API.INFO",
		"$JS.FC.>",
	}
	for _, st := range []string{c.DeltaStream(), c.DeadLetterStream(), c.SnapshotStream(), obs.ObsStream(), kvStream} {
		pub = append(pub,
			"$JS.API.STREAM.INFO."+st,
			"$JS.API.STREAM.MSG.GET."+st,
			"$JS.API.DIRECT.GET."+st,
			"$JS.API.DIRECT.GET."+st+".>",
			"$JS.API.CONSUMER.CREATE."+st,
			"$JS.API.CONSUMER.CREATE."+st+".>",
			"$JS.API.CONSUMER.DURABLE.CREATE."+st+".*",
			"$JS.API.CONSUMER.INFO."+st+".*",
			"$JS.API.CONSUMER.DELETE."+st+".*",
			"$JS.API.CONSUMER.MSG.NEXT."+st+".*",
			"$JS.ACK."+st+".>",
		)
	}
	return Permissions{Publish: pub, Subscribe: []string{"_INBOX.>", s.SnapshotRequest(node)}}
}
