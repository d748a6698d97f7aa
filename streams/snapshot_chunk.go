package streams

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Chunked snapshots (docs/wire-format.md, "Chunked snapshots"). A snapshot
// or checkpoint whose compressed data does not fit in one message of the
// server's max_payload is split: parts 1..n-1 go first, each on its own
// chunk subject <subject>.<slot><i> (the stream keeps the newest message
// per subject), and the head goes last on the snapshot's own subject with
// part 0 and the headers below. Publishing the head completes it: a reader
// only ever starts from a head, fetches the head's chunks, and takes the
// whole only when every chunk names the head's node, version and slot and
// the parts add up to the size and checksum the head declares. Slots
// alternate between "a" and "b", so writing version v+1 never overwrites
// the chunks the current head (version v) refers to: a publisher that dies
// halfway leaves the previous complete snapshot readable.
const (
	// HeaderSnapshotChunks is the number of parts, head included (2 or
	// more); absent on a snapshot in one message.
	HeaderSnapshotChunks = "Jetmetrics-Chunks"
	// HeaderSnapshotSize is the compressed size of the whole, in bytes.
	HeaderSnapshotSize = "Jetmetrics-Size"
	// HeaderSnapshotSum is the hex SHA-256 of the whole compressed data.
	HeaderSnapshotSum = "Jetmetrics-Sum"
	// HeaderSnapshotSlot names the chunk subjects' slot, "a" or "b".
	HeaderSnapshotSlot = "Jetmetrics-Slot"
	// HeaderSnapshotChunk is a chunk's part number (1..n-1).
	HeaderSnapshotChunk = "Jetmetrics-Chunk"
)

// SnapshotChunkHeadroom is what a part leaves of max_payload for headers
// (ours and the JetStream client's).
const SnapshotChunkHeadroom = 4 << 10

// MaxSnapshotChunks bounds the parts of one snapshot a reader fetches.
const MaxSnapshotChunks = 1 << 14

// Chunk slots.
const (
	SlotA = "a"
	SlotB = "b"
)

// OtherSlot is the slot after s.
func OtherSlot(s string) string {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// ChunkSubject is the subject of part i (1..n-1) of a snapshot or
// checkpoint published on subject, in slot.
func ChunkSubject(subject, slot string, i int) string {
	return subject + "." + slot + strconv.Itoa(i)
}

// ErrSnapshotIncomplete is returned for a chunked snapshot one of whose
// chunks is missing (never published, expired, purged) or belongs to
// another version: it is not taken, and the previous complete one stays.
var ErrSnapshotIncomplete = errors.New("snapshot incomplete")

// ErrSnapshotChunkForged is returned for a chunked snapshot whose chunks
// name another node, or whose parts are not what its head declares (size,
// checksum, numbering).
var ErrSnapshotChunkForged = errors.New("snapshot chunk forged or damaged")

// ChunkSnapshot splits msg, a snapshot or checkpoint message as SnapshotMsg
// builds it, into messages whose data is at most three quarters of
// maxPayload less SnapshotChunkHeadroom (so that a message get's base64
// reply fits too), to be published in order: the chunks in
// slot, then the head, last, on msg's subject. A message that fits is
// returned alone and unchanged. msg's headers other than the chunk
// headers are copied to every message (a TTL header among them: the
// caller sets the chunks' own).
func ChunkSnapshot(msg *nats.Msg, slot string, maxPayload int64) []*nats.Msg {
	// A reader fetches chunks with the stream's message get, whose reply
	// carries the data in base64 inside JSON: a third more than the part.
	part := int(maxPayload) - SnapshotChunkHeadroom
	if part < int(maxPayload)/2 {
		part = int(maxPayload) / 2
	}
	part = max(part*3/4, 1)
	if len(msg.Data) <= part {
		return []*nats.Msg{msg}
	}
	n := (len(msg.Data) + part - 1) / part
	sum := sha256.Sum256(msg.Data)
	out := make([]*nats.Msg, 0, n)
	for i := 1; i < n; i++ {
		c := nats.NewMsg(ChunkSubject(msg.Subject, slot, i))
		c.Header.Set(HeaderSnapshotNode, msg.Header.Get(HeaderSnapshotNode))
		c.Header.Set(HeaderSnapshotVersion, msg.Header.Get(HeaderSnapshotVersion))
		c.Header.Set(HeaderSnapshotSlot, slot)
		c.Header.Set(HeaderSnapshotChunk, strconv.Itoa(i))
		c.Data = msg.Data[i*part : min((i+1)*part, len(msg.Data))]
		out = append(out, c)
	}
	head := nats.NewMsg(msg.Subject)
	for k, v := range msg.Header {
		head.Header[k] = append([]string(nil), v...)
	}
	head.Header.Set(HeaderSnapshotChunks, strconv.Itoa(n))
	head.Header.Set(HeaderSnapshotSize, strconv.Itoa(len(msg.Data)))
	head.Header.Set(HeaderSnapshotSum, hex.EncodeToString(sum[:]))
	head.Header.Set(HeaderSnapshotSlot, slot)
	head.Data = msg.Data[:part]
	return append(out, head)
}

// ChunkGetter fetches the newest message on subject in the snapshot
// stream; jetstream.ErrMsgNotFound when there is none.
type ChunkGetter func(ctx context.Context, subject string) (nats.Header, []byte, error)

// StreamChunkGetter fetches chunks from the snapshot stream s.
func StreamChunkGetter(s jetstream.Stream) ChunkGetter {
	return func(ctx context.Context, subject string) (nats.Header, []byte, error) {
		m, err := s.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return nil, nil, err
		}
		return m.Header, m.Data, nil
	}
}

