package latency

import (
	"errors"
	"slices"
	"sync"
)

// Set holds one Tracker per service, keyed by the service's name (a
// stable identifier: the name a probe or handle is configured with). It is
// safe for concurrent use.
type Set struct {
	cfg Config
	mu  sync.RWMutex
	m   map[string]*Tracker
}

// NewSet returns an empty set whose trackers are made with cfg.
func NewSet(cfg Config) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Set{cfg: cfg.WithDefaults(), m: map[string]*Tracker{}}, nil
}

// errNoService is Tracker's error for an empty name.
var errNoService = errors.New("latency: empty service name; name every tracked service")

// Tracker returns the service's tracker, making an empty one on first use.
// Keep the result for the hot path: it does not change unless Put
// replaces it.
func (s *Set) Tracker(service string) (*Tracker, error) {
	if service == "" {
		return nil, errNoService
	}
	s.mu.RLock()
	t := s.m[service]
	s.mu.RUnlock()
	if t != nil {
		return t, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t = s.m[service]; t == nil {
		var err error
		if t, err = New(s.cfg); err != nil {
			return nil, err
		}
		s.m[service] = t
	}
	return t, nil
}

// Lookup returns the service's tracker, if the set has one.
func (s *Set) Lookup(service string) (*Tracker, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.m[service]
	return t, ok
}

// Put makes t the service's tracker (one from Restore, say).
func (s *Set) Put(service string, t *Tracker) error {
	if service == "" {
		return errNoService
	}
	if t == nil {
		return errors.New("latency: Set.Put of a nil tracker for service " + service)
	}
	s.mu.Lock()
	s.m[service] = t
	s.mu.Unlock()
	return nil
}

// Delete forgets the service.
func (s *Set) Delete(service string) {
	s.mu.Lock()
	delete(s.m, service)
	s.mu.Unlock()
}

// Services returns the names of the tracked services, sorted.
func (s *Set) Services() []string {
	s.mu.RLock()
	names := make([]string, 0, len(s.m))
	for name := range s.m {
		names = append(names, name)
	}
	s.mu.RUnlock()
	slices.Sort(names)
	return names
}
