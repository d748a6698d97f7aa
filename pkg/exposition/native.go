package exposition

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/jetmetrics/jetmetrics/pkg/nativehistogram"
)

// A histogram whose finite bounds coincide with native buckets
// (nativehistogram.Aligned) is served in protobuf with the fields of a
// Prometheus native histogram beside its classic buckets, so a Prometheus
// that scrapes native histograms stores it as one, exactly: schema; zero
// threshold the lowest bound and zero count the observations at or below
// it; each following classic bucket as the native bucket of its upper
// bound; and the observations above the highest bound in the native bucket
// after it, the one approximation (nativehistogram.Layout). The text
// formats have no native histograms and are unchanged.

// layoutCache maps a bucket layout (its bounds' bits) to whether and how
// it is aligned, so a scrape detects once per layout, not per family or
// series. It stops growing at maxCachedLayouts: the layouts a process
// sees are few, and one it does not cache is detected again, no more.
var (
	layoutCache      sync.Map // string -> nativeLayout
	layoutCacheSize  atomic.Int64
	maxCachedLayouts int64 = 4096
)

type nativeLayout struct {
	nativehistogram.Layout
	ok bool
	// threshold is the zero threshold: the lowest bound.
	threshold float64
}

// nativeLayoutOf returns the native layout of a histogram's bounds.
func nativeLayoutOf(bounds []float64) nativeLayout {
	var buf [8 * 64]byte
	key := buf[:0]
	for _, b := range bounds {
		key = binary.LittleEndian.AppendUint64(key, math.Float64bits(b))
	}
	if v, ok := layoutCache.Load(string(key)); ok {
		return v.(nativeLayout)
	}
	l, ok := nativehistogram.Aligned(bounds)
	nl := nativeLayout{Layout: l, ok: ok}
	if ok {
		nl.threshold = bounds[0]
	}
	if layoutCacheSize.Load() < maxCachedLayouts {
		if _, loaded := layoutCache.LoadOrStore(string(key), nl); !loaded {
			layoutCacheSize.Add(1)
		}
	}
	return nl
}

// bucketSpan is a native histogram's span: its first bucket's distance
// from the end of the previous span (for the first, the first bucket's
// index), and its length.
type bucketSpan struct {
	offset int32
	length uint32
}

// nativeBuckets are a series' native buckets.
type nativeBuckets struct {
	zero   uint64
	spans  []bucketSpan
	deltas []int64
}

// fill sets nb from a series' non-cumulative counts (missing ones are 0)
// for a layout of n finite bounds. Empty buckets between populated ones
// are spans' gaps, or zeros inside a span when the gap is one or two
// buckets, as client_golang encodes them. With no populated bucket, one
// span of length 0 stands in, as client_golang writes for an empty
// native histogram.
func (nb *nativeBuckets) fill(l nativeLayout, counts []uint64, n int) {
	count := func(i int) uint64 {
		if i < len(counts) {
			return counts[i]
		}
		return 0
	}
	nb.zero = count(0)
	nb.spans, nb.deltas = nb.spans[:0], nb.deltas[:0]
	var prev int64
	next := 0 // the index after the last bucket written
	for i := 1; i <= n; i++ {
		c := count(i)
		if c == 0 {
			continue
		}
		idx := l.First + i
		gap := idx - next
		if len(nb.spans) == 0 || gap > 2 {
			nb.spans = append(nb.spans, bucketSpan{offset: int32(gap)})
			if len(nb.spans) == 1 {
				nb.spans[0].offset = int32(idx)
			}
		} else {
			for range gap {
				nb.spans[len(nb.spans)-1].length++
				nb.deltas = append(nb.deltas, -prev)
				prev = 0
			}
		}
		nb.spans[len(nb.spans)-1].length++
		nb.deltas = append(nb.deltas, int64(c)-prev)
		prev = int64(c)
		next = idx + 1
	}
	if len(nb.spans) == 0 {
		nb.spans = append(nb.spans, bucketSpan{})
	}
}

// setDTO sets h's native-histogram fields.
func (nb *nativeBuckets) setDTO(h *dto.Histogram, l nativeLayout) {
	h.Schema = proto.Int32(l.Schema)
	h.ZeroThreshold = proto.Float64(l.threshold)
	h.ZeroCount = proto.Uint64(nb.zero)
	h.PositiveSpan = make([]*dto.BucketSpan, len(nb.spans))
	for i, s := range nb.spans {
		h.PositiveSpan[i] = &dto.BucketSpan{Offset: proto.Int32(s.offset), Length: proto.Uint32(s.length)}
	}
	h.PositiveDelta = append([]int64(nil), nb.deltas...)
}

// Field numbers of io.prometheus.client.Histogram's native-histogram
// fields and of BucketSpan's.
const (
	histFieldSchema        = 5
	histFieldZeroThreshold = 6
	histFieldZeroCount     = 7
	histFieldPositiveSpan  = 12
	histFieldPositiveDelta = 13
	spanFieldOffset        = 1
	spanFieldLength        = 2
)

// protoSize is the size of the native-histogram fields of a Histogram
// message.
func (nb *nativeBuckets) protoSize(l nativeLayout) int {
	n := 1 + protowire.SizeVarint(protowire.EncodeZigZag(int64(l.Schema))) + 1 + 8 + 1 + protowire.SizeVarint(nb.zero)
	for _, s := range nb.spans {
		n += 1 + protowire.SizeBytes(spanSize(s))
	}
	for _, d := range nb.deltas {
		n += 1 + protowire.SizeVarint(protowire.EncodeZigZag(d))
	}
	return n
}

func spanSize(s bucketSpan) int {
	return 1 + protowire.SizeVarint(protowire.EncodeZigZag(int64(s.offset))) + 1 + protowire.SizeVarint(uint64(s.length))
}

// appendProto appends the native-histogram fields in the order
// proto.Marshal writes them, by field number.
func (nb *nativeBuckets) appendProto(dst []byte, l nativeLayout) []byte {
	dst = protowire.AppendTag(dst, histFieldSchema, protowire.VarintType)
	dst = protowire.AppendVarint(dst, protowire.EncodeZigZag(int64(l.Schema)))
	dst = protowire.AppendTag(dst, histFieldZeroThreshold, protowire.Fixed64Type)
	dst = protowire.AppendFixed64(dst, math.Float64bits(l.threshold))
	dst = protowire.AppendTag(dst, histFieldZeroCount, protowire.VarintType)
	dst = protowire.AppendVarint(dst, nb.zero)
	for _, s := range nb.spans {
		dst = protowire.AppendTag(dst, histFieldPositiveSpan, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(spanSize(s)))
		dst = protowire.AppendTag(dst, spanFieldOffset, protowire.VarintType)
		dst = protowire.AppendVarint(dst, protowire.EncodeZigZag(int64(s.offset)))
		dst = protowire.AppendTag(dst, spanFieldLength, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(s.length))
	}
	for _, d := range nb.deltas {
		dst = protowire.AppendTag(dst, histFieldPositiveDelta, protowire.VarintType)
		dst = protowire.AppendVarint(dst, protowire.EncodeZigZag(d))
	}
	return dst
}
