package producers_test

import (
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/producers"
)

// TestHotPathAllocatesNothing: updates on a resolved series, and looking up
// an existing labelled series, allocate nothing.
func TestHotPathAllocatesNothing(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{FlushInterval: time.Hour})
	c, _ := p.NewCounter(producers.Opts{Name: "a_total", Help: "h"})
	fc, _ := p.NewFloatCounter(producers.Opts{Name: "b_total", Help: "h"})
	g, _ := p.NewGauge(producers.Opts{Name: "c", Help: "h"})
	fg, _ := p.NewFloatGauge(producers.Opts{Name: "d", Help: "h"})
	h, _ := p.NewHistogram(producers.HistogramOpts{Name: "e", Help: "h"})
	vec, _ := p.NewCounterVec(producers.Opts{Name: "f_total", Help: "h"}, "route", "code")
	vec.MustWith("/x", "200")
	lat, err := p.Latency("payments-api")
	if err != nil {
		t.Fatal(err)
	}
	for name, fn := range map[string]func(){
		"Counter.Inc":            c.Inc,
		"Counter.Add":            func() { c.Add(3) },
		"FloatCounter.Add":       func() { fc.Add(0.5) },
		"Gauge.Set":              func() { g.Set(7) },
		"Gauge.Inc":              g.Inc,
		"FloatGauge.Set":         func() { fg.Set(1.5) },
		"Histogram.Observe":      func() { h.Observe(0.3) },
		"ServiceLatency.Observe": func() { lat.Observe(30 * time.Millisecond) },
		"CounterVec.With": func() {
			if _, err := vec.With("/x", "200"); err != nil {
				t.Fatal(err)
			}
		},
	} {
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}