// IsChunked reports whether a snapshot head h announces chunks.
func IsChunked(h nats.Header) bool { return h.Get(HeaderSnapshotChunks) != "" }

// AssembleSnapshot returns the whole compressed data of the snapshot whose
// head, published on subject by node at version, has headers h and data
// (part 0). A snapshot in one message is data itself. A chunked one is
// checked before anything is fetched (its declared size at most maxBytes,
// the receiver's decompressed-size cap, and at most MaxSnapshotChunks
// parts), then each chunk as it is fetched: it must name node, version and
// the head's slot and number, and never take the whole past its declared
// size; the whole must match the declared checksum. A missing chunk, or one
// of another version, is ErrSnapshotIncomplete; a forged or damaged one
// ErrSnapshotChunkForged; other errors are get's (the stream did not
// answer).
func AssembleSnapshot(ctx context.Context, get ChunkGetter, subject, node string, version uint64, h nats.Header, data []byte, maxBytes int64) ([]byte, error) {
	if !IsChunked(h) {
		return data, nil
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxSnapshotBytes
	}
	forged := func(format string, args ...any) error {
		return fmt.Errorf("%w: snapshot of %s at version %d: %s", ErrSnapshotChunkForged, node, version, fmt.Sprintf(format, args...))
	}
	n, err := strconv.Atoi(h.Get(HeaderSnapshotChunks))
	if err != nil || n < 2 || n > MaxSnapshotChunks {
		return nil, forged("bad chunk count %q (2 to %d)", h.Get(HeaderSnapshotChunks), MaxSnapshotChunks)
	}
	size, err := strconv.ParseInt(h.Get(HeaderSnapshotSize), 10, 64)
	if err != nil || size <= int64(len(data)) {
		return nil, forged("bad size %q for a head of %d bytes", h.Get(HeaderSnapshotSize), len(data))
	}
	if size > maxBytes {
		return nil, fmt.Errorf("snapshot of %s at version %d: %d bytes compressed, over %d: %w", node, version, size, maxBytes, ErrSnapshotTooLarge)
	}
	want, err := hex.DecodeString(h.Get(HeaderSnapshotSum))
	if err != nil || len(want) != sha256.Size {
		return nil, forged("bad checksum header %q", h.Get(HeaderSnapshotSum))
	}
	slot := h.Get(HeaderSnapshotSlot)
	if slot != SlotA && slot != SlotB {
		return nil, forged("bad slot %q", slot)
	}
	whole := make([]byte, 0, size)
	whole = append(whole, data...)
	for i := 1; i < n; i++ {
		cs := ChunkSubject(subject, slot, i)
		ch, cd, err := get(ctx, cs)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("%w: snapshot of %s at version %d: chunk %d of %d missing", ErrSnapshotIncomplete, node, version, i, n)
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot of %s at version %d: chunk %d: %w", node, version, i, err)
		}
		switch {
		case ch.Get(jetstream.MarkerReasonHeader) != "":
			return nil, fmt.Errorf("%w: snapshot of %s at version %d: chunk %d of %d expired", ErrSnapshotIncomplete, node, version, i, n)
		case ch.Get(HeaderSnapshotNode) != node:
			return nil, forged("chunk %d names node %q", i, ch.Get(HeaderSnapshotNode))
		case ch.Get(HeaderSnapshotVersion) != strconv.FormatUint(version, 10):
			return nil, fmt.Errorf("%w: snapshot of %s at version %d: chunk %d of %d is of version %q", ErrSnapshotIncomplete, node, version, i, n, ch.Get(HeaderSnapshotVersion))
		case ch.Get(HeaderSnapshotSlot) != slot || ch.Get(HeaderSnapshotChunk) != strconv.Itoa(i):
			return nil, forged("chunk on %s says slot %q part %q", cs, ch.Get(HeaderSnapshotSlot), ch.Get(HeaderSnapshotChunk))
		case int64(len(whole)+len(cd)) > size:
			return nil, forged("parts exceed the declared %d bytes", size)
		}
		whole = append(whole, cd...)
	}
	if int64(len(whole)) != size {
		return nil, forged("parts add up to %d bytes, not the declared %d", len(whole), size)
	}
	if got := sha256.Sum256(whole); !bytes.Equal(got[:], want) {
		return nil, forged("checksum mismatch")
	}
	return whole, nil
}
