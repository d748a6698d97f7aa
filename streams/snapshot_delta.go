package streams

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
)

// Incremental snapshots (docs/wire-format.md, "Incremental snapshots"). A
// node publishes a full snapshot every few intervals and, between them, a
// delta: the series-hash fields changed since its previous snapshot, the
// fields gone since (tombstones), and its small hashes (marks, metadata,
// rejections) whole. A delta names its base, the exact message it applies
// on: the previous snapshot's version and generation time. A receiver
// applies it only onto that base; otherwise it asks for a full one
// (SnapshotRequest) and keeps what it has until the full one comes or its
// TTL passes. Checkpoints are always full.
const (
	// HeaderSnapshotKind is "delta" on an incremental snapshot, absent on
	// a full one (every snapshot before incremental ones existed).
	HeaderSnapshotKind = "Jetmetrics-Kind"
	// HeaderSnapshotBaseVersion and HeaderSnapshotBaseGenerated name a
	// delta's base: the version and generation time (Unix ms) of the
	// snapshot it applies on.
	HeaderSnapshotBaseVersion   = "Jetmetrics-Base-Version"
	HeaderSnapshotBaseGenerated = "Jetmetrics-Base-Generated"
)

// SnapshotKindDelta is HeaderSnapshotKind's value on a delta.
const SnapshotKindDelta = "delta"

// SnapshotRequest is the core NATS subject on which any node asks node
// for a full snapshot at its next tick (a delta came without its base).
// It carries no data and no reply is sent: the full snapshot is the
// answer, on the snapshot subject.
func (s Subjects) SnapshotRequest(node string) string { return s.prefix() + ".snapreq." + node }

// SnapshotRequestAll matches every node's request subject.
func (s Subjects) SnapshotRequestAll() string { return s.prefix() + ".snapreq.*" }

// SnapshotDelta is an incremental snapshot's data: what changed in a
// node's aggregate since its base. It names no node (its headers and
// subject do), so a node that predates deltas refuses one as naming
// another node than its subject's instead of storing it as a full one.
type SnapshotDelta struct {
	Marks map[string]string `json:"marks"`
	Meta  map[string]string `json:"meta"`
	// Series are the series-hash fields set since the base.
	Series map[string]string `json:"series"`
	// Deleted are the series-hash fields gone since the base.
	Deleted  []string          `json:"deleted,omitempty"`
	Rejected map[string]string `json:"rejected,omitempty"`
}

// Mark is the delta's stream mark: the version it brings its base to.
func (d *SnapshotDelta) Mark() uint64 {
	n, _ := strconv.ParseUint(d.Marks["stream"], 10, 64)
	return n
}

// ApplyTo brings dump, the delta's base, to the delta's version.
func (d *SnapshotDelta) ApplyTo(dump *aggregate.Dump) {
	dump.Marks, dump.Meta, dump.Rejected = d.Marks, d.Meta, d.Rejected
	if dump.Series == nil {
		dump.Series = make(map[string]string, len(d.Series))
	}
	for k, v := range d.Series {
		dump.Series[k] = v
	}
	for _, k := range d.Deleted {
		delete(dump.Series, k)
	}
}

// DeltaBase names the snapshot a delta applies on.
type DeltaBase struct {
	Version   uint64
	Generated time.Time
}

