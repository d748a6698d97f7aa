package streams

import (
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

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
	b = appendJSONString(b, h.State.Node)
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
		b = appendJSONString(b, f)
		b = append(b, ':')
		b = appendJSONString(b, v)
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
	msg.Header.Set(HeaderContentEncoding, "zstd")
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
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string. Like encoding/json it
// escapes quotes, backslashes and control characters and writes invalid
// UTF-8 as U+FFFD; unlike it, it leaves <, > and & (JSON does not need
// them escaped).
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
