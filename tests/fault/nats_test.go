package fault_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// outagePublishTimeout is the SDK's publish timeout in the NATS tests:
// short, so an outage shows in its retries within milliseconds.
const outagePublishTimeout = 100 * time.Millisecond

// waitBacklog waits until a producer's own metrics show it cut off: a
// batch unacknowledged, at least two retries since it had made retries0,
// and an oldest unsent delta older than age; in Stats and in what its
// Collector exports.
func waitBacklog(t testing.TB, p *producers.Producer, retries0 uint64, age time.Duration) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(p.Collector()); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, loadTimeout, func() error {
		s := p.Stats()
		if s.Unacknowledged != 1 || s.Retries < retries0+2 || s.OldestUnsent < age {
			return fmt.Errorf("producer %s: %d unacknowledged, %d retries (had %d), oldest unsent %s; want 1, +2, %s",
				p.ID(), s.Unacknowledged, s.Retries, retries0, s.OldestUnsent, age)
		}
		fams, err := reg.Gather()
		if err != nil {
			return err
		}
		got := map[string]float64{}
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				got[f.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
		if got["jetmetrics_producer_batches_unacknowledged"] != 1 ||
			got["jetmetrics_producer_publish_retries_total"] < float64(retries0+2) ||
			got["jetmetrics_producer_oldest_unsent_seconds"] < age.Seconds() {
			return fmt.Errorf("producer %s exports unacknowledged %v, retries %v, oldest unsent %vs",
				p.ID(), got["jetmetrics_producer_batches_unacknowledged"], got["jetmetrics_producer_publish_retries_total"],
				got["jetmetrics_producer_oldest_unsent_seconds"])
		}
		return nil
	})
}

// TestNATSRestarted (scenario 7): the nats-server (embedded in the test,
// the node connected to it by URL) shut down twice during load and started
// again on the same store. While it is away the producers keep recording,
// and their metrics show the backlog; once it is back they deliver
// everything, the node's aggregator resumes, and every series is exact.
// With nats.go's reconnect buffer the attempts made during the outage are
// flushed on reconnect (the broker's dedup keeps one); without it they fail
// at once, and only the SDK's own retries deliver.
func TestNATSRestarted(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []nats.Option
	}{
		{"reconnect-buffer", nil},
		{"no-reconnect-buffer", []nats.Option{nats.ReconnectBufSize(-1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := harness.NATS(t)
			url := ns.ClientURL()
			n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}), node.Config{NATSURL: url})
			load := runSDKLoadWaiting(t, func() *nats.Conn { return connect(t, url, tc.opts...) }, "restart", 2,
				producers.Config{PublishTimeout: outagePublishTimeout}, 20*time.Millisecond)
			for round := range 2 {
				load.waitChunks(t, 20)
				retries := make([]uint64, len(load.workloads))
				for i, w := range load.workloads {
					retries[i] = w.p.Stats().Retries
				}
				cfg := ns.Config()
				ns.Shutdown()
				for i, w := range load.workloads {
					waitBacklog(t, w.p, retries[i], 300*time.Millisecond)
				}
				recorded := load.chunks.Load()
				load.waitChunks(t, 10) // still recording, NATS still down
				var err error
				if ns, err = natsserver.Start(cfg); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(ns.Shutdown)
				t.Logf("round %d: NATS was down while the producers recorded %d chunks and more", round, load.chunks.Load()-recorded)
			}
			load.waitChunks(t, 20)
			led := load.finish(t)
			for _, w := range load.workloads {
				t.Logf("producer %s: %+v", w.p.ID(), w.p.Stats())
			}
			n.checkExposed(led)
			n.noDeadLetters()
			n.rn.Stop(t) // before the server it is connected to
		})
	}
}

// TestNATSDownAtStart: a producer started while no nats-server is up
// records, shows its backlog (an unacknowledged batch, retries, the age of
// the oldest unsent delta), and delivers everything once the server and a
// node come up.
func TestNATSDownAtStart(t *testing.T) {
	port := harness.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	p, err := producers.New(producers.Config{
		Node: nodeName, Name: "early",
		FlushInterval:  5 * time.Millisecond,
		PublishTimeout: outagePublishTimeout,
		Logger:         harness.Logger(t),
	}, connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	w := sdkWorkload(t, p)
	for i := range 500 {
		w.step(i)
	}
	waitBacklog(t, p, 0, 300*time.Millisecond)
	for i := 500; i < 1000; i++ {
		w.step(i)
	}
	ns, err := natsserver.Start(natsserver.Config{Name: "late", StoreDir: t.TempDir(), Port: port, Logger: harness.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}), node.Config{NATSURL: url})
	for i := 1000; i < 1500; i++ {
		w.step(i)
	}
	w.close(t)
	t.Logf("producer: %+v", p.Stats())
	n.checkExposed(w.led)
	n.rn.Stop(t)
}
