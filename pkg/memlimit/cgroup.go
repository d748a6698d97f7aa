package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// v1Unlimited: cgroup v1 writes "no limit" as the largest page-aligned
// int64 (9223372036854771712); anything this large is none.
const v1Unlimited = 1 << 60

// cgroupLimit returns the memory limit of the cgroup Self names under
// root, and the file it was read from; 0 when there is none. A limit set
// on an ancestor binds too, so it reads every cgroup from the process's up
// to root and keeps the lowest. cgroup v2 (memory.max, "max" for none) is
// read first; v1 (memory/…/memory.limit_in_bytes) only when no v2 file
// exists on the path. Missing files are no limit; unreadable or garbled
// ones are errors.
func cgroupLimit(root, self string, host int64) (int64, string, error) {
	v2, v1 := membership(self)
	limit, file, found, err := lowest(root, v2, "memory.max", func(s string) (int64, error) {
		if s == "max" {
			return 0, nil
		}
		return strconv.ParseInt(s, 10, 64)
	})
	if err != nil || found {
		return limit, file, err
	}
	limit, file, _, err = lowest(filepath.Join(root, "memory"), v1, "memory.limit_in_bytes", func(s string) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if n >= v1Unlimited || (host > 0 && n > host) {
			n = 0
		}
		return n, err
	})
	return limit, file, err
}

// membership returns the process's cgroup paths in the v2 hierarchy and
// in v1's memory hierarchy from /proc/self/cgroup lines
// (hierarchy-ID:controllers:path), "/" for one not listed.
func membership(self string) (v2, v1 string) {
	v2, v1 = "/", "/"
	for line := range strings.Lines(self) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			v1 = parts[2]
		}
	}
	return v2, v1
}

// lowest reads name in the cgroup at path under root and in each of its
// ancestors up to root, and returns the lowest limit parse finds (0:
// none), its file, and whether any file existed.
func lowest(root, path, name string, parse func(string) (int64, error)) (limit int64, file string, found bool, err error) {
	// Clean from "/" so that the path stays under root.
	root = filepath.Clean(root)
	dir := filepath.Join(root, filepath.Clean("/"+path))
	for {
		f := filepath.Join(dir, name)
		b, rerr := os.ReadFile(f)
		switch {
		case errors.Is(rerr, fs.ErrNotExist):
		case rerr != nil:
			return 0, "", false, fmt.Errorf("read the cgroup's memory limit: %w", rerr)
		default:
			found = true
			n, perr := parse(strings.TrimSpace(string(b)))
			if perr != nil {
				return 0, "", false, fmt.Errorf("read the cgroup's memory limit: %s: %q is no limit", f, strings.TrimSpace(string(b)))
			}
			if n > 0 && (limit == 0 || n < limit) {
				limit, file = n, f
			}
		}
		if dir == root || filepath.Dir(dir) == dir {
			return limit, file, found, nil
		}
		dir = filepath.Dir(dir)
	}
}

// hostMemory is MemTotal of a /proc/meminfo file in bytes, 0 when it
// cannot be read.
func hostMemory(meminfo string) int64 {
	f, err := os.Open(meminfo)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}
