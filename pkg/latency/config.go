package latency

import (
	"fmt"
	"time"
)

const (
	// DefaultWindow is the number of recent samples a Tracker keeps when
	// Config.Window is zero.
	DefaultWindow = 100
	// MaxWindow bounds Config.Window, and so the size of a state.
	MaxWindow = 10_000
	// DefaultHalfLife is the EWMA's half-life when Config.HalfLife is zero.
	DefaultHalfLife = time.Minute
	// MaxReasonBytes bounds the last error a Tracker keeps; Fail cuts a
	// longer reason at a UTF-8 boundary.
	MaxReasonBytes = 256
)

// Config sets a Tracker's window and EWMA. The zero value is valid.
type Config struct {
	// Window is how many of the most recent samples the tracker keeps for
	// its percentiles: 0 means DefaultWindow (100), at most MaxWindow.
	Window int
	// HalfLife is the EWMA's half-life in time between samples: a sample's
	// weight halves for every HalfLife that passes after it. 0 means
	// DefaultHalfLife (1 minute).
	HalfLife time.Duration
}

// Validate reports the first field out of range, naming it.
func (c Config) Validate() error {
	if c.Window < 0 || c.Window > MaxWindow {
		return fmt.Errorf("latency: Config.Window is %d; want 0 (default %d) to %d", c.Window, DefaultWindow, MaxWindow)
	}
	if c.HalfLife < 0 {
		return fmt.Errorf("latency: Config.HalfLife is %s; want 0 (default %s) or a positive duration", c.HalfLife, DefaultHalfLife)
	}
	return nil
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.HalfLife == 0 {
		c.HalfLife = DefaultHalfLife
	}
	return c
}
