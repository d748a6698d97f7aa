package aggregate

import (
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
