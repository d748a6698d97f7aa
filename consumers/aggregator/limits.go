package aggregator

import "github.com/jetmetrics/jetmetrics/pkg/series"

// Limits are the bounds an aggregator puts on its input: the fields of
// Config of the same names, which SetLimits changes while it runs.
type Limits struct {
	Series             series.Limits
	MaxSeries          int
	MaxSeriesPerMetric int
	MaxProducers       int
	MaxMessageBytes    int
}

// limitsOf are cfg's limits, cfg with its defaults.
func limitsOf(cfg Config) Limits {
	return Limits{Series: cfg.Limits, MaxSeries: cfg.MaxSeries, MaxSeriesPerMetric: cfg.MaxSeriesPerMetric,
		MaxProducers: cfg.MaxProducers, MaxMessageBytes: cfg.MaxMessageBytes}
}

// SetLimits replaces the limits from the next message on; a zero field
// means its default, as in Config. Series and producers already held
// stay when a cap is lowered below their number: only new ones are
// refused. A rejection depends on the limits when it was decided, so a
// replay after a change may decide otherwise (docs/operations.md,
// "Reloading"). Safe to call from any goroutine.
func (a *Aggregator) SetLimits(l Limits) {
	c := Config{Limits: l.Series, MaxSeries: l.MaxSeries, MaxSeriesPerMetric: l.MaxSeriesPerMetric,
		MaxProducers: l.MaxProducers, MaxMessageBytes: l.MaxMessageBytes}.withDefaults()
	next := limitsOf(c)
	a.lim.Store(&next)
}

// Limits are the limits in force.
func (a *Aggregator) Limits() Limits { return *a.limits() }

// limits are the limits in force: those of the configuration until
// SetLimits is first called.
func (a *Aggregator) limits() *Limits {
	if l := a.lim.Load(); l != nil {
		return l
	}
	l := limitsOf(a.cfg)
	return &l
}
