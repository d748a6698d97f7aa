package fault_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// BenchmarkPublishSyncAlways measures what the power-loss setting costs:
// delta batches (50 series each, about 6 KB) published to an embedded
// nats-server storing on disk, with JetStream fsyncing every write
// (sync_interval: always, natsserver.Config.SyncAlways) or leaving it to
// its periodic flush (the default, every two minutes). Each publisher has
// one batch in flight, as the SDK does; with several publishers the server
// can share an fsync among their writes. ns/op is per acknowledged batch.
//
//	go test -run '^$' -bench PublishSyncAlways -benchtime 3s ./tests/fault/
func BenchmarkPublishSyncAlways(b *testing.B) {
	for _, always := range []bool{false, true} {
		for _, publishers := range []int{1, 16} {
			b.Run(fmt.Sprintf("sync_always=%v/publishers=%d", always, publishers), func(b *testing.B) {
				benchmarkPublish(b, always, publishers)
			})
		}
	}
}

func benchmarkPublish(b *testing.B, always bool, publishers int) {
	ns, err := natsserver.Start(natsserver.Config{StoreDir: b.TempDir(), Port: -1, SyncAlways: always})
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := streams.Provision(ctx, js, streams.Config{}); err != nil {
		b.Fatal(err)
	}
	var enc streams.Encoder
	enc.Begin(nodeName, "bench", 1, time.Now().UnixMilli())
	for i := range 50 {
		labels := []series.Label{{Name: "route", Value: fmt.Sprintf("/api/v1/resource/%d", i)}, {Name: "code", Value: "200"}}
		if err := enc.Counter("http_requests_total", "", labels, float64(i)); err != nil {
			b.Fatal(err)
		}
	}
	data := append([]byte(nil), enc.Finish()...)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range publishers {
		subject := streams.Subjects{}.Delta(nodeName, fmt.Sprintf("bench-%d", w))
		n := b.N / publishers
		if w < b.N%publishers {
			n++
		}
		wg.Go(func() {
			for i := range n {
				m := nats.NewMsg(subject)
				m.Data = data
				if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(fmt.Sprintf("bench-%d:%d", w, i+1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