// SnapshotDeltaMsg builds node's incremental snapshot message at version,
// applying on base, generated at gen and live for ttl. Its data is the
// JSON of d in indexed frames (snapshot_index.go), the series-hash fields
// and tombstones grouped by family.
func SnapshotDeltaMsg(subject, node string, version uint64, base DeltaBase, d *SnapshotDelta, gen time.Time, ttl time.Duration) (*nats.Msg, error) {
	marks, err := json.Marshal(d.Marks)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot delta of %s: %w", node, err)
	}
	meta, err := json.Marshal(d.Meta)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot delta of %s: %w", node, err)
	}
	var w framedWriter
	w.fixed(`{"marks":` + string(marks) + `,"meta":` + string(meta) + `,"series":{`)
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
	w.fixed(`},"deleted":[`)
	deleted := slices.Clone(d.Deleted)
	sortByFamily(deleted)
	for _, k := range deleted {
		w.done(appendString(w.field(FamilyOf(k)), k))
	}
	tail := `]`
	if len(d.Rejected) > 0 {
		rej, err := json.Marshal(d.Rejected)
		if err != nil {
			return nil, fmt.Errorf("encode snapshot delta of %s: %w", node, err)
		}
		tail += `,"rejected":` + string(rej)
	}
	w.fixed(tail + `}`)
	msg := nats.NewMsg(subject)
	msg.Data = w.finish()
	setSnapshotHeaders(msg, node, version, gen, ttl)
	msg.Header.Set(HeaderContentEncoding, SnapshotEncoding)
	msg.Header.Set(HeaderSnapshotKind, SnapshotKindDelta)
	msg.Header.Set(HeaderSnapshotBaseVersion, strconv.FormatUint(base.Version, 10))
	msg.Header.Set(HeaderSnapshotBaseGenerated, strconv.FormatInt(base.Generated.UnixMilli(), 10))
	return msg, nil
}

// parseDeltaHeaders fills info's delta fields from h.
func parseDeltaHeaders(h nats.Header, info *SnapshotInfo) error {
	switch k := h.Get(HeaderSnapshotKind); k {
	case "":
		return nil
	case SnapshotKindDelta:
	default:
		return fmt.Errorf("snapshot of %s: unknown kind %q (a newer wire version?)", info.Node, k)
	}
	info.Delta = true
	var err error
	if info.Base.Version, err = strconv.ParseUint(h.Get(HeaderSnapshotBaseVersion), 10, 64); err != nil {
		return fmt.Errorf("snapshot delta of %s: base version: %w", info.Node, err)
	}
	gen, err := strconv.ParseInt(h.Get(HeaderSnapshotBaseGenerated), 10, 64)
	if err != nil {
		return fmt.Errorf("snapshot delta of %s: base generated: %w", info.Node, err)
	}
	info.Base.Generated = time.UnixMilli(gen)
	if info.Base.Version > info.Version {
		return fmt.Errorf("snapshot delta of %s: base version %d above its version %d", info.Node, info.Base.Version, info.Version)
	}
	return nil
}

// DecodeSnapshotDelta decodes a delta's data within lim (zero fields mean
// the defaults), refusing one beyond them with ErrSnapshotTooLarge.
func DecodeSnapshotDelta(data []byte, lim SnapshotLimits) (*SnapshotDelta, error) {
	lim = lim.withDefaults()
	raw, err := decodeFrames(data, lim, allFamilies, nil)
	if err != nil {
		return nil, err
	}
	return parseSnapshotDelta(raw, lim)
}

// parseSnapshotDelta decodes a delta's decompressed JSON within lim.
func parseSnapshotDelta(raw []byte, lim SnapshotLimits) (*SnapshotDelta, error) {
	var d SnapshotDelta
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("decode snapshot delta: %w", err)
	}
	if n := len(d.Marks) + len(d.Meta) + len(d.Series) + len(d.Deleted) + len(d.Rejected); n > lim.MaxFields {
		return nil, fmt.Errorf("decode snapshot delta: %d fields, over %d: %w", n, lim.MaxFields, ErrSnapshotTooLarge)
	}
	if d.Marks == nil {
		return nil, fmt.Errorf("decode snapshot delta: no marks")
	}
	return &d, nil
}

// DecodeSnapshotChain decodes a full snapshot and the deltas stored on it
// since, in order, into the aggregate they make.
func DecodeSnapshotChain(full []byte, deltas [][]byte, lim SnapshotLimits) (*aggregate.Dump, error) {
	d, err := DecodeSnapshotLimited(full, lim)
	if err != nil {
		return nil, err
	}
	for i, b := range deltas {
		delta, err := DecodeSnapshotDelta(b, lim)
		if err != nil {
			return nil, fmt.Errorf("delta %d of %d: %w", i+1, len(deltas), err)
		}
		delta.ApplyTo(d)
	}
	return d, nil
}
