package natsserver_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

const (
	testTimeout = 10 * time.Second
	// attemptTimeout bounds one JetStream request inside a retry loop.
	attemptTimeout = time.Second
)

// newJetStream returns a JetStream context on nc, closing nc at cleanup.
func newJetStream(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func connectTCP(t *testing.T, s *natsserver.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func connectInProcess(t *testing.T, s *natsserver.Server) *nats.Conn {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func createStream(t *testing.T, js jetstream.JetStream, replicas int) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "METRICS",
		Subjects: []string{"metrics.>"},
		Storage:  jetstream.FileStorage,
		Replicas: replicas,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// publish publishes data with a message id, retrying until the stream
// acknowledges it: while a stream elects a leader, or interest in it
// crosses a fresh route, a publish finds no responder. The id makes a
// retry of a publish that was stored but not acknowledged a no-op.
func publish(t *testing.T, js jetstream.JetStream, subject, data string) {
	t.Helper()
	harness.Eventually(t, testTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		_, err := js.Publish(ctx, subject, []byte(data), jetstream.WithMsgID(subject+"/"+data))
		return err
	})
}

// waitStreamMsgs waits until the stream reports want messages. Each
// request gets a short timeout and is retried: a request that reaches the
// cluster while the stream has no leader is dropped, not answered.
func waitStreamMsgs(t *testing.T, js jetstream.JetStream, want uint64) {
	t.Helper()
	harness.Eventually(t, testTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		st, err := js.Stream(ctx, "METRICS")
		if err != nil {
			return err
		}
		if got := st.CachedInfo().State.Msgs; got != want {
			return fmt.Errorf("stream has %d messages, want %d", got, want)
		}
		return nil
	})
}

func TestPublishInProcessAndTCP(t *testing.T) {
	s := harness.NATS(t)
	if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("client url %q, want nats://127.0.0.1:port", s.ClientURL())
	}
	if s.ClusterURL() != "" {
		t.Fatalf("cluster url %q for a single node, want empty", s.ClusterURL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := s.WaitJetStreamReady(ctx); err != nil {
		t.Fatal(err)
	}

	inProc := newJetStream(t, connectInProcess(t, s))
	tcp := newJetStream(t, connectTCP(t, s))
	createStream(t, inProc, 1)
	publish(t, inProc, "metrics.a", "in-process")
	publish(t, tcp, "metrics.b", "tcp")

	waitStreamMsgs(t, tcp, 2)
}

func TestRestartRecoversStream(t *testing.T) {
	first, err := natsserver.Start(natsserver.Config{
		StoreDir:   t.TempDir(),
		Port:       -1,
		SyncAlways: true,
		Logger:     harness.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.Shutdown)
	cfg := first.Config()
	if cfg.Port <= 0 || cfg.Name == "" {
		t.Fatalf("effective config has port %d, name %q; want both resolved", cfg.Port, cfg.Name)
	}

	nc := connectInProcess(t, first)
	js := newJetStream(t, nc)
	createStream(t, js, 1)
	publish(t, js, "metrics.a", "kept")
	nc.Close()
	first.Shutdown()

	second, err := natsserver.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Shutdown)
	if second.ClientURL() != first.ClientURL() {
		t.Fatalf("restart listens on %s, want %s", second.ClientURL(), first.ClientURL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := second.WaitJetStreamReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitStreamMsgs(t, newJetStream(t, connectTCP(t, second)), 1)
}

func TestDontListen(t *testing.T) {
	s, err := natsserver.Start(natsserver.Config{
		StoreDir:   t.TempDir(),
		DontListen: true,
		Logger:     harness.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	if s.ClientURL() != "" {
		t.Fatalf("client url %q, want empty with DontListen", s.ClientURL())
	}
	js := newJetStream(t, connectInProcess(t, s))
	createStream(t, js, 1)
	publish(t, js, "metrics.a", "x")
}

func TestStartFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.Addr().String()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name string
		cfg  natsserver.Config
		want string
	}{
		{"no store dir", natsserver.Config{Port: -1}, "store dir is required"},
		{"routes without cluster", natsserver.Config{Port: -1, Routes: []string{"nats://127.0.0.1:1"}}, "cluster listen"},
		{"cluster without routes", natsserver.Config{Port: -1, ClusterListen: "127.0.0.1:-1"}, "at least one route"},
		{"client port in use", natsserver.Config{Port: busyPort}, busyAddr},
		{"cluster port in use", natsserver.Config{
			Port:          -1,
			ClusterListen: busyAddr,
			Routes:        []string{"nats://" + busyAddr},
		}, "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = harness.Logger(t)
			if tt.cfg.StoreDir == "" && tt.want != "store dir is required" {
				tt.cfg.StoreDir = t.TempDir()
			}
			begin := time.Now()
			s, err := natsserver.Start(tt.cfg)
			if err == nil {
				s.Shutdown()
				t.Fatal("Start succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
			// A listener that cannot bind is reported at once, not after
			// the ten second readiness timeout.
			if d := time.Since(begin); d > 2*time.Second {
				t.Fatalf("Start took %s to fail", d)
			}
		})
	}
}

func TestClusterReplicatedStream(t *testing.T) {
	nodes := harness.NATSCluster(t, 3)
	for _, s := range nodes {
		if !strings.HasPrefix(s.ClusterURL(), "nats://127.0.0.1:") {
			t.Fatalf("cluster url %q, want nats://127.0.0.1:port", s.ClusterURL())
		}
	}

	js := newJetStream(t, connectInProcess(t, nodes[0]))
	st := createStream(t, js, 3)
	publish(t, js, "metrics.a", "replicated")

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info %+v, want a leader and 2 replicas", info.Cluster)
	}
	// Every node answers for the stream, whichever holds its leader.
	for _, s := range nodes {
		waitStreamMsgs(t, newJetStream(t, connectInProcess(t, s)), 1)
	}

	// Restart the stream leader from its effective config: it rejoins on
	// the same ports and name, and the stream is still there through it.
	i := slices.IndexFunc(nodes, func(s *natsserver.Server) bool { return s.Config().Name == info.Cluster.Leader })
	if i < 0 {
		t.Fatalf("stream leader %q is not a node", info.Cluster.Leader)
	}
	cfg := nodes[i].Config()
	nodes[i].Shutdown()
	restarted, err := natsserver.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(restarted.Shutdown)
	if err := restarted.WaitJetStreamReady(ctx); err != nil {
		t.Fatal(err)
	}
	if restarted.ClusterURL() != nodes[i].ClusterURL() {
		t.Fatalf("restarted node routes on %s, want %s", restarted.ClusterURL(), nodes[i].ClusterURL())
	}
	waitStreamMsgs(t, newJetStream(t, connectInProcess(t, restarted)), 1)
}
