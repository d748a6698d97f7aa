package producers

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// stripes are a contended counter's cells, each on a cache line of its
// own, as in Java's LongAdder: goroutines add to different cells, and a
// flush sums them.
//
// A goroutine is told by its stack: the address of a local, shifted past
// the smallest stack size (2 KiB), differs from one goroutine to the next
// and stays put while it runs. Multiplied by mult, its top bits pick the
// goroutine's cell. Two goroutines running at once can still pick the same
// cell; when a counter finds that, it swaps in stripes with the same cells
// and a new mult, which picks anew for every goroutine.
type stripes struct {
	cells []stripe // a power of two of them
	mult  uint64   // odd
	shift uint8    // 64 - log2(len(cells))
}

// stripe is one cell of a contended counter: an integer, or a float's
// bits. It is touched only through sync/atomic's functions.
type stripe struct {
	_      [0]atomic.Uint64 // v is 64-bit aligned on every platform
	v      uint64
	failed uint32 // swaps of v that failed, for a float
	_      [cacheLine - 12]byte
}

// newStripes makes a contended counter's stripes: several cells a core,
// so that goroutines running at once seldom share one.
func newStripes() *stripes {
	n := 8
	for n < min(4*runtime.GOMAXPROCS(0), maxStripes) {
		n <<= 1
	}
	return &stripes{
		cells: make([]stripe, n),
		mult:  0x9e3779b97f4a7c15, // 2^64 / φ, a Fibonacci hash
		shift: uint8(64 - bits.TrailingZeros(uint(n))),
	}
}

// maxStripes bounds a contended counter's cells (a cache line each).
const maxStripes = 64

// repicked returns stripes with the same cells and a new, random mult.
func (s *stripes) repicked() *stripes {
	return &stripes{cells: s.cells, mult: rand.Uint64() | 1, shift: s.shift}
}

// mine returns the index of the calling goroutine's cell.
func (s *stripes) mine() uint64 {
	var here byte
	return uint64(uintptr(unsafe.Pointer(&here))>>11) * s.mult >> s.shift
}

// addInt adds n to the calling goroutine's cell. It reports whether it
// found another goroutine adding to that cell at the same time, which it
// looks for whenever the cell's low 16 bits come to 0 (see Counter.Add).
func (s *stripes) addInt(n uint64) (shared bool) {
	p := &s.cells[s.mine()].v
	return uint16(atomic.AddUint64(p, n)) == 0 && contended(p)
}

// addFloat adds v to the float in the calling goroutine's cell, or in the
// next one along while a swap fails. It reports whether the cell it tried
// first has now seen a multiple of repickEvery failed swaps (other
// goroutines adding to it at the same time), so that the counter can repick
// cells for goroutines that share one, without churning through repicks
// when more goroutines run than there are cells.
//
// Kept out of line: inlined, it made FloatCounter.Add's unstriped path
// slower (6.7-7.3 ns against 6.3-6.5).
//
//go:noinline
func (s *stripes) addFloat(v float64) (shared bool) {
	mask := uint64(len(s.cells) - 1)
	first := s.mine()
	for i := first; ; i++ {
		c := &s.cells[i&mask]
		old := atomic.LoadUint64(&c.v)
		if atomic.CompareAndSwapUint64(&c.v, old, math.Float64bits(math.Float64frombits(old)+v)) {
			return shared
		}
		if i == first {
			shared = atomic.AddUint32(&c.failed, 1)%repickEvery == 0
		}
	}
}

// repickEvery is how many failed swaps on a float counter's cell ask for
// new cells.
const repickEvery = 64

// takeInt returns the sum of the cells as integers, leaving them at 0.
func (s *stripes) takeInt() (sum uint64) {
	for i := range s.cells {
		sum += atomic.SwapUint64(&s.cells[i].v, 0)
	}
	return sum
}

// takeFloat returns the sum of the cells as floats, leaving them at 0.
func (s *stripes) takeFloat() (sum float64) {
	for i := range s.cells {
		sum += math.Float64frombits(atomic.SwapUint64(&s.cells[i].v, 0))
	}
	return sum
}

// contended watches the word at p for a moment and reports whether anyone
// wrote it meanwhile. The moment, contentionProbes loads, is a few hundred
// nanoseconds: long enough for another core that is adding to the word to
// take its cache line back, short enough that a goroutine adding alone
// seldom meets another's write.
func contended(p *uint64) bool {
	now := atomic.LoadUint64(p)
	for range contentionProbes {
		if atomic.LoadUint64(p) != now {
			return true
		}
	}
	return false
}

const contentionProbes = 1024
