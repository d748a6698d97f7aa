package producers

import (
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmetrics/jetmetrics/streams"
)

// Opts names a metric.
type Opts struct {
	// Name is the metric name, [a-zA-Z_:][a-zA-Z0-9_:]*.
	Name string
	// Help describes the metric. It is sent with the metric's first update
	// of each producer incarnation; the aggregate keeps the first it sees.
	Help string
}

// HistogramOpts names a histogram and fixes its buckets.
type HistogramOpts struct {
	Name string
	Help string
	// Buckets are the upper bounds: finite, strictly ascending, at most
	// streams.MaxBuckets, without +Inf (always implied). Nil or empty means
	// prometheus.DefBuckets.
	Buckets []float64
}

// kind is the Go type of a metric; two kinds may share a wire kind.
type kind uint8

const (
	kindCounter kind = iota
	kindFloatCounter
	kindGauge
	kindFloatGauge
	kindHistogram
)

func (k kind) String() string {
	return [...]string{"counter", "float counter", "gauge", "float gauge", "histogram"}[k]
}

func (k kind) wire() streams.Kind {
	switch k {
	case kindCounter, kindFloatCounter:
		return streams.KindCounter
	case kindGauge, kindFloatGauge:
		return streams.KindGauge
	default:
		return streams.KindHistogram
	}
}

// family is one registered metric name: its kind, label names, buckets and
// the typed vector holding its series.
type family struct {
	p          *Producer
	name, help string
	kind       kind
	labelNames []string
	buckets    []float64
	// vec is the family's *CounterVec, *GaugeVec, ...
	vec collector
	// helpSent is owned by the flush goroutine.
	helpSent bool
}

// collector is what the flusher needs of a vector.
type collector interface {
	collect(fl *flusher)
}

// register returns the family called name, creating it with mk when it
// does not exist yet.
func (p *Producer) register(name, help string, k kind, labelNames []string, buckets []float64, mk func(*family) collector) (*family, error) {
	if err := p.cfg.Limits.CheckMetricName(name); err != nil {
		return nil, fmt.Errorf("register %s: %w", k, err)
	}
	if err := streams.CheckReservedName(name); err != nil {
		return nil, fmt.Errorf("register %s: %w: %w", k, ErrReservedName, err)
	}
	return p.registerFamily(name, help, k, labelNames, buckets, mk)
}

// registerFamily is register without the checks of the metric name, for
// the SDK's own families under the reserved prefix (ServiceLatency).
func (p *Producer) registerFamily(name, help string, k kind, labelNames []string, buckets []float64, mk func(*family) collector) (*family, error) {
	if err := p.cfg.Limits.CheckLabelNames(labelNames); err != nil {
		return nil, fmt.Errorf("register %s %s: %w", k, name, err)
	}
	p.regMu.Lock()
	defer p.regMu.Unlock()
	if f, ok := p.families[name]; ok {
		if f.kind != k || !slices.Equal(f.labelNames, labelNames) || !slices.Equal(f.buckets, buckets) {
			return nil, fmt.Errorf("register %s %s%v: %w: it is a %s%v", k, name, labelNames, ErrConflict, f.kind, f.labelNames)
		}
		return f, nil
	}
	f := &family{
		p: p, name: name, help: help, kind: k,
		labelNames: slices.Clone(labelNames),
		buckets:    buckets,
	}
	f.vec = mk(f)
	p.families[name] = f
	p.order = append(p.order, f)
	return f, nil
}

// checkBuckets validates histogram buckets and returns a private copy, or
// the defaults when there are none.
func checkBuckets(b []float64) ([]float64, error) {
	if len(b) == 0 {
		return slices.Clone(prometheus.DefBuckets), nil
	}
	if len(b) > streams.MaxBuckets {
		return nil, fmt.Errorf("%w: %d bounds, aggregators accept at most %d", ErrBuckets, len(b), streams.MaxBuckets)
	}
	for i, ub := range b {
		if math.IsNaN(ub) || math.IsInf(ub, 0) {
			return nil, fmt.Errorf("%w: bound %d is %v; bounds are finite and +Inf is implied", ErrBuckets, i, ub)
		}
		if i > 0 && ub <= b[i-1] {
			return nil, fmt.Errorf("%w: bound %d (%v) is not above bound %d (%v)", ErrBuckets, i, ub, i-1, b[i-1])
		}
	}
	return slices.Clone(b), nil
}

