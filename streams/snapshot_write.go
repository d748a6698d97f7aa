package streams

import (
	"fmt"
	"strings"
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
	var w framedWriter
	if raw, _ := snapshotBufs.Get().(*[]byte); raw != nil {
		w.raw = (*raw)[:0]
	}
	defer func() { raw := w.raw[:0]; snapshotBufs.Put(&raw) }()
	b := append(w.raw, `{"node":`...)
	b = appendString(b, h.State.Node)
	b = append(b, `,"marks":`...)
	b = appendJSONObject(b, h.MarkFields())
	b = append(b, `,"meta":`...)
	b = appendJSONObject(b, h.MetaFields())
	b = append(b, `,"series":{`...)
	w.raw = b
	w.fixed("")
	h.Fields(nil, func(f, v []byte) {
		fields++
		// The frame keeps the family's name: copied once per family (the
		// state's order keeps a family's fields together), never f.
		fam := FamilyOf(unsafe.String(unsafe.SliceData(f), len(f)))
		if fam == w.family {
			fam = w.family
		} else {
			fam = strings.Clone(fam)
		}
		b := appendString(w.field(fam), unsafe.String(unsafe.SliceData(f), len(f)))
		b = append(b, ':')
		w.done(appendString(b, unsafe.String(unsafe.SliceData(v), len(v))))
	})
	tail := `}`
	if rej := h.RejectedFields(); len(rej) > 0 {
		tail = string(appendJSONObject([]byte(`},"rejected":`), rej))
	}
	w.fixed(tail + `}`)
	msg = nats.NewMsg(subject)
	msg.Data = w.finish()
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
