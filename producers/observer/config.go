package observer

import (
	"errors"
	"fmt"
	"time"

	"github.com/jetmetrics/jetmetrics/streams"
)

// Config configures an Observer. The zero value of each field means the
// default documented on it.
type Config struct {
	// Name names the observer ("volume", "probe") in logs and metrics, and
	// seeds the targets' phases.
	Name string
	// Node is this node's name, passed to the poller in each Poll.
	Node string
	// Targets are the names of the targets to poll.
	Targets []string
	// Interval is the time between two polls of a target (default 10 s).
	Interval time.Duration
	// Timeout bounds one poll, from its scheduled start (default 5 s, or
	// Interval when that is shorter). At most Interval.
	Timeout time.Duration
	// MaxConcurrent bounds the polls running at once, counting those past
	// their deadline whose poller has not returned (default 64): a hanging
	// target holds one slot. A poll that cannot start before its deadline
	// is recorded as StatusBusy.
	MaxConcurrent int
}

// Defaults.
const (
	DefaultInterval      = 10 * time.Second
	DefaultTimeout       = 5 * time.Second
	DefaultMaxConcurrent = 64
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = min(DefaultTimeout, c.Interval)
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	return c
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if err := streams.CheckToken("observer name", c.Name); err != nil {
		return err
	}
	if c.Node == "" {
		return errors.New("no node name")
	}
	switch {
	case c.Interval < 0:
		return fmt.Errorf("interval %s is negative", c.Interval)
	case c.Timeout < 0 || c.Timeout > c.Interval:
		return fmt.Errorf("timeout %s must be between 0 and the interval %s", c.Timeout, c.Interval)
	case c.MaxConcurrent < 0:
		return fmt.Errorf("max concurrent polls %d is negative", c.MaxConcurrent)
	}
	seen := make(map[string]bool, len(c.Targets))
	for _, t := range c.Targets {
		if t == "" {
			return errors.New("empty target name")
		}
		if seen[t] {
			return fmt.Errorf("target %q listed twice", t)
		}
		seen[t] = true
	}
	return nil
}
