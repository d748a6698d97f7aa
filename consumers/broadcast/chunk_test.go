package broadcast_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/consumers/broadcast"
	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/streams"
)

// bigDump is a dump of node at version whose compressed snapshot is some
// hundreds of KiB: random values do not compress away.
func bigDump(node string, version uint64, series int) *aggregate.Dump {
	rng := rand.New(rand.NewPCG(version, 1))
	d := &aggregate.Dump{Node: node, Marks: map[string]string{"stream": strconv.FormatUint(version, 10)}, Meta: map[string]string{}, Series: map[string]string{}}
	for i := range series {
		d.Series[fmt.Sprintf("c_total\x00id\x00%08d", i)] = strconv.FormatUint(rng.Uint64(), 36)
	}
	return d
}

// chunked is the messages of node's snapshot at version, cut for a server
// whose max_payload is 16 KiB, chunks first and head last.
func (r *rig) chunked(node string, version uint64, slot string) ([]*nats.Msg, *aggregate.Dump) {
	r.t.Helper()
	d := bigDump(node, version, 20_000)
	msg, err := streams.SnapshotMsg(r.subj.Snapshot(node), d, time.Now(), time.Minute)
	if err != nil {
		r.t.Fatal(err)
	}
	parts := streams.ChunkSnapshot(msg, slot, 16<<10)
	if len(parts) < 5 {
		r.t.Fatalf("%d bytes cut in %d parts: want a snapshot several times max_payload", len(msg.Data), len(parts))
	}
	return parts, d
}

// stored is the dump the peer store holds of node, and its version.
func (r *rig) stored(node string) (*aggregate.Dump, uint64) {
	r.t.Helper()
	snaps, err := r.peers.List(context.Background(), true)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, s := range snaps {
		if s.Node == node {
			d, err := streams.DecodeSnapshot(s.Data)
			if err != nil {
				r.t.Fatal(err)
			}
			return d, s.Version
		}
	}
	return nil, 0
}

func sameSeries(t *testing.T, got, want *aggregate.Dump) {
	t.Helper()
	if got == nil {
		t.Fatal("not stored")
	}
	if len(got.Series) != len(want.Series) || got.Mark() != want.Mark() {
		t.Fatalf("stored %d series at %d, want %d at %d", len(got.Series), got.Mark(), len(want.Series), want.Mark())
	}
	for k, v := range want.Series {
		if got.Series[k] != v {
			t.Fatalf("series %q: %q, want %q", k, got.Series[k], v)
		}
	}
}

// A snapshot several times max_payload, published as chunks and a head,
// is stored whole. A later one whose chunks are missing, of another
// version, damaged or naming another node is refused and counted, and the
// previous complete one stays: a peer never shows a partial or mixed
// snapshot.
func TestChunkedSnapshot(t *testing.T) {
	tests := []struct {
		name   string
		result string
		// spoil changes the second snapshot's parts (head last).
		spoil func(r *rig, parts []*nats.Msg) []*nats.Msg
	}{
		{"a chunk missing", broadcast.ResultIncomplete, func(r *rig, parts []*nats.Msg) []*nats.Msg {
			return append(parts[:1], parts[2:]...)
		}},
		{"a chunk of another version", broadcast.ResultIncomplete, func(r *rig, parts []*nats.Msg) []*nats.Msg {
			other, _ := r.chunked("n2", 9, streams.SlotB)
			parts[2] = other[2]
			return parts
		}},
		{"a chunk's data changed", broadcast.ResultForged, func(r *rig, parts []*nats.Msg) []*nats.Msg {
			parts[1].Data = append([]byte(nil), parts[1].Data...)
			parts[1].Data[10] ^= 0xff
			return parts
		}},
		{"a chunk naming another node", broadcast.ResultForged, func(r *rig, parts []*nats.Msg) []*nats.Msg {
			parts[0].Header.Set(streams.HeaderSnapshotNode, "n3")
			return parts
		}},
		{"a head declaring more than the receiver's cap", broadcast.ResultOversize, func(r *rig, parts []*nats.Msg) []*nats.Msg {
			parts[len(parts)-1].Header.Set(streams.HeaderSnapshotSize, strconv.Itoa(1<<30))
			return parts
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, broadcast.Config{Limits: streams.SnapshotLimits{MaxBytes: 64 << 20}})
			first, want := r.chunked("n2", 5, streams.SlotA)
			for _, m := range first {
				r.publish(m)
			}
			r.waitCount(broadcast.ResultStored, 1)
			got, v := r.stored("n2")
			sameSeries(t, got, want)
			if v != 5 {
				t.Fatalf("version %d, want 5", v)
			}

			second, _ := r.chunked("n2", 8, streams.SlotB)
			for _, m := range tc.spoil(r, second) {
				r.publish(m)
			}
			r.waitCount(tc.result, 1)
			got, v = r.stored("n2")
			sameSeries(t, got, want)
			if v != 5 || r.count(broadcast.ResultStored) != 1 {
				t.Fatalf("version %d after a refused one, want 5 (stored %v)", v, r.count(broadcast.ResultStored))
			}
		})
	}
}
