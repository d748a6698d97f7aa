package streams

import (
	"bytes"
	"strings"
	"testing"
)

// plainProbes calls fn with words that hold every byte value at every
// position, each followed by a second special byte to catch borrows, and
// starting points in them; want is where the run of plain bytes (neither
// control, non-ASCII, quote nor backslash) from start ends.
func plainProbes(fn func(s string, start, want int)) {
	special := func(c byte) bool { return c < 0x20 || c >= 0x80 || c == '"' || c == '\\' }
	base := strings.Repeat("a", 20)
	for c := range 256 {
		for p := range 20 {
			for _, second := range []byte{'a', 0, '"', '\\', 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xff} {
				b := []byte(base)
				b[p] = byte(c)
				if p+1 < len(b) {
					b[p+1] = second
				}
				s := string(b)
				for _, start := range []int{0, 1, 7} {
					want := start
					for want < len(s) && !special(s[want]) {
						want++
					}
					fn(s, start, want)
				}
			}
		}
	}
}

// TestPlainRun checks the eight-at-a-time scan against the byte-by-byte
// definition.
func TestPlainRun(t *testing.T) {
	plainProbes(func(s string, start, want int) {
		if got := plainRun(s, start); got != want {
			t.Fatalf("plainRun(%q, %d) = %d, want %d", s, start, got, want)
		}
	})
}

// TestCopyPlain checks the eight-at-a-time copy against the byte-by-byte
// definition.
func TestCopyPlain(t *testing.T) {
	plainProbes(func(s string, start, want int) {
		b := []byte(s)
		dst := make([]byte, len(b))
		i, w := copyPlain(dst, 0, b, start)
		if i != want || w != want-start || !bytes.Equal(dst[:w], b[start:want]) {
			t.Fatalf("copyPlain(%q, %d) = %d, %d, %q; want %d", b, start, i, w, dst[:w], want)
		}
	})
}