// NewCounterVec registers an integer counter with labels (AWX's IntM).
func (p *Producer) NewCounterVec(o Opts, labelNames ...string) (*CounterVec, error) {
	f, err := p.register(o.Name, o.Help, kindCounter, labelNames, nil, func(f *family) collector {
		v := &CounterVec{}
		v.init(f)
		return v
	})
	if err != nil {
		return nil, err
	}
	return f.vec.(*CounterVec), nil
}

// NewCounter registers an integer counter without labels.
func (p *Producer) NewCounter(o Opts) (*Counter, error) {
	v, err := p.NewCounterVec(o)
	if err != nil {
		return nil, err
	}
	return v.With()
}

// NewFloatCounterVec registers a float counter with labels (AWX's FloatM).
func (p *Producer) NewFloatCounterVec(o Opts, labelNames ...string) (*FloatCounterVec, error) {
	f, err := p.register(o.Name, o.Help, kindFloatCounter, labelNames, nil, func(f *family) collector {
		v := &FloatCounterVec{}
		v.init(f)
		return v
	})
	if err != nil {
		return nil, err
	}
	return f.vec.(*FloatCounterVec), nil
}

// NewFloatCounter registers a float counter without labels.
func (p *Producer) NewFloatCounter(o Opts) (*FloatCounter, error) {
	v, err := p.NewFloatCounterVec(o)
	if err != nil {
		return nil, err
	}
	return v.With()
}

// NewGaugeVec registers an integer gauge with labels (AWX's SetIntM).
func (p *Producer) NewGaugeVec(o Opts, labelNames ...string) (*GaugeVec, error) {
	f, err := p.register(o.Name, o.Help, kindGauge, labelNames, nil, func(f *family) collector {
		v := &GaugeVec{}
		v.init(f)
		return v
	})
	if err != nil {
		return nil, err
	}
	return f.vec.(*GaugeVec), nil
}

// NewGauge registers an integer gauge without labels.
func (p *Producer) NewGauge(o Opts) (*Gauge, error) {
	v, err := p.NewGaugeVec(o)
	if err != nil {
		return nil, err
	}
	return v.With()
}

// NewFloatGaugeVec registers a float gauge with labels (AWX's SetFloatM).
func (p *Producer) NewFloatGaugeVec(o Opts, labelNames ...string) (*FloatGaugeVec, error) {
	f, err := p.register(o.Name, o.Help, kindFloatGauge, labelNames, nil, func(f *family) collector {
		v := &FloatGaugeVec{}
		v.init(f)
		return v
	})
	if err != nil {
		return nil, err
	}
	return f.vec.(*FloatGaugeVec), nil
}

// NewFloatGauge registers a float gauge without labels.
func (p *Producer) NewFloatGauge(o Opts) (*FloatGauge, error) {
	v, err := p.NewFloatGaugeVec(o)
	if err != nil {
		return nil, err
	}
	return v.With()
}

// NewHistogramVec registers a histogram with labels.
func (p *Producer) NewHistogramVec(o HistogramOpts, labelNames ...string) (*HistogramVec, error) {
	buckets, err := checkBuckets(o.Buckets)
	if err != nil {
		return nil, fmt.Errorf("register histogram %s: %w", o.Name, err)
	}
	f, err := p.register(o.Name, o.Help, kindHistogram, labelNames, buckets, func(f *family) collector {
		v := &HistogramVec{}
		v.init(f)
		return v
	})
	if err != nil {
		return nil, err
	}
	return f.vec.(*HistogramVec), nil
}

// NewHistogram registers a histogram without labels.
func (p *Producer) NewHistogram(o HistogramOpts) (*Histogram, error) {
	v, err := p.NewHistogramVec(o)
	if err != nil {
		return nil, err
	}
	return v.With()
}
