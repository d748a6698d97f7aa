package producers_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// natsServer is an in-process nats-server with JetStream that can be shut
// down and started again on the same port and store directory.
type natsServer struct {
	t     testing.TB
	store string
	port  int
	s     *server.Server
}

func startServer(t testing.TB) *natsServer {
	t.Helper()
	ns := &natsServer{t: t, store: t.TempDir(), port: -1}
	ns.start()
	ns.port = ns.s.Addr().(*net.TCPAddr).Port
	t.Cleanup(ns.shutdown)
	return ns
}

func (ns *natsServer) start() {
	ns.t.Helper()
	s, err := server.NewServer(&server.Options{
		JetStream: true, StoreDir: ns.store, Port: ns.port, NoSigs: true, Host: "127.0.0.1",
	})
	if err != nil {
		ns.t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		ns.t.Fatal("nats server not ready")
	}
	ns.s = s
}

func (ns *natsServer) shutdown() {
	if ns.s == nil {
		return
	}
	ns.s.Shutdown()
	ns.s.WaitForShutdown()
	ns.s = nil
}

func (ns *natsServer) url() string { return ns.s.ClientURL() }

// connect dials the way the producer documentation asks: reconnect
// forever.
func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// createStream creates the deltas stream the way the server side will.
func createStream(t testing.TB, nc *nats.Conn) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := streams.Config{}.DeltaStreamConfig()
	if cfg.Name != "JETMETRICS_DELTAS" || cfg.Subjects[0] != "jetmetrics.delta.>" || cfg.Duplicates != 2*time.Minute {
		t.Fatalf("unexpected delta stream definition %+v", cfg)
	}
	st, err := js.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return st
}

// env is a server, a connection and the deltas stream.
type env struct {
	srv    *natsServer
	nc     *nats.Conn
	stream jetstream.Stream
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := startServer(t)
	nc := connect(t, srv.url())
	return &env{srv: srv, nc: nc, stream: createStream(t, nc)}
}

// newProducer starts a producer whose Close is checked at cleanup unless
// the test closes it itself.
func (e *env) newProducer(t testing.TB, cfg producers.Config) *producers.Producer {
	t.Helper()
	if cfg.Node == "" {
		cfg.Node = "node1"
	}
	if cfg.Name == "" {
		cfg.Name = "svc"
	}
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	p, err := producers.New(cfg, e.nc)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

// stored is one message of the stream, decoded.
type stored struct {
	streamSeq uint64
	subject   string
	msgID     string
	size      int
	batch     streams.Batch
}

// readAll decodes every message of the stream with encoding/json.
func readAll(t testing.TB, st jetstream.Stream) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var out []stored
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		s := stored{streamSeq: seq, subject: m.Subject, msgID: m.Header.Get(jetstream.MsgIDHeader), size: len(m.Data)}
		if err := json.Unmarshal(m.Data, &s.batch); err != nil {
			t.Fatalf("decode message %d: %v\n%s", seq, err, m.Data)
		}
		out = append(out, s)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
