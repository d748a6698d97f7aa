package producers_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/producers"
	"github.com/jetmetrics/jetmetrics/streams"
)

func TestConfigValidation(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		cfg  producers.Config
		want error
	}{
		{"no node", producers.Config{Name: "svc"}, streams.ErrToken},
		{"no name", producers.Config{Node: "n"}, streams.ErrToken},
		{"dot in node", producers.Config{Node: "a.b", Name: "svc"}, streams.ErrToken},
		{"wildcard in name", producers.Config{Node: "n", Name: "svc*"}, streams.ErrToken},
		{"name too long for the id", producers.Config{Node: "n", Name: strings.Repeat("s", producers.MaxNameBytes+1)}, streams.ErrToken},
		{"bad prefix", producers.Config{Node: "n", Name: "svc", Prefix: "a.b"}, streams.ErrToken},
		{"negative interval", producers.Config{Node: "n", Name: "svc", FlushInterval: -1}, nil},
		{"tiny batch", producers.Config{Node: "n", Name: "svc", MaxBatchBytes: 100}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := producers.New(tt.cfg, e.nc)
			if err == nil {
				t.Fatalf("New accepted %+v (id %s)", tt.cfg, p.ID())
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
	name := strings.Repeat("s", producers.MaxNameBytes)
	p := e.newProducer(t, producers.Config{Name: name})
	if err := streams.CheckToken("producer", p.ID()); err != nil {
		t.Errorf("longest name gives an invalid id: %v", err)
	}
}

func TestRegistrationValidation(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{Limits: series.Limits{MaxLabels: 3, MaxLabelValueBytes: 8}})
	o := func(name string) producers.Opts { return producers.Opts{Name: name} }
	hist := func(b ...float64) error {
		_, err := p.NewHistogram(producers.HistogramOpts{Name: "h", Buckets: b})
		return err
	}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"empty name", second(p.NewCounter(o(""))), series.ErrMetricName},
		{"bad name", second(p.NewGauge(o("1abc"))), series.ErrMetricName},
		{"dash in name", second(p.NewFloatGauge(o("a-b"))), series.ErrMetricName},
		{"reserved node", second(p.NewCounterVec(o("a"), "node")), series.ErrReservedLabel},
		{"reserved le", second(p.NewHistogramVec(producers.HistogramOpts{Name: "a"}, "le")), series.ErrReservedLabel},
		{"reserved quantile", second(p.NewGaugeVec(o("a"), "quantile")), series.ErrReservedLabel},
		{"reserved __x", second(p.NewFloatCounterVec(o("a"), "__x")), series.ErrReservedLabel},
		{"bad label name", second(p.NewCounterVec(o("a"), "a-b")), series.ErrLabelName},
		{"duplicate label", second(p.NewCounterVec(o("a"), "x", "x")), series.ErrDuplicate},
		{"too many labels", second(p.NewCounterVec(o("a"), "w", "x", "y", "z")), series.ErrTooManyLabels},
		{"unsorted buckets", hist(1, 3, 2), producers.ErrBuckets},
		{"repeated bucket", hist(1, 1), producers.ErrBuckets},
		{"NaN bucket", hist(math.NaN()), producers.ErrBuckets},
		{"+Inf bucket", hist(1, math.Inf(1)), producers.ErrBuckets},
		{"-Inf bucket", hist(math.Inf(-1), 1), producers.ErrBuckets},
		{"too many buckets", hist(ascending(streams.MaxBuckets + 1)...), producers.ErrBuckets},
		// The node serves its own metrics under these prefixes.
		{"jetmetrics_ prefix", second(p.NewCounter(o("jetmetrics_x_total"))), producers.ErrReservedName},
		{"go_ prefix", second(p.NewGauge(o("go_goroutines"))), producers.ErrReservedName},
		{"process_ prefix", second(p.NewFloatCounter(o("process_cpu_seconds_total"))), producers.ErrReservedName},
		{"promhttp_ prefix", second(p.NewHistogram(producers.HistogramOpts{Name: "promhttp_x"})), producers.ErrReservedName},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if s := p.Stats().Series; s != 0 {
		t.Errorf("failed registrations created %d series", s)
	}

	v, err := p.NewCounterVec(o("req_total"), "method", "code")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		values []string
		want   error
	}{
		{"too few values", []string{"GET"}, producers.ErrLabelCount},
		{"too many values", []string{"GET", "200", "x"}, producers.ErrLabelCount},
		{"too long value", []string{"GET", "123456789"}, series.ErrLongValue},
		{"invalid UTF-8", []string{"GET", "\xff"}, series.ErrLabelValue},
	} {
		if _, err := v.With(tt.values...); !errors.Is(err, tt.want) {
			t.Errorf("With %s: error %v, want %v", tt.name, err, tt.want)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("MustWith with a wrong count did not panic")
			}
		}()
		v.MustWith("GET")
	}()
	a := v.MustWith("GET", "200")
	if b := v.MustWith("GET", "200"); a != b {
		t.Error("With returned two series for the same values")
	}
	if b := v.MustWith("GET2", "00"); a == b {
		t.Error("values are not separated in the key")
	}
	if v.MustWith("", "") == nil {
		t.Error("empty values refused")
	}
}

func TestReRegistration(t *testing.T) {
	e := newEnv(t)
	p := e.newProducer(t, producers.Config{})
	c1, err := p.NewCounter(producers.Opts{Name: "c_total", Help: "one"})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := p.NewCounter(producers.Opts{Name: "c_total", Help: "other help keeps the first"})
	if err != nil || c1 != c2 {
		t.Fatalf("same registration: %v, same metric %v", err, c1 == c2)
	}
	v1, _ := p.NewGaugeVec(producers.Opts{Name: "g"}, "a", "b")
	v2, err := p.NewGaugeVec(producers.Opts{Name: "g"}, "a", "b")
	if err != nil || v1 != v2 {
		t.Fatalf("same vec registration: %v, same vec %v", err, v1 == v2)
	}
	h1, _ := p.NewHistogram(producers.HistogramOpts{Name: "h", Buckets: []float64{1, 2}})
	h2, err := p.NewHistogram(producers.HistogramOpts{Name: "h", Buckets: []float64{1, 2}})
	if err != nil || h1 != h2 {
		t.Fatalf("same histogram registration: %v", err)
	}
	d1, _ := p.NewHistogram(producers.HistogramOpts{Name: "d"})
	d2, err := p.NewHistogram(producers.HistogramOpts{Name: "d", Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}})
	if err != nil || d1 != d2 {
		t.Fatalf("explicit default buckets: %v", err)
	}

	for _, tt := range []struct {
		name string
		err  error
	}{
		{"counter as float counter", second(p.NewFloatCounter(producers.Opts{Name: "c_total"}))},
		{"counter as gauge", second(p.NewGauge(producers.Opts{Name: "c_total"}))},
		{"counter with labels", second(p.NewCounterVec(producers.Opts{Name: "c_total"}, "x"))},
		{"other label names", second(p.NewGaugeVec(producers.Opts{Name: "g"}, "a", "c"))},
		{"other label order", second(p.NewGaugeVec(producers.Opts{Name: "g"}, "b", "a"))},
		{"other buckets", second(p.NewHistogram(producers.HistogramOpts{Name: "h", Buckets: []float64{1, 3}}))},
		{"histogram as counter", second(p.NewCounter(producers.Opts{Name: "h"}))},
	} {
		if !errors.Is(tt.err, producers.ErrConflict) {
			t.Errorf("%s: error %v, want ErrConflict", tt.name, tt.err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func ascending(n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = float64(i)
	}
	return b
}
