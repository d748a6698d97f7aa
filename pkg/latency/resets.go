package latency

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// MaxLoggedResets bounds the (service, reason) pairs Resets remembers
// having logged; past it, resets are still counted but no longer logged.
const MaxLoggedResets = 10_000

// Resets counts and logs the states that Restore found unusable:
// jetmetrics_latency_state_resets_total{service,reason}, and one warning
// per (service, reason). It is safe for concurrent use.
type Resets struct {
	total *prometheus.CounterVec
	log   zerolog.Logger

	mu     sync.Mutex
	logged map[resetKey]struct{}
	full   bool
}

type resetKey struct {
	service string
	reason  Reason
}

// NewResets returns a Resets logging to log and registering its counter
// with reg (nil: none).
func NewResets(reg prometheus.Registerer, log zerolog.Logger) (*Resets, error) {
	r := &Resets{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmetrics_latency_state_resets_total",
			Help: "Service latency states found unusable (missing, truncated, malformed, version, checksum, inconsistent) and started again from the current sample, by service and reason.",
		}, []string{"service", "reason"}),
		log:    log,
		logged: map[resetKey]struct{}{},
	}
	if reg != nil {
		if err := reg.Register(r.total); err != nil {
			return nil, fmt.Errorf("register latency state metrics: %w", err)
		}
	}
	return r, nil
}

// Restore is the package's Restore that also records an unusable state
// for service: it returns the restored tracker, or a fresh one after
// counting and logging why. The error is cfg's alone.
func (r *Resets) Restore(service string, state []byte, cfg Config) (*Tracker, error) {
	t, derr, err := restore(state, cfg)
	if derr != nil {
		r.Record(service, derr)
	}
	return t, err
}

// Record counts one reset of service's state because of err: a
// *DecodeError names its reason; any other error (a state the caller
// could not read as bytes, say) counts as malformed. A nil err records
// nothing.
func (r *Resets) Record(service string, err error) {
	if err == nil {
		return
	}
	reason := ReasonMalformed
	var de *DecodeError
	if errors.As(err, &de) {
		reason = de.Reason
	}
	r.total.WithLabelValues(service, string(reason)).Inc()

	key := resetKey{service, reason}
	r.mu.Lock()
	_, seen := r.logged[key]
	first, suppress := false, false
	if !seen {
		if len(r.logged) < MaxLoggedResets {
			r.logged[key] = struct{}{}
			first = true
		} else if !r.full {
			r.full, suppress = true, true
		}
	}
	r.mu.Unlock()
	switch {
	case first:
		r.log.Warn().Str("service", service).Str("reason", string(reason)).Err(err).
			Msg("latency state unusable, starting again from the current sample; later resets of this service for this reason are counted, not logged")
	case suppress:
		r.log.Warn().Int("pairs", MaxLoggedResets).
			Msg("latency state resets of further services are counted in jetmetrics_latency_state_resets_total, not logged")
	}
}
