package streams

import (
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
)

// snapshotBufs recycles the JSON buffers of SnapshotMsgOf: a snapshot of
// 100k series is some 10 MB of JSON.
var snapshotBufs sync.Pool

// SnapshotMsgOf builds the snapshot message of an aggregate held in memory,
// generated at gen and live for ttl: the same message SnapshotMsg builds
// from h.Dump(), without the dump's maps. It writes the JSON straight from
// the state, in the state's order (sorted by series, which is also what
// makes a peer's decoding fast), instead of marshalling and sorting maps.
// fields is the number of series-hash fields it carries.
func SnapshotMsgOf(subject string, h aggregate.Held, gen time.Time, ttl time.Duration) (msg *nats.Msg, fields int, err error) {
	if h.State.Node == "" {
		return nil, 0, fmt.Errorf("encode snapshot: no node")
	}
	raw, _ := snapshotBufs.Get().(*[]byte)
	if raw == nil {
		raw = new([]byte)
	}
	defer snapshotBufs.Put(raw)
	b := append((*raw)[:0], `{"node":`...)
	b = appendString(b, h.State.Node)
	b = append(b, `,"marks":`...)
	b = appendJSONObject(b, h.MarkFields())
	b = append(b, `,"meta":`...)
	b = appendJSONObject(b, h.MetaFields())
	b = append(b, `,"series":{`...)
	h.Fields(nil, func(f, v []byte) {
		if fields > 0 {
			b = append(b, ',')
		}
		fields++
		// appendString keeps neither.
		b = appendString(b, unsafe.String(unsafe.SliceData(f), len(f)))
		b = append(b, ':')
		b = appendString(b, unsafe.String(unsafe.SliceData(v), len(v)))
	})
	b = append(b, '}')
	if rej := h.RejectedFields(); len(rej) > 0 {
		b = append(b, `,"rejected":`...)
		b = appendJSONObject(b, rej)
	}
	b = append(b, '}')
	*raw = b
	msg = nats.NewMsg(subject)
	msg.Data = zenc.EncodeAll(b, make([]byte, 0, len(b)/8))
	setSnapshotHeaders(msg, h.State.Node, h.State.Mark, gen, ttl)
	msg.Header.Set(HeaderContentEncoding, SnapshotEncoding)
	return msg, fields, nil
}

func appendJSONObject(b []byte, m map[string]string) []byte {
	b = append(b, '{')
	first := true
	for k, v := range m {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, v)
	}
	return append(b, '}')
}
