package memlimit

import (
	"errors"
	"math"
	"os"
	"runtime/debug"
	"strings"
)

// Setting is what a process is asked for: Auto, or a size (Bytes 0: no
// limit). The zero value is no limit.
type Setting struct {
	// Auto derives the limit: GOMEMLIMIT's when that is set, else a
	// fraction of the cgroup's memory limit, else none.
	Auto bool
	// Bytes is the limit when not Auto; 0 is none.
	Bytes int64
}

// Parse reads a setting: "auto", "none" or "0" (no limit), or a size
// with a unit: 512MiB, 2GiB, 1.5GB, 1048576 (bytes); decimal kB, MB, GB,
// TB and binary KiB, MiB, GiB, TiB, in any case, and Kubernetes' k, M, G,
// T, Ki, Mi, Gi, Ti. A fraction of a byte is dropped. Its errors say what is wanted, for the caller to name the
// flag or key the value came from.
func Parse(s string) (Setting, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto":
		return Setting{Auto: true}, nil
	case "none":
		return Setting{}, nil
	}
	b, err := parseSize(s)
	if errors.Is(err, errNoSize) {
		return Setting{}, errors.New("want auto, none (or 0), or a size such as 512MiB, 2GiB, 1.5GB or a number of bytes")
	}
	if err != nil {
		return Setting{}, err
	}
	return Setting{Bytes: b}, nil
}

// Source says where a limit came from.
type Source string

// Sources of a Limit.
const (
	// SourceFlag: the size (or none) was given.
	SourceFlag Source = "flag"
	// SourceCgroup: a fraction of the cgroup's memory limit.
	SourceCgroup Source = "cgroup"
	// SourceEnv: GOMEMLIMIT, which the runtime applied at start.
	SourceEnv Source = "GOMEMLIMIT"
	// SourceNone: auto found no limit anywhere.
	SourceNone Source = "none"
)

// Limit is a decided soft memory limit.
type Limit struct {
	// Bytes is the limit; 0 is none.
	Bytes int64
	// Source is where it came from.
	Source Source
	// CgroupFile and CgroupBytes are the cgroup file the limit derives
	// from and the limit it holds (SourceCgroup).
	CgroupFile  string
	CgroupBytes int64
	// Overrides is GOMEMLIMIT's value when a given size replaces it.
	Overrides string
}

// String is the limit in binary units (300MiB, 1.8GiB), or "none".
func (l Limit) String() string {
	if l.Bytes == 0 {
		return "none"
	}
	return formatSize(l.Bytes)
}

// Apply sets the runtime's soft memory limit to l (none: math.MaxInt64,
// the runtime's default). A limit from GOMEMLIMIT is the runtime's already
// and left alone.
func (l Limit) Apply() {
	if l.Source == SourceEnv {
		return
	}
	b := l.Bytes
	if b == 0 {
		b = math.MaxInt64
	}
	debug.SetMemoryLimit(b)
}

// Machine is what Decide reads of the machine. System returns this one's;
// tests give fake cgroup files.
type Machine struct {
	// GOMEMLIMIT is the environment variable's value, "" when unset.
	GOMEMLIMIT string
	// RuntimeLimit is the runtime's limit at start: GOMEMLIMIT's when set,
	// else math.MaxInt64.
	RuntimeLimit int64
	// CgroupRoot is where the cgroup file systems are mounted:
	// /sys/fs/cgroup.
	CgroupRoot string
	// Self is the process's cgroup membership as /proc/self/cgroup lists
	// it; "" reads the limits at CgroupRoot alone (as in a container
	// with its own cgroup namespace, where Self names "/").
	Self string
	// HostMemory is the machine's memory in bytes, 0 if unknown: a cgroup
	// v1 limit above it is no limit.
	HostMemory int64
}

// System is what Decide reads of this machine: the environment, the
// runtime's limit, /sys/fs/cgroup, /proc/self/cgroup and /proc/meminfo.
// Files that cannot be read are left empty.
func System() Machine {
	self, _ := os.ReadFile("/proc/self/cgroup")
	return Machine{
		GOMEMLIMIT:   os.Getenv("GOMEMLIMIT"),
		RuntimeLimit: debug.SetMemoryLimit(-1),
		CgroupRoot:   "/sys/fs/cgroup",
		Self:         string(self),
		HostMemory:   hostMemory("/proc/meminfo"),
	}
}

// Decide turns s into a limit. Auto is GOMEMLIMIT's limit when that is
// set; else ratio (in (0, 1]) of the cgroup's memory limit, the lowest
// along the process's cgroup path, v2's memory.max first and v1's
// memory.limit_in_bytes when there is none; else none. A cgroup file that
// exists but cannot be read or parsed is an error, with the limit none.
func Decide(s Setting, ratio float64, m Machine) (Limit, error) {
	if !s.Auto {
		return Limit{Bytes: s.Bytes, Source: SourceFlag, Overrides: m.GOMEMLIMIT}, nil
	}
	if m.GOMEMLIMIT != "" {
		l := Limit{Bytes: m.RuntimeLimit, Source: SourceEnv}
		if l.Bytes == math.MaxInt64 { // GOMEMLIMIT=off
			l.Bytes = 0
		}
		return l, nil
	}
	if !(ratio > 0 && ratio <= 1) {
		return Limit{Source: SourceNone}, errors.New("the ratio of the cgroup's limit must be in (0, 1]")
	}
	cg, file, err := cgroupLimit(m.CgroupRoot, m.Self, m.HostMemory)
	if err != nil || cg == 0 {
		return Limit{Source: SourceNone}, err
	}
	return Limit{Bytes: max(1, int64(float64(cg)*ratio)), Source: SourceCgroup, CgroupFile: file, CgroupBytes: cg}, nil
}
