package aggregator

import (
	"fmt"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// wideLabels are the labels of wide series i: 16 labels of 256-byte
// values, as a service with long label values sends them. Most values
// repeat across series (a handful of regions, clusters, images, ...); the
// last three are unique per series (request path, trace exemplar, pod).
func wideLabels(i int) []series.Label {
	labels := make([]series.Label, 16)
	for j := range labels {
		v := i % (2 + 3*j) // shared: label j takes 2+3j values
		if j >= 13 {
			v = i // unique
		}
		labels[j] = series.Label{Name: fmt.Sprintf("label_%02d", j), Value: wideValue(j, v)}
	}
	series.SortLabels(labels)
	return labels
}

// wideValue is value v of label j: 256 bytes that compress about as
// well as real identifiers (hex digits from a hash of j and v).
func wideValue(j, v int) string {
	var b strings.Builder
	x := uint64(j)<<32 | uint64(v) | 1
	for b.Len() < 256 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b.WriteByte("0123456789abcdef"[x&15])
	}
	return b.String()
}

// seriesOverhead is the fixed cost a series may have beside its label
// bytes: the cell, its map entry, its State entry and the label headers
// (32 B each).
const seriesOverhead = 1024

// heapAfterGC is the live heap after a full collection.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestSeriesMemory measures the heap a series costs the aggregate held in
// memory (the aggregator's live cells and the State built from them) and
// the rendered /metrics exposition cached for it, for plain series and
// wide ones (16 labels of 256 B), and fails when a wide series costs far
// more than twice its label bytes plus a fixed overhead
// (docs/performance.md, "Memory per series").
func TestSeriesMemory(t *testing.T) {
	const n = 5000
	for _, tc := range []struct {
		name   string
		labels func(i int) []series.Label
	}{
		{"plain", func(i int) []series.Label {
			return []series.Label{{Name: "code", Value: "200"}, {Name: "path", Value: fmt.Sprintf("/api/v1/items/%d", i)}}
		}},
		{"wide", wideLabels},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta := aggregate.Meta{Kind: aggregate.Counter}
			keys := make([]string, n)
			labelBytes := 0
			for i := range keys {
				labels := tc.labels(i)
				for _, l := range labels {
					labelBytes += len(l.Name) + len(l.Value)
				}
				keys[i] = series.Key("mem_test_total", labels)
			}
			labelBytes /= n
			before := heapAfterGC()
			l := newLive(&aggregate.State{Node: "n1"}, aggregate.Marks{}, map[string]aggregate.Meta{"mem_test_total": meta})
			g := newGroup()
			for i, k := range keys {
				c := l.series(string([]byte(k)), "mem_test_total", meta) // as from a message released after folding
				c.next = float64(i)
				l.change(c, -1)
			}
			l.seal(g, map[string]aggregate.Meta{"mem_test_total": meta})
			g.mark = 1
			l.commit(g)
			g = nil
			st := l.State()
			aggBytes := float64(heapAfterGC()-before) / n

			h, err := exposition.NewHandler(exposition.HandlerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			before = heapAfterGC()
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			h.Serve(rec, req, []*aggregate.State{st})
			rec = nil
			expoBytes := float64(heapAfterGC()-before) / n
			// A peer's view of the same aggregate, as a node keeps it for
			// /metrics/cluster: decoded from the dump a snapshot carries.
			d := &aggregate.Dump{Node: "n1", Marks: map[string]string{"stream": "1"}, Meta: map[string]string{"mem_test_total": `{"type":"counter"}`}, Series: map[string]string{}}
			for i, k := range keys {
				d.Series[k] = fmt.Sprint(i)
			}
			before = heapAfterGC()
			peer, err := d.PeerState()
			if err != nil {
				t.Fatal(err)
			}
			peerBytes := float64(heapAfterGC()-before) / n
			runtime.KeepAlive(peer)
			runtime.KeepAlive(d)
			runtime.KeepAlive(keys)
			runtime.KeepAlive(l)
			runtime.KeepAlive(h)
			t.Logf("%s series (%d label bytes): aggregate %.0f B/series, cached gzip exposition %.0f B/series, a peer's decoded view %.0f B/series", tc.name, labelBytes, aggBytes, expoBytes, peerBytes)
			// A peer's series keeps its label slice and the values no other
			// series shares (3 of the wide series' 16), not its key.
			if limit := 0.5*float64(labelBytes) + seriesOverhead; peerBytes > limit {
				t.Errorf("a peer's decoded view costs %.0f B per %s series of %d label bytes, more than 0.5×label bytes + %d = %.0f", peerBytes, tc.name, labelBytes, seriesOverhead, limit)
			}
			// The aggregate holds the label bytes once (the key; labels are
			// views of it), the cached exposition a compressed rendering:
			// together at most twice the label bytes plus a fixed overhead.
			// Each bound has room for the heap's noise, and fails when the
			// labels are held twice or the rendering is kept uncompressed.
			if limit := 1.5*float64(labelBytes) + seriesOverhead; aggBytes > limit {
				t.Errorf("the aggregate costs %.0f B per %s series of %d label bytes, more than 1.5×label bytes + %d = %.0f", aggBytes, tc.name, labelBytes, seriesOverhead, limit)
			}
			if limit := 2*float64(labelBytes) + seriesOverhead; aggBytes+expoBytes > limit {
				t.Errorf("the aggregate and its cached exposition cost %.0f B per %s series of %d label bytes, more than 2×label bytes + %d = %.0f", aggBytes+expoBytes, tc.name, labelBytes, seriesOverhead, limit)
			}
		})
	}
}
