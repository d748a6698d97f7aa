package aggregator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/consumers/aggregator"
	"github.com/jetmetrics/jetmetrics/consumers/snapshot"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// A checkpoint the delta stream refutes (a mark beyond the stream's last
// sequence for the node, or a producer mark no number of messages could
// reach), or whose headers are not what the node's publisher writes (a
// version or node other than its data's, another encoding, a removal, data
// that does not decode), is refused after Redis lost everything, and
// counted; the node rebuilds exactly what was published from the stream.
// Restored, a forged mark would make every delta look applied; and an
// undecodable checkpoint retried would stall the node for good. The header
// forgeries carry a mark the stream could hold, so only the header check
// refuses them.
func TestForgedCheckpointRefused(t *testing.T) {
	tests := []struct {
		name  string
		marks map[string]string
		forge func(m *nats.Msg)
	}{
		{"mark beyond the stream", map[string]string{"stream": "1000000"}, nil},
		{"absurd producer mark", map[string]string{"stream": "2", "p:p": "18446744073709551615"}, nil},
		{"version header not its data's", map[string]string{"stream": "2"}, func(m *nats.Msg) { m.Header.Set(streams.HeaderSnapshotVersion, "3") }},
		{"node header names another node", map[string]string{"stream": "2"}, func(m *nats.Msg) { m.Header.Set(streams.HeaderSnapshotNode, "n2") }},
		{"no node header", map[string]string{"stream": "2"}, func(m *nats.Msg) { m.Header.Del(streams.HeaderSnapshotNode) }},
		{"another encoding", map[string]string{"stream": "2"}, func(m *nats.Msg) { m.Header.Set(streams.HeaderContentEncoding, "gzip") }},
		{"a removal", map[string]string{"stream": "2"}, func(m *nats.Msg) { m.Header.Set(streams.HeaderSnapshotRemoved, "true") }},
		{"undecodable data", map[string]string{"stream": "2"}, func(m *nats.Msg) { m.Data = []byte("not zstd") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			js, sc := harness.Streams(t)
			rdb := harness.RedisClient(t, harness.Redis(t))
			store := aggregate.NewStore(rdb, "", "n1")
			const batches = 3
			for seq := 1; seq <= batches; seq++ {
				raw := fmt.Sprintf(`{"v":1,"node":"n1","producer":"p","seq":%d,"metrics":[{"name":"c_total","type":"counter","value":%d}]}`, seq, seq)
				if _, err := js.Publish(ctx, sc.Subjects().Delta("n1", "p"), []byte(raw)); err != nil {
					t.Fatal(err)
				}
			}
			reg := prometheus.NewRegistry()
			a, err := aggregator.New(aggregator.Config{Node: "n1", Streams: sc, Checkpoints: snapshot.Checkpoints{JS: js, Streams: sc},
				IdleCheck: 100 * time.Millisecond, Logger: harness.Logger(t)}, js, store, reg)
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- a.Run(rctx) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})
			total := func() error {
				st, err := store.Load(ctx)
				if err != nil {
					return err
				}
				if st.Mark != batches || len(st.Families) != 1 || st.Families[0].Series[0].Value != 1+2+3 {
					return fmt.Errorf("aggregate at mark %d: %+v, want c_total 6 at mark %d", st.Mark, st.Families, batches)
				}
				return nil
			}
			harness.Eventually(t, 10*time.Second, total)

			forged, err := streams.SnapshotMsg(sc.Subjects().Checkpoint("n1"), &aggregate.Dump{Node: "n1", Marks: tc.marks, Meta: map[string]string{}, Series: map[string]string{}}, time.Now(), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			forged.Header.Del(jetstream.MsgTTLHeader)
			if tc.forge != nil {
				tc.forge(forged)
			}
			if _, err := js.PublishMsg(ctx, forged); err != nil {
				t.Fatal(err)
			}
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			harness.Eventually(t, 15*time.Second, func() error {
				if n := counterValue(t, reg, "jetmetrics_aggregator_checkpoints_refused_total"); n != 1 {
					return fmt.Errorf("checkpoints refused: %v", n)
				}
				return total()
			})
		})
	}
}

// counterValue is the value of the registered counter name.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
