package streams

import (
	"strings"
	"testing"
)

// TestPlainRun checks the eight-at-a-time scan against the byte-by-byte
// definition for every byte value at every position of a word, with a
// second special byte after it to catch borrows.
func TestPlainRun(t *testing.T) {
	special := func(c byte) bool { return c < 0x20 || c >= 0x80 || c == '"' || c == '\\' }
	want := func(s string, i int) int {
		for i < len(s) && !special(s[i]) {
			i++
		}
		return i
	}
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
					if got, w := plainRun(s, start), want(s, start); got != w {
						t.Fatalf("plainRun(%q, %d) = %d, want %d", s, start, got, w)
					}
				}
			}
		}
	}
}
