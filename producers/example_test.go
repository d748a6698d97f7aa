package producers_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
)

func Example() {
	url, stop := exampleServer()
	defer stop()

	// Reconnect forever, so the producer rides out NATS outages.
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	p, err := producers.New(producers.Config{Node: "node1", Name: "checkout"}, nc)
	if err != nil {
		log.Fatal(err)
	}
	requests, err := p.NewCounterVec(producers.Opts{Name: "http_requests_total", Help: "HTTP requests served."}, "method", "code")
	if err != nil {
		log.Fatal(err)
	}
	latency, err := p.NewHistogram(producers.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "HTTP request latency.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1},
	})
	if err != nil {
		log.Fatal(err)
	}
	inFlight, err := p.NewGauge(producers.Opts{Name: "http_requests_in_flight", Help: "Requests being served."})
	if err != nil {
		log.Fatal(err)
	}

	// Resolve fixed label values once; updates are then single atomics.
	getOK := requests.MustWith("GET", "200")
	for range 3 {
		inFlight.Inc()
		getOK.Inc()
		latency.Observe(0.042)
		inFlight.Dec()
	}
	requests.MustWith("POST", "500").Inc()

	// Close flushes: when it returns, JetStream holds every update.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		log.Fatal(err)
	}
	st := p.Stats()
	fmt.Println("series:", st.Series, "unacknowledged:", st.Unacknowledged, "pending:", st.PendingUpdates)
	// Output: series: 4 unacknowledged: 0 pending: 0
}

// A service wraps its calls to another service with a latency handle: the
// process keeps the statistics in memory, and the nodes receive them as
// jetmetrics_service_latency_seconds{service} and
// jetmetrics_service_checks_total{service,result}.
func ExampleProducer_Latency() {
	url, stop := exampleServer()
	defer stop()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	p, err := producers.New(producers.Config{Node: "node1", Name: "checkout"}, nc)
	if err != nil {
		log.Fatal(err)
	}

	// One handle per service called; keep it.
	payments, err := p.Latency("payments-api")
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 30 * time.Millisecond} {
		payments.Observe(d) // a call that succeeded and took d
	}
	payments.Fail(errors.New("payments-api: 503 Service Unavailable")) // counted, never a latency
	// Time records f's outcome: its duration, or its error as a failure.
	_ = payments.Time(func() error { return nil })

	s := payments.Snapshot()
	fmt.Printf("successes %d, failures %d, max %.3fs, last error %q\n", s.Successes, s.Failures, s.MaxSeconds, s.LastError)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("series:", p.Stats().Series, "unacknowledged:", p.Stats().Unacknowledged)
	// Output:
	// successes 4, failures 1, max 0.040s, last error "payments-api: 503 Service Unavailable"
	// series: 3 unacknowledged: 0
}

// exampleServer runs an in-process JetStream server with the deltas
// stream, standing in for a jetmetrics node.
func exampleServer() (url string, stop func()) {
	dir, err := os.MkdirTemp("", "jetmetrics-example")
	if err != nil {
		log.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, Port: -1, NoSigs: true, Host: "127.0.0.1"})
	if err != nil {
		log.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats server not ready")
	}
	stop = func() {
		s.Shutdown()
		s.WaitForShutdown()
		_ = os.RemoveAll(dir)
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	_, err = js.CreateStream(context.Background(), streams.Config{}.DeltaStreamConfig())
	if err != nil {
		log.Fatal(err)
	}
	return s.ClientURL(), stop
}
