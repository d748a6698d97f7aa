package producers

import (
	"fmt"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/latency"
	"github.com/jetmetrics/jetmetrics/streams"
)

// ServiceLatency records a process's calls to one other service: wrap each
// call with Observe (it succeeded and took d) or Fail (it failed), or with
// Time. Create it with Producer.Latency.
//
// Each call goes two ways. An in-memory latency.Tracker keeps the
// service's statistics for this process (Snapshot: mean, EWMA, window
// percentiles, min, max, failures, last error). And the producer sends it
// through the delta pipeline, exactly once like every delta, as
//
//	jetmetrics_service_latency_seconds{service}                  a success's latency (streams.ServiceLatencyBuckets)
//	jetmetrics_service_checks_total{service,result="success"}    one per Observe
//	jetmetrics_service_checks_total{service,result="failure"}    one per Fail
//
// the families the nodes' service probes expose, so the cluster sees the
// service's latency whoever measured it. A failure is counted as a
// failure, never as a latency: Fail touches no histogram bucket and no
// sum. The error's text is kept by the in-memory tracker only (its last
// error); it never becomes a label and is never sent.
//
// The histogram's count and the success counter are separate series: each
// flush cuts both, so they agree once both are flushed, and a node may
// show them one flush apart in between.
//
// Its methods are safe from any goroutine. Observe allocates nothing.
type ServiceLatency struct {
	p       *Producer
	service string
	tracker *latency.Tracker
	hist    *Histogram
	success *Counter
	failure *Counter
}

// Latency returns the handle for calls to service, creating it on first
// use; later calls with the same name return the same handle. Keep it: the
// lookup takes a lock. The service name is a label value (non-empty UTF-8
// within Config.Limits, 256 bytes by default) and should be the stable
// name the service is known by, such as "payments-api": every process
// naming a service alike adds to one series on the nodes.
func (p *Producer) Latency(service string) (*ServiceLatency, error) {
	if service == "" {
		return nil, fmt.Errorf("latency handle: %w: empty; name the service the calls go to, e.g. Latency(%q)", ErrServiceName, "payments-api")
	}
	if err := p.cfg.Limits.CheckLabelValue(streams.ServiceLabel, service); err != nil {
		return nil, fmt.Errorf("latency handle for service %.64q: %w: %w", service, ErrServiceName, err)
	}
	p.latMu.Lock()
	defer p.latMu.Unlock()
	if l := p.latencies[service]; l != nil {
		return l, nil
	}
	if err := p.registerLatency(); err != nil {
		return nil, err
	}
	tracker, err := latency.New(p.cfg.Latency)
	if err != nil { // Config.Validate checked it
		return nil, fmt.Errorf("latency handle for service %.64q: %w", service, err)
	}
	l := &ServiceLatency{p: p, service: service, tracker: tracker}
	if l.hist, err = p.latHist.With(service); err == nil {
		if l.success, err = p.latChecks.With(service, streams.ResultSuccess); err == nil {
			l.failure, err = p.latChecks.With(service, streams.ResultFailure)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("latency handle for service %.64q: %w", service, err)
	}
	if p.latencies == nil {
		p.latencies = map[string]*ServiceLatency{}
	}
	p.latencies[service] = l
	return l, nil
}

// registerLatency registers the service latency families, once. p.latMu
// is held.
func (p *Producer) registerLatency() error {
	if p.latHist != nil {
		return nil
	}
	hf, err := p.registerFamily(streams.ServiceLatencyName, streams.ServiceLatencyHelp, kindHistogram,
		[]string{streams.ServiceLabel}, streams.ServiceLatencyBuckets(), func(f *family) collector {
			v := &HistogramVec{}
			v.init(f)
			return v
		})
	if err != nil {
		return fmt.Errorf("latency handle: %w", err)
	}
	cf, err := p.registerFamily(streams.ServiceChecksName, streams.ServiceChecksHelp, kindCounter,
		[]string{streams.ServiceLabel, streams.ResultLabel}, nil, func(f *family) collector {
			v := &CounterVec{}
			v.init(f)
			return v
		})
	if err != nil {
		return fmt.Errorf("latency handle: %w", err)
	}
	p.latHist, p.latChecks = hf.vec.(*HistogramVec), cf.vec.(*CounterVec)
	return nil
}

// Service is the name the handle was created with.
func (l *ServiceLatency) Service() string { return l.service }

// Observe records a successful call that took d: a sample of the tracker,
// an observation of d in seconds in the histogram and a success. A
// negative d is no latency: it is ignored and counted in Stats.Rejected.
// Observe allocates nothing.
func (l *ServiceLatency) Observe(d time.Duration) { l.observe(time.Now(), d) }

// observe records a success that took d and ended at the time at.
func (l *ServiceLatency) observe(at time.Time, d time.Duration) {
	if err := l.tracker.Observe(at, d); err != nil {
		// ErrNegative, or ErrTime for a clock before 1970: nothing is
		// recorded anywhere, so the tracker and the nodes agree.
		l.p.reject(true)
		return
	}
	// The tracker's conversion: float64(d) is exact below 2^53 ns, and one
	// division rounds it correctly.
	l.hist.Observe(float64(d) / 1e9)
	l.success.Inc()
}

// Fail records a failed call: a failure of the tracker, with err's text as
// its last error, and a failure in jetmetrics_service_checks_total. No
// latency statistic and no histogram bucket changes. A nil err is still a
// failure (the caller says the call failed). The text stays in this
// process's memory (Snapshot's LastError): keep secrets out of errors.
func (l *ServiceLatency) Fail(err error) {
	reason := "failed (nil error)"
	if err != nil {
		reason = err.Error()
	}
	if terr := l.tracker.Fail(time.Now(), reason); terr != nil {
		l.p.reject(true) // a clock before 1970
		return
	}
	l.failure.Inc()
}

// Time calls f and records its outcome: Observe of the time it took when
// it returns nil, Fail of its error otherwise. It returns f's error.
func (l *ServiceLatency) Time(f func() error) error {
	start := time.Now()
	err := f()
	if err != nil {
		l.Fail(err)
		return err
	}
	end := time.Now() // one clock read serves the duration and the tracker
	l.observe(end, end.Sub(start))
	return nil
}

// Snapshot returns the in-memory tracker's statistics of the calls this
// process recorded since the handle was created.
func (l *ServiceLatency) Snapshot() latency.Snapshot { return l.tracker.Snapshot() }
