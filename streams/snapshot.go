package streams

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
)

// Snapshot stream: one subject per node for the broadcast (each message
// with a TTL, so a dead node's snapshot expires and the server leaves a
// delete marker), and one per node for checkpoints (no TTL: a node that was
// down for long still finds its checkpoint). Each subject keeps only its
// newest message.

// SnapshotStream is the name of the snapshot stream (JETMETRICS_SNAP).
func (c Config) SnapshotStream() string { return StreamName(c.WithDefaults().Prefix, "SNAP") }

// Checkpoint is the subject of one node's checkpoints.
func (s Subjects) Checkpoint(node string) string { return s.prefix() + ".ckpt." + node }

// SnapshotStreamConfig is the definition of the snapshot stream.
func (c Config) SnapshotStreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	s := c.Subjects()
	return jetstream.StreamConfig{
		Name:        c.SnapshotStream(),
		Description: "jetmetrics node snapshots (broadcast, with a TTL) and checkpoints",
		// The chunks of a snapshot or checkpoint too large for one
		// message, <subject>.<slot><i> (snapshot_chunk.go).
		Subjects:               []string{s.SnapshotAll(), s.prefix() + ".ckpt.*", s.SnapshotAll() + ".*", s.prefix() + ".ckpt.*.*"},
		Retention:              jetstream.LimitsPolicy,
		Discard:                jetstream.DiscardOld,
		MaxMsgsPerSubject:      1,
		AllowMsgTTL:            true,
		SubjectDeleteMarkerTTL: time.Minute,
		Storage:                c.storage(),
		Replicas:               c.Replicas,
	}
}

// Headers of a snapshot message.
const (
	HeaderSnapshotNode      = "Jetmetrics-Node"
	HeaderSnapshotVersion   = "Jetmetrics-Version"
	HeaderSnapshotGenerated = "Jetmetrics-Generated"
	HeaderSnapshotTTL       = "Jetmetrics-TTL"
	HeaderSnapshotRemoved   = "Jetmetrics-Removed"
	HeaderContentEncoding   = "Content-Encoding"
)

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
)

// SnapshotMsg builds the snapshot message of d, generated at gen and live
// for ttl: the JSON json.Marshal writes of d, its series-hash fields grouped
// by family in indexed frames (snapshot_index.go).
func SnapshotMsg(subject string, d *aggregate.Dump, gen time.Time, ttl time.Duration) (*nats.Msg, error) {
	head, err := json.Marshal(struct {
		Node  string            `json:"node"`
		Marks map[string]string `json:"marks"`
		Meta  map[string]string `json:"meta"`
	}{d.Node, d.Marks, d.Meta})
	if err != nil {
		return nil, fmt.Errorf("encode snapshot of %s: %w", d.Node, err)
	}
	var w framedWriter
	if d.Series == nil {
		w.fixed(string(head[:len(head)-1]) + `,"series":null`)
	} else {
		w.fixed(string(head[:len(head)-1]) + `,"series":{`)
		keys := make([]string, 0, len(d.Series))
		for k := range d.Series {
			keys = append(keys, k)
		}
		sortByFamily(keys)
		for _, k := range keys {
			b := appendString(w.field(FamilyOf(k)), k)
			b = append(b, ':')
			w.done(appendString(b, d.Series[k]))
		}
		w.fixed(`}`)
	}
	tail := `}`
	if len(d.Rejected) > 0 {
		rej, err := json.Marshal(d.Rejected)
		if err != nil {
			return nil, fmt.Errorf("encode snapshot of %s: %w", d.Node, err)
		}
		tail = `,"rejected":` + string(rej) + `}`
	}
	w.fixed(tail)
	msg := nats.NewMsg(subject)
	msg.Data = w.finish()
	setSnapshotHeaders(msg, d.Node, d.Mark(), gen, ttl)
	msg.Header.Set(HeaderContentEncoding, SnapshotEncoding)
	return msg, nil
}

