package exposition

import (
	"encoding/binary"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/flate"
)

// A gzip response is assembled from deflate segments compressed apart, as
// pigz does: each segment is a fresh compressor's output ending in a sync
// flush, so it is byte aligned and refers to nothing before it, and any
// sequence of segments is one valid deflate stream. A cached segment can
// then be reused in every later response, next to freshly compressed ones,
// and large bodies are compressed on every core. The gzip trailer's CRC is
// combined from the segments' CRCs.

// zsegment is the deflate form of some plain bytes.
type zsegment struct {
	data []byte // deflate blocks ending in a sync flush, never final
	crc  uint32 // CRC-32 (IEEE) of the plain bytes
	n    int64  // length of the plain bytes
}

// compressor compresses segments at one level, pooling its writers.
type compressor struct {
	level int
	pool  sync.Pool
}

func newCompressor(level int) *compressor {
	c := &compressor{level: level}
	c.pool.New = func() any {
		w, err := flate.NewWriter(nil, level)
		if err != nil {
			panic(err) // the level was validated
		}
		return w
	}
	return c
}

// appendWriter is an io.Writer appending to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// compress returns the segment of plain; the compressed bytes are appended
// to dst, which may be nil.
func (c *compressor) compress(dst, plain []byte) zsegment {
	if len(plain) == 0 {
		return zsegment{data: dst}
	}
	w := c.pool.Get().(*flate.Writer)
	out := appendWriter{b: dst}
	w.Reset(&out)
	// Writing to an appendWriter cannot fail.
	_, _ = w.Write(plain)
	_ = w.Flush()
	w.Reset(nil)
	c.pool.Put(w)
	return zsegment{data: out.b, crc: crc32.ChecksumIEEE(plain), n: int64(len(plain))}
}

// gzipHeader starts a gzip member: no name, no time, unknown OS.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// appendGzipTrailer ends the deflate stream with an empty final block and
// appends the gzip trailer for plain bytes of CRC crc and length n.
func appendGzipTrailer(dst []byte, crc uint32, n int64) []byte {
	dst = append(dst, 0x03, 0x00) // final fixed-Huffman block, end of block only
	dst = binary.LittleEndian.AppendUint32(dst, crc)
	return binary.LittleEndian.AppendUint32(dst, uint32(n))
}

// crcCombine returns the CRC-32 (IEEE) of A followed by B from the CRCs of
// A and B and the length of B, as zlib's crc32_combine does: CRC(A·B) is
// CRC(A) times x^(8·len(B)) plus CRC(B), over GF(2) modulo the polynomial.
func crcCombine(crcA, crcB uint32, lenB int64) uint32 {
	return multModP(x2nModP(lenB, 3), crcA) ^ crcB
}

// crcPoly is the reflected IEEE polynomial.
const crcPoly = 0xedb88320

// multModP multiplies a and b modulo the polynomial, bits reflected.
func multModP(a, b uint32) uint32 {
	m := uint32(1) << 31
	var p uint32
	for {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		m >>= 1
		if b&1 != 0 {
			b = b>>1 ^ crcPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// x2nTable[k] is x^(2^k) modulo the polynomial.
var x2nTable = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	t[0] = p
	for k := 1; k < 32; k++ {
		p = multModP(p, p)
		t[k] = p
	}
	return t
}()

// x2nModP is x^(n·2^k) modulo the polynomial.
func x2nModP(n int64, k uint) uint32 {
	p := uint32(1) << 31 // x^0
	for n != 0 {
		if n&1 != 0 {
			p = multModP(x2nTable[k&31], p)
		}
		n >>= 1
		k++
	}
	return p
}
