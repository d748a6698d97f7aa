package natsserver_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
)

// An in-process server: no port is opened, and clients connect through
// Connect.
func ExampleStart() {
	dir, err := os.MkdirTemp("", "natsserver-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	s, err := natsserver.Start(natsserver.Config{StoreDir: dir, DontListen: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Shutdown()
	nc, err := s.Connect()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "METRICS", Subjects: []string{"metrics.>"}}); err != nil {
		fmt.Println(err)
		return
	}
	ack, err := js.Publish(ctx, "metrics.up", []byte("1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ack.Stream, ack.Sequence)
	// Output: METRICS 1
}