// RemovalMsg builds the message a node publishes when it stops gracefully:
// peers forget its snapshot unless they hold a newer one.
func RemovalMsg(subject, node string, version uint64, gen time.Time, ttl time.Duration) *nats.Msg {
	msg := nats.NewMsg(subject)
	setSnapshotHeaders(msg, node, version, gen, ttl)
	msg.Header.Set(HeaderSnapshotRemoved, "true")
	return msg
}

func setSnapshotHeaders(msg *nats.Msg, node string, version uint64, gen time.Time, ttl time.Duration) {
	msg.Header.Set(HeaderSnapshotNode, node)
	msg.Header.Set(HeaderSnapshotVersion, strconv.FormatUint(version, 10))
	msg.Header.Set(HeaderSnapshotGenerated, strconv.FormatInt(gen.UnixMilli(), 10))
	msg.Header.Set(HeaderSnapshotTTL, strconv.FormatInt(ttl.Milliseconds(), 10))
}

// SnapshotInfo is what a snapshot message's headers say.
type SnapshotInfo struct {
	Node      string
	Version   uint64
	Generated time.Time
	TTL       time.Duration
	// Removed marks a graceful removal, or the server's delete marker
	// after the snapshot expired.
	Removed bool
	// Delta marks an incremental snapshot, which applies on Base only
	// (snapshot_delta.go).
	Delta bool
	Base  DeltaBase
}

// ParseSnapshotHeaders reads a snapshot message's headers. node is the
// subject's node token, used when the headers are the server's (a delete
// marker carries none of ours).
func ParseSnapshotHeaders(h nats.Header, node string) (SnapshotInfo, error) {
	if h.Get(jetstream.MarkerReasonHeader) != "" {
		return SnapshotInfo{Node: node, Removed: true}, nil
	}
	info := SnapshotInfo{Node: h.Get(HeaderSnapshotNode), Removed: h.Get(HeaderSnapshotRemoved) == "true"}
	if info.Node != node {
		return info, fmt.Errorf("snapshot names node %q on the subject of %q", info.Node, node)
	}
	var err error
	if info.Version, err = strconv.ParseUint(h.Get(HeaderSnapshotVersion), 10, 64); err != nil {
		return info, fmt.Errorf("snapshot of %s: version: %w", node, err)
	}
	gen, err := strconv.ParseInt(h.Get(HeaderSnapshotGenerated), 10, 64)
	if err != nil {
		return info, fmt.Errorf("snapshot of %s: generated: %w", node, err)
	}
	info.Generated = time.UnixMilli(gen)
	ttl, err := strconv.ParseInt(h.Get(HeaderSnapshotTTL), 10, 64)
	if err != nil || ttl <= 0 {
		return info, fmt.Errorf("snapshot of %s: bad ttl %q", node, h.Get(HeaderSnapshotTTL))
	}
	info.TTL = time.Duration(ttl) * time.Millisecond
	if err := parseDeltaHeaders(h, &info); err != nil {
		return info, err
	}
	return info, nil
}

// ErrBadCheckpoint reports a checkpoint that is not what node's snapshot
// publisher writes (CheckCheckpoint): forged, damaged or not a checkpoint
// at all. It is refused for good, unlike a stream that does not answer.
var ErrBadCheckpoint = errors.New("checkpoint refused")

// SnapshotEncoding is the Content-Encoding of every snapshot and
// checkpoint the publisher writes.
const SnapshotEncoding = "zstd"

