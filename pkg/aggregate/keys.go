package aggregate

import (
	"math"
	"strconv"
	"strings"
)

// Field suffixes of a histogram series in the series hash: one field per
// bucket (key|b0 … key|bN, N being +Inf) and one for the sum (key|sum).
// A series key never contains '|' outside its quoted label values, and the
// suffix always follows the key's last character, so the last '|' splits.
const (
	bucketSuffix = "|b"
	sumSuffix    = "|sum"
)

// BucketField is the series-hash field of bucket i of a histogram series.
func BucketField(key string, i int) string {
	return key + bucketSuffix + strconv.Itoa(i)
}

// AppendBucketField appends BucketField(key, i) to dst.
func AppendBucketField(dst []byte, key string, i int) []byte {
	dst = append(dst, key...)
	dst = append(dst, bucketSuffix...)
	return strconv.AppendInt(dst, int64(i), 10)
}

// SumField is the series-hash field of a histogram series' sum.
func SumField(key string) string { return key + sumSuffix }

// FieldID names one series-hash field without spelling it: its series
// key and which of the series' fields it is. A tracker of many fields can
// hold the key the state already holds instead of a copy per field.
type FieldID struct {
	// Key is the series key.
	Key string
	// Bucket is the histogram bucket index, or PlainBucket (a counter's or
	// gauge's one field, the key itself) or SumBucket (a histogram's sum).
	Bucket int32
}

// Bucket values of a FieldID that are not bucket indices.
const (
	PlainBucket int32 = -1
	SumBucket   int32 = -2
)

// Name is the field as Store writes it.
func (id FieldID) Name() string {
	if id.Bucket == PlainBucket {
		return id.Key
	}
	return string(id.AppendName(make([]byte, 0, len(id.Key)+len(bucketSuffix)+10)))
}

// AppendName appends Name to dst.
func (id FieldID) AppendName(dst []byte) []byte {
	dst = append(dst, id.Key...)
	switch id.Bucket {
	case PlainBucket:
		return dst
	case SumBucket:
		return append(dst, sumSuffix...)
	}
	return strconv.AppendInt(append(dst, bucketSuffix...), int64(id.Bucket), 10)
}

// ParseField is the FieldID of a series-hash field, whose Name is field
// again; its Key is a substring of field. A field Store would not write
// (a bucket index spelled with leading zeros, say) is a PlainBucket field
// of itself.
func ParseField(field string) FieldID {
	key, bucket, hist := splitField(field)
	switch {
	case !hist:
	case bucket < 0:
		return FieldID{Key: key, Bucket: SumBucket}
	case bucket <= math.MaxInt32 && field[len(key)+len(bucketSuffix):] == strconv.Itoa(bucket):
		return FieldID{Key: key, Bucket: int32(bucket)}
	}
	return FieldID{Key: field, Bucket: PlainBucket}
}

// splitField splits a series-hash field into the series key and, for a
// histogram field, the bucket index (or -1 for the sum). hist is false for
// a counter or gauge field.
func splitField(field string) (key string, bucket int, hist bool) {
	if !strings.HasSuffix(field, "}") {
		// A bare name has no '{'; a labelled key ends in '}'. Anything else
		// carries a histogram suffix.
		if i := strings.LastIndexByte(field, '|'); i > 0 && strings.IndexByte(field[i:], '"') < 0 {
			suffix := field[i:]
			if suffix == sumSuffix {
				return field[:i], -1, true
			}
			if strings.HasPrefix(suffix, bucketSuffix) {
				if n, err := strconv.Atoi(suffix[len(bucketSuffix):]); err == nil && n >= 0 {
					return field[:i], n, true
				}
			}
		}
	}
	return field, 0, false
}

// keys are the Redis keys of one node's aggregate.
type keys struct {
	mark, series, meta, rejected string
}

func newKeys(prefix, node string) keys {
	base := prefix + ":{" + node + "}:"
	return keys{mark: base + "mark", series: base + "series", meta: base + "meta", rejected: base + "rejected"}
}
