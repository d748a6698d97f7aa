package producers_test

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/streams"
)

// aggregate is what an aggregator would make of the stored messages,
// applying each (producer, seq) once, in stream order.
type aggregate struct {
	counters map[string]float64
	gauges   map[string]float64
	hcounts  map[string][]uint64
	hsums    map[string]float64
	help     map[string]string
	// seqs are the distinct batch sequences per producer.
	seqs map[string][]uint64
	// duplicates counts messages stored twice under one (producer, seq).
	duplicates int
}

func seriesKey(m streams.Metric) string {
	names := make([]string, 0, len(m.Labels))
	for n := range m.Labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(m.Name)
	for _, n := range names {
		fmt.Fprintf(&b, ",%s=%s", n, m.Labels[n])
	}
	return b.String()
}

func aggregateAll(t testing.TB, msgs []stored) aggregate {
	t.Helper()
	a := aggregate{
		counters: map[string]float64{}, gauges: map[string]float64{},
		hcounts: map[string][]uint64{}, hsums: map[string]float64{},
		help: map[string]string{}, seqs: map[string][]uint64{},
	}
	seen := map[string]streams.Batch{}
	for _, s := range msgs {
		b := s.batch
		if b.Version != streams.WireVersion {
			t.Fatalf("message %d: version %d", s.streamSeq, b.Version)
		}
		wantID := fmt.Sprintf("%s:%d", b.Producer, b.Seq)
		if s.msgID != wantID {
			t.Fatalf("message %d: Nats-Msg-Id %q, want %q", s.streamSeq, s.msgID, wantID)
		}
		if want := (streams.Subjects{}).OwnedDelta(b.Node, strings.SplitN(b.Producer, "-", 2)[0], b.Producer); s.subject != want {
			t.Fatalf("message %d: subject %q, want %q", s.streamSeq, s.subject, want)
		}
		if prev, ok := seen[wantID]; ok {
			if !reflect.DeepEqual(prev, b) {
				t.Fatalf("message %d: %s stored twice with different content", s.streamSeq, wantID)
			}
			a.duplicates++
			continue
		}
		seen[wantID] = b
		a.seqs[b.Producer] = append(a.seqs[b.Producer], b.Seq)
		for _, m := range b.Metrics {
			k := seriesKey(m)
			if m.Help != "" {
				if _, ok := a.help[m.Name]; !ok {
					a.help[m.Name] = m.Help
				}
			}
			switch m.Type {
			case streams.KindCounter:
				a.counters[k] += m.Value
			case streams.KindGauge:
				a.gauges[k] = m.Value
			case streams.KindHistogram:
				if len(m.Counts) != len(m.Buckets)+1 {
					t.Fatalf("message %d: %s has %d buckets and %d counts", s.streamSeq, k, len(m.Buckets), len(m.Counts))
				}
				c := a.hcounts[k]
				if c == nil {
					c = make([]uint64, len(m.Counts))
				}
				for i, n := range m.Counts {
					c[i] += n
				}
				a.hcounts[k] = c
				a.hsums[k] += m.Sum
			default:
				t.Fatalf("message %d: unknown type %q", s.streamSeq, m.Type)
			}
		}
	}
	return a
}

// checkSeqs fails unless the producer's distinct sequences are 1..n in
// stream order, and returns n.
func (a aggregate) checkSeqs(t testing.TB, producer string) int {
	t.Helper()
	seqs := a.seqs[producer]
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("producer %s: sequences %v are not 1..%d in order", producer, seqs, len(seqs))
		}
	}
	return len(seqs)
}
