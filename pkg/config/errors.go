package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Error is a mistake in a configuration file: where it is and what is
// wrong, in one line (file:line: key: message).
type Error struct {
	// File is the file's path as given to Load; empty for a File built in
	// Go.
	File string
	// Line is the 1-based line of the key at fault, or of the nearest
	// enclosing one; 0 when unknown.
	Line int
	// Key is the key path, as observers.volume.cache-ttl or
	// volumes[2].endpoint (items counted from 0); empty for the file as a
	// whole.
	Key string
	// Msg says what is wrong and what to do. It never holds a secret.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	// One line, whatever a file name or a message carried.
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(b.String())
}

// quote shows a value from the file in a message: quoted, escaped and
// cut short. Never call it on a secret.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// keySegment is a mapping key in a key path: bare when it is a plain
// name, quoted in brackets otherwise.
func keySegment(k string) string {
	plain := k != ""
	for _, r := range k {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			plain = false
			break
		}
	}
	if plain {
		return "." + k
	}
	return "[" + quote(k) + "]"
}

// join appends a mapping key to a key path.
func join(path, key string) string {
	seg := keySegment(key)
	if path == "" {
		return strings.TrimPrefix(seg, ".")
	}
	return path + seg
}

// parent is the key path that encloses path ("" at the top).
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// suggest names the known word closest to got when it is close enough to
// be a typo, and otherwise lists the known words.
func suggest(got string, known []string) string {
	best, bestDist := "", -1
	for _, k := range known {
		if d := distance(strings.ToLower(got), k); bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if bestDist >= 0 && bestDist <= max(2, len(got)/3) {
		return "did you mean " + best + "?"
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	return "want one of " + strings.Join(sorted, ", ")
}

// distance is the Levenshtein distance between a and b, in bytes.
func distance(a, b string) int {
	if len(a) > 256 || len(b) > 256 {
		return max(len(a), len(b)) // not a typo of a key; bound the work
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// errorf is an Error at line for key.
func errorf(file string, line int, key, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}
