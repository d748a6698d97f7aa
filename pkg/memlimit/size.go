package memlimit

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// units are the multipliers of the size suffixes Parse accepts, in lower
// case (suffixes are matched in any case, but for a lone k, m, g or t,
// which tools read differently and parseSize refuses): decimal (kB, MB,
// GB, TB, and K, M, G, T as Kubernetes writes them) and binary (KiB …
// TiB, and Ki … Ti).
var units = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30, "ti": 1 << 40, "tib": 1 << 40,
}

// Errors of parseSize.
var (
	errNoSize    = errors.New("not a size")
	errTooLarge  = errors.New("want at most 8EiB")
	errAmbiguous = errors.New("a lower-case k, m, g or t is ambiguous (milli in Kubernetes, MiB in Docker): write MiB or MB (KiB, GiB, TiB; kB, GB, TB)")
)

// parseSize reads a size in bytes: a number, possibly fractional, and a
// unit (512MiB, 2GiB, 1.5GB, 1048576). A fraction of a byte is dropped.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	end := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if end < 0 {
		end = len(s)
	}
	num, unit := s[:end], strings.TrimSpace(s[end:])
	if len(unit) == 1 && strings.Contains("kmgt", unit) {
		return 0, errAmbiguous
	}
	unit = strings.ToLower(unit)
	mult, ok := units[unit]
	if num == "" || !ok {
		return 0, errNoSize
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil || n > math.MaxInt64/uint64(mult) {
			return 0, errTooLarge
		}
		return int64(n) * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, errNoSize
	}
	b := math.Floor(f * float64(mult))
	if b >= math.MaxInt64 {
		return 0, errTooLarge
	}
	return int64(b), nil
}

// formatSize writes b in the largest binary unit that leaves at least 1,
// rounded to one decimal: 300MiB, 1.8GiB, 512B.
func formatSize(b int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f, i := float64(b), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) + units[i]
}
