package node

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/producers"
)

// demo is a make-believe web shop publishing one metric of each of AWX's
// five kinds through the SDK, so a new user sees numbers move.
type demo struct {
	requests  *producers.CounterVec
	cpu       *producers.FloatCounter
	queue     *producers.GaugeVec
	temp      *producers.FloatGaugeVec
	latency   *producers.HistogramVec
	rnd       *rand.Rand
	routes    []string
	startedAt time.Time
}

// newDemo registers the demo metrics with p. The numbers are seeded from
// the node name, so every node of a demo cluster shows its own.
func newDemo(p *producers.Producer, node string) (*demo, error) {
	h := fnv.New64a()
	h.Write([]byte(node))
	seed := h.Sum64()
	d := &demo{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), routes: []string{"/", "/cart", "/checkout", "/search"}, startedAt: time.Now()}
	var err error
	if d.requests, err = p.NewCounterVec(producers.Opts{Name: "demo_http_requests_total", Help: "Requests served by the demo shop (integer counter, AWX IntM)."}, "route", "code"); err != nil {
		return nil, err
	}
	if d.cpu, err = p.NewFloatCounter(producers.Opts{Name: "demo_cpu_seconds_total", Help: "CPU time the demo shop spent (float counter, AWX FloatM)."}); err != nil {
		return nil, err
	}
	if d.queue, err = p.NewGaugeVec(producers.Opts{Name: "demo_queue_jobs", Help: "Jobs waiting in the demo shop's queues (integer gauge, AWX SetIntM)."}, "queue"); err != nil {
		return nil, err
	}
	if d.temp, err = p.NewFloatGaugeVec(producers.Opts{Name: "demo_room_temperature_celsius", Help: "Server room temperature (float gauge, AWX SetFloatM)."}, "room"); err != nil {
		return nil, err
	}
	if d.latency, err = p.NewHistogramVec(producers.HistogramOpts{Name: "demo_request_duration_seconds", Help: "Request latency of the demo shop (histogram, AWX HistogramM).",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}}, "route"); err != nil {
		return nil, err
	}
	return d, nil
}

// tick simulates one interval of traffic.
func (d *demo) tick(now time.Time) {
	phase := math.Sin(now.Sub(d.startedAt).Seconds() / 60 * math.Pi)
	for i, route := range d.routes {
		n := 20 + d.rnd.IntN(30) + int(10*phase) - 5*i
		for range max(n, 1) {
			code := "200"
			if d.rnd.Float64() < 0.03 {
				code = "500"
			}
			d.requests.MustWith(route, code).Inc()
			d.latency.MustWith(route).Observe(d.rnd.ExpFloat64() * 0.04 * float64(i+1))
		}
	}
	d.cpu.Add(0.2 + 0.1*d.rnd.Float64())
	d.queue.MustWith("email").Set(int64(d.rnd.IntN(20)))
	d.queue.MustWith("billing").Set(int64(5 + 5*phase))
	d.temp.MustWith("a").Set(21 + 2*phase + d.rnd.NormFloat64()*0.2)
	d.temp.MustWith("b").Set(23 - phase + d.rnd.NormFloat64()*0.2)
}

// runDemo publishes demo metrics until ctx ends. It logs through
// cfg.Logger: the producer adds the node's name itself.
func runDemo(ctx context.Context, nc *nats.Conn, cfg Config) error {
	log := cfg.Logger.With().Str("component", "demo").Logger()
	p, err := producers.New(producers.Config{
		Node:   cfg.Name,
		Name:   "demo",
		Prefix: cfg.Streams.Prefix,
		Logger: log,
	}, nc)
	if err != nil {
		return fmt.Errorf("demo producer: %w", err)
	}
	d, err := newDemo(p, cfg.Name)
	if err != nil {
		return fmt.Errorf("demo metrics: %w", err)
	}
	log = log.With().Str("node", cfg.Name).Logger()
	log.Info().Str("producer", p.ID()).Msg("demo producer publishing")
	t := time.NewTicker(cfg.DemoInterval)
	defer t.Stop()
	d.tick(time.Now())
	for {
		select {
		case now := <-t.C:
			d.tick(now)
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := p.Close(cctx); err != nil {
				log.Warn().Err(err).Msg("demo producer: final flush")
			}
			return nil
		}
	}
}