// CheckCheckpoint decodes node's checkpoint message (its headers h and
// data) and checks that it says of itself what the snapshot publisher
// writes: headers naming node, a version, generation time and TTL, zstd
// encoding, no removal and no server marker; data naming node at the
// version of the headers. Anything else is ErrBadCheckpoint (wrapped,
// saying what is wrong).
func CheckCheckpoint(h nats.Header, data []byte, node string) (*aggregate.Dump, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: checkpoint of %s: %s", ErrBadCheckpoint, node, fmt.Sprintf(format, args...))
	}
	info, err := ParseSnapshotHeaders(h, node)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrBadCheckpoint, err)
	case info.Removed:
		return nil, bad("it is a removal, not a snapshot")
	case info.Delta:
		// Restoring one would lose every series it did not change.
		return nil, bad("it is an incremental snapshot; checkpoints are full")
	case h.Get(HeaderContentEncoding) != SnapshotEncoding:
		return nil, bad("encoding %q, not %s", h.Get(HeaderContentEncoding), SnapshotEncoding)
	}
	d, err := DecodeSnapshot(data)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: checkpoint of %s: %w", ErrBadCheckpoint, node, err)
	case d.Node != node:
		return nil, bad("its data names node %q", d.Node)
	case d.Mark() != info.Version:
		return nil, bad("its headers say version %d, its data %d", info.Version, d.Mark())
	}
	return d, nil
}

// SnapshotLimits bound what decoding one snapshot may cost a receiver. A
// snapshot or checkpoint is a message any holder of a node's credentials
// can publish, so its size after decompression and its number of fields
// are checked while it is decompressed and decoded, never taken from what
// the message says of itself: a zstd frame's declared content size above
// MaxBytes is refused before anything is allocated, a frame that does not
// declare it is refused as soon as its output passes MaxBytes, and the
// scanner stops at the first field past MaxFields.
type SnapshotLimits struct {
	// MaxBytes caps the decompressed JSON (default
	// DefaultMaxSnapshotBytes).
	MaxBytes int64
	// MaxFields caps the fields of the snapshot's maps together (marks,
	// metadata, series-hash fields, rejections; default
	// DefaultMaxSnapshotFields).
	MaxFields int
}

// Default snapshot limits: room for the default series limit (1,000,000
// series, some 2.3 fields and 100 bytes of JSON per field in a typical
// aggregate) with a margin.
const (
	DefaultMaxSnapshotBytes  = 512 << 20
	DefaultMaxSnapshotFields = 4_000_000
)

// ErrSnapshotTooLarge is returned when a snapshot is beyond its limits.
var ErrSnapshotTooLarge = errors.New("snapshot beyond the receiver's limits")

func (l SnapshotLimits) withDefaults() SnapshotLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxSnapshotBytes
	}
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultMaxSnapshotFields
	}
	return l
}

// zdecs holds one decoder per decompressed-size limit: the limit is a
// decoder's option. A process uses one or two limits.
var zdecs sync.Map // int64 -> *zstd.Decoder

func zdecFor(limit int64) (*zstd.Decoder, error) {
	if d, ok := zdecs.Load(limit); ok {
		return d.(*zstd.Decoder), nil
	}
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	if old, loaded := zdecs.LoadOrStore(limit, d); loaded {
		d.Close()
		return old.(*zstd.Decoder), nil
	}
	return d, nil
}

// DecodeSnapshot decodes a snapshot message's data within the default
// limits; see DecodeSnapshotLimited.
func DecodeSnapshot(data []byte) (*aggregate.Dump, error) {
	return DecodeSnapshotLimited(data, SnapshotLimits{})
}

// DecodeSnapshotLimited decodes a snapshot message's data, refusing with
// ErrSnapshotTooLarge one beyond lim (zero fields mean the defaults). Its
// outcome is otherwise that of json.Unmarshal into an aggregate.Dump
// (decodeSnapshotReference), which a scanner reaches faster for what
// SnapshotMsg writes (snapshot_scan.go). The dump's strings share one
// allocation.
func DecodeSnapshotLimited(data []byte, lim SnapshotLimits) (*aggregate.Dump, error) {
	lim = lim.withDefaults()
	d := snapshotDecoders.Get().(*snapshotDecoder)
	defer snapshotDecoders.Put(d)
	// Nothing decoded points into the decompressed message, so its buffer
	// is reused, unless it grew past what a usual snapshot needs.
	raw, err := decodeFrames(data, lim, allFamilies, d.raw[:0])
	if err != nil {
		d.raw = nil
		return nil, err
	}
	d.raw = raw[:0]
	d.maxFields = lim.MaxFields
	return decodeSnapshotJSON(d, raw)
}
