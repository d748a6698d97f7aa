package harness

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/streams"
)

// Streams starts an embedded NATS server (NATS), connects to it and
// provisions the project's streams with their defaults on one replica. The
// connection is closed at cleanup.
func Streams(t testing.TB) (jetstream.JetStream, streams.Config) {
	t.Helper()
	nc, err := nats.Connect(NATS(t).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := streams.Config{}.WithDefaults()
	cfg.Replicas = 1
	if err := streams.Provision(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	return js, cfg
}
