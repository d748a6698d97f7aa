package producers_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/producers"
)

// Each benchmark pairs the SDK's hot path (…/jetmetrics) with
// client_golang doing the same (…/client_golang); the …Parallel variants
// run it from GOMAXPROCS goroutines on one shared series. The flush
// interval is an hour so the numbers are the update path alone.

func benchProducer(b *testing.B) *producers.Producer {
	b.Helper()
	return newEnv(b).newProducer(b, producers.Config{FlushInterval: time.Hour})
}

// check panics on a registration error: benchmarks register valid metrics.
func check[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func BenchmarkCounterInc(b *testing.B) {
	p := benchProducer(b)
	c := check(p.NewCounter(producers.Opts{Name: "c_total"}))
	pc := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total"})
	b.Run("jetmetrics", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Inc()
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pc.Inc()
		}
	})
}

func BenchmarkCounterIncParallel(b *testing.B) {
	p := benchProducer(b)
	c := check(p.NewCounter(producers.Opts{Name: "c_total"}))
	pc := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total"})
	b.Run("jetmetrics", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Inc()
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				pc.Inc()
			}
		})
	})
}

func BenchmarkCounterAdd(b *testing.B) {
	p := benchProducer(b)
	c := check(p.NewCounter(producers.Opts{Name: "c_total"}))
	pc := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total"})
	b.Run("jetmetrics", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Add(3)
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pc.Add(3)
		}
	})
}

func BenchmarkCounterAddParallel(b *testing.B) {
	p := benchProducer(b)
	c := check(p.NewCounter(producers.Opts{Name: "c_total"}))
	pc := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total"})
	b.Run("jetmetrics", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(3)
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				pc.Add(3)
			}
		})
	})
}

func BenchmarkFloatCounterAdd(b *testing.B) {
	p := benchProducer(b)
	c := check(p.NewFloatCounter(producers.Opts{Name: "c_total"}))
	pc := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total"})
	b.Run("jetmetrics", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Add(1.5)
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pc.Add(1.5)
		}
	})
}

func BenchmarkFloatCounterAddParallel(b *testing.B) {
	p := benchProducer(b)
	c := check(p.NewFloatCounter(producers.Opts{Name: "c_total"}))
	pc := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total"})
	b.Run("jetmetrics", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1.5)
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				pc.Add(1.5)
			}
		})
	})
}

func BenchmarkGaugeSet(b *testing.B) {
	p := benchProducer(b)
	g := check(p.NewGauge(producers.Opts{Name: "g"}))
	fg := check(p.NewFloatGauge(producers.Opts{Name: "fg"}))
	pg := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	b.Run("jetmetrics", func(b *testing.B) {
		b.ReportAllocs()
		i := int64(0)
		for b.Loop() {
			g.Set(i)
			i++
		}
	})
	b.Run("jetmetrics_float", func(b *testing.B) {
		b.ReportAllocs()
		i := 0.0
		for b.Loop() {
			fg.Set(i)
			i++
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		b.ReportAllocs()
		i := 0.0
		for b.Loop() {
			pg.Set(i)
			i++
		}
	})
}

func BenchmarkGaugeSetParallel(b *testing.B) {
	p := benchProducer(b)
	g := check(p.NewGauge(producers.Opts{Name: "g"}))
	fg := check(p.NewFloatGauge(producers.Opts{Name: "fg"}))
	pg := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	b.Run("jetmetrics", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int64(0)
			for pb.Next() {
				g.Set(i)
				i++
			}
		})
	})
	b.Run("jetmetrics_float", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0.0
			for pb.Next() {
				fg.Set(i)
				i++
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0.0
			for pb.Next() {
				pg.Set(i)
				i++
			}
		})
	})
}

// observations spread over prometheus.DefBuckets (11 bounds: the SDK
// searches them binarily).
var observations = func() []float64 {
	v := make([]float64, 1024)
	for i := range v {
		v[i] = float64(i%200) * 0.07
	}
	return v
}()

