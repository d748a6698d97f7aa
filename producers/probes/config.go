package probes

import (
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/pkg/probes"
)

// Set is the probers a configuration file asks for, with their own
// timeouts: Config.Probers and Config.Timeouts of a Poller.
type Set struct {
	Probers  map[string]Prober
	Timeouts map[string]time.Duration
	owned    []*probes.NATS
}

// FromConfig builds the probers of a validated file's probes. own is the
// node's NATS connection, which nats probes without a nats-url borrow
// (nil: such a probe is an error). Close the Set when done: nats probes
// with a nats-url keep their own connection.
func FromConfig(list []config.Probe, own *nats.Conn) (*Set, error) {
	s := &Set{Probers: make(map[string]Prober, len(list)), Timeouts: map[string]time.Duration{}}
	for i, p := range list {
		pr, err := s.build(p, own)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("probes[%d] (%q): %w", i, p.Name, err)
		}
		if _, dup := s.Probers[p.Name]; dup {
			s.Close()
			return nil, fmt.Errorf("probes[%d]: the name %q is taken by another probe", i, p.Name)
		}
		s.Probers[p.Name] = pr
		if p.Timeout > 0 {
			s.Timeouts[p.Name] = p.Timeout
		}
	}
	return s, nil
}

func (s *Set) build(p config.Probe, own *nats.Conn) (Prober, error) {
	switch p.Kind {
	case config.ProbeHTTP:
		cfg := probes.HTTPConfig{URL: p.Target, Method: p.Method, ExpectStatus: p.ExpectStatus, FollowRedirects: p.FollowRedirects}
		if p.BodyMatch != "" {
			re, err := regexp.Compile(p.BodyMatch)
			if err != nil {
				return nil, fmt.Errorf("body-match: %w", err)
			}
			cfg.BodyMatch = re
		}
		var err error
		if cfg.TLS, err = tlsConfig(p.TLS); err != nil {
			return nil, err
		}
		return probes.NewHTTP(cfg)
	case config.ProbeTCP:
		return probes.NewTCP(p.Target)
	case config.ProbeNATS:
		cfg := probes.NATSConfig{Subject: p.Target}
		if p.NATSURL == "" {
			if own == nil {
				return nil, errors.New("no nats-url, and no node connection to borrow")
			}
			cfg.Conn = own
		} else {
			cfg.URL = p.NATSURL
			var err error
			if cfg.TLS, err = tlsConfig(p.TLS); err != nil {
				return nil, err
			}
		}
		n, err := probes.NewNATS(cfg)
		if err != nil {
			return nil, err
		}
		if cfg.URL != "" {
			s.owned = append(s.owned, n)
		}
		return n, nil
	}
	return nil, fmt.Errorf("kind %q is not a probe kind", p.Kind)
}

// tlsConfig is nil (the default: verify against the system's CAs) for an
// empty setting.
func tlsConfig(t config.TLS) (*tls.Config, error) {
	if t == (config.TLS{}) {
		return nil, nil
	}
	return probes.TLS{
		CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify,
	}.Config()
}

// Close closes the connections the set's nats probes made.
func (s *Set) Close() {
	for _, n := range s.owned {
		n.Close()
	}
	s.owned = nil
}
