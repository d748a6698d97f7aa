package main

import (
	"fmt"

	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/memlimit"
)

// minMemoryLimit is the smallest --memory.limit accepted: a node holding
// nothing takes about 26 MiB of Go memory (12 MiB of it live heap), so a
// smaller limit would keep the collector running; it is most likely a unit
// left out (a size without one is bytes).
const minMemoryLimit = 32 << 20

// parseMemoryLimit reads --memory.limit and checks --memory.limit-ratio.
func parseMemoryLimit(value string, ratio float64) (memlimit.Setting, error) {
	s, err := memlimit.Parse(value)
	if err != nil {
		return s, flagError("memory.limit", value, err.Error())
	}
	if s.Bytes > 0 && s.Bytes < minMemoryLimit {
		return s, flagError("memory.limit", value, "want at least 32MiB, or none: a node holding nothing takes about 26MiB (a size without a unit is bytes)")
	}
	if !(ratio > 0 && ratio <= 1) {
		return s, flagError("memory.limit-ratio", fmt.Sprint(ratio), "want a fraction in (0, 1] of the cgroup's memory limit")
	}
	return s, nil
}

// applyMemoryLimit sets the process's soft memory limit from --memory.limit
// on machine m, and logs the limit and where it came from. A cgroup file
// that cannot be read leaves no limit, with a warning: a node runs without
// one as well as before the flag existed.
func applyMemoryLimit(s memlimit.Setting, ratio float64, m memlimit.Machine, logger zerolog.Logger) {
	l, err := memlimit.Decide(s, ratio, m)
	l.Apply()
	if err != nil {
		logger.Warn().Err(err).Msg("no soft memory limit: --memory.limit=auto could not read the cgroup's")
		return
	}
	ev := logger.Info().Str("memory_limit", l.String()).Int64("memory_limit_bytes", l.Bytes).Str("source", string(l.Source))
	switch l.Source {
	case memlimit.SourceFlag:
		if l.Overrides != "" {
			ev = ev.Str("gomemlimit", l.Overrides)
		}
		switch {
		case l.Overrides != "":
			ev.Msg("soft memory limit from --memory.limit, overriding GOMEMLIMIT")
		case l.Bytes == 0:
			ev.Msg("no soft memory limit: --memory.limit=none")
		default:
			ev.Msg("soft memory limit from --memory.limit")
		}
	case memlimit.SourceCgroup:
		ev.Str("cgroup_file", l.CgroupFile).Int64("cgroup_limit_bytes", l.CgroupBytes).Float64("ratio", ratio).
			Msg("soft memory limit from the cgroup's memory limit (--memory.limit=auto)")
	case memlimit.SourceEnv:
		ev.Str("gomemlimit", m.GOMEMLIMIT).Msg("soft memory limit left to GOMEMLIMIT (--memory.limit=auto)")
	default:
		ev.Msg("no soft memory limit: no cgroup memory limit found (--memory.limit=auto)")
	}
}