func BenchmarkHistogramObserve(b *testing.B) {
	p := benchProducer(b)
	h := check(p.NewHistogram(producers.HistogramOpts{Name: "h"}))
	ph := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h"})
	b.Run("jetmetrics", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h.Observe(observations[i%len(observations)])
			i++
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			ph.Observe(observations[i%len(observations)])
			i++
		}
	})
}

func BenchmarkHistogramObserveParallel(b *testing.B) {
	p := benchProducer(b)
	h := check(p.NewHistogram(producers.HistogramOpts{Name: "h"}))
	ph := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h"})
	b.Run("jetmetrics", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				h.Observe(observations[i%len(observations)])
				i++
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				ph.Observe(observations[i%len(observations)])
				i++
			}
		})
	})
}

// labelValues are n (method, path) pairs.
func labelValues(n int) [][2]string {
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	v := make([][2]string, n)
	for i := range v {
		v[i] = [2]string{methods[i%len(methods)], fmt.Sprintf("/api/v1/items/%d", i)}
	}
	return v
}

// BenchmarkVecWith resolves existing series by two label values passed
// as separate arguments, the usual call shape, among 1k and 100k series.
func BenchmarkVecWith(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			benchVecWith(b, n, false)
		})
	}
}

func BenchmarkVecWithParallel(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			benchVecWith(b, n, true)
		})
	}
}

func benchVecWith(b *testing.B, n int, parallel bool) {
	p := benchProducer(b)
	v := check(p.NewCounterVec(producers.Opts{Name: "requests_total"}, "method", "path"))
	pv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total"}, []string{"method", "path"})
	values := labelValues(n)
	// Create every series, then look each up once more: the SDK publishes
	// new series to its lock-free read maps on later lookups.
	for range 2 {
		for _, lv := range values {
			v.MustWith(lv[0], lv[1])
			pv.WithLabelValues(lv[0], lv[1])
		}
	}
	// with reports whether it found a series, so the lookup cannot be
	// optimised away.
	run := func(b *testing.B, with func(lv *[2]string) bool) {
		b.ReportAllocs()
		if !parallel {
			i := 0
			for b.Loop() {
				if !with(&values[i%n]) {
					b.Fatal("no series")
				}
				i++
			}
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if !with(&values[i%n]) {
					panic("no series")
				}
				i += 7 // goroutines start together; spread them out
			}
		})
	}
	b.Run("jetmetrics", func(b *testing.B) {
		run(b, func(lv *[2]string) bool { return v.MustWith(lv[0], lv[1]) != nil })
	})
	b.Run("client_golang", func(b *testing.B) {
		run(b, func(lv *[2]string) bool { return pv.WithLabelValues(lv[0], lv[1]) != nil })
	})
}

// BenchmarkServiceLatencyObserve: a latency handle's Observe (the
// tracker, the histogram and the success counter) beside what the same
// call costs with client_golang's histogram and counter alone, which keep
// no window, mean or EWMA.
func BenchmarkServiceLatencyObserve(b *testing.B) {
	p := benchProducer(b)
	lat := check(p.Latency("payments-api"))
	ph := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h"})
	pc := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total"})
	ds := make([]time.Duration, len(observations))
	for i, o := range observations {
		ds[i] = time.Duration(o * 1e9)
	}
	for _, parallel := range []bool{false, true} {
		name := "serial"
		if parallel {
			name = "parallel"
		}
		run := func(b *testing.B, observe func(time.Duration)) {
			b.ReportAllocs()
			if !parallel {
				i := 0
				for b.Loop() {
					observe(ds[i%len(ds)])
					i++
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					observe(ds[i%len(ds)])
					i++
				}
			})
		}
		b.Run(name+"/jetmetrics", func(b *testing.B) { run(b, lat.Observe) })
		b.Run(name+"/client_golang", func(b *testing.B) {
			run(b, func(d time.Duration) {
				ph.Observe(d.Seconds())
				pc.Inc()
			})
		})
	}
}
