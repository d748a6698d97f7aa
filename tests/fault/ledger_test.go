package fault_test

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
)

// outcome is what a producer knows about one batch it cut.
type outcome int

const (
	// acked: JetStream acknowledged the publish, perhaps after retries.
	// The guarantee: applied exactly once.
	acked outcome = iota
	// timedOut: no acknowledgement ever came. The guarantee: applied at
	// most once. The test knows whether the broker stored it (stored), so
	// it can also check the exact value.
	timedOut
	// unsent: cut but never published, the memory of a killed producer;
	// outside the guarantee, and never applied.
	unsent
)

func (o outcome) String() string {
	return [...]string{"acked", "timed out", "unsent"}[o]
}

// update is one series update of a batch, as the test meant it.
type update struct {
	name    string
	kind    streams.Kind
	labels  []series.Label // sorted by name
	value   float64        // counter delta or gauge value
	buckets []float64      // histogram upper bounds, without +Inf
	counts  []uint64       // per bucket, not cumulative, plus +Inf
	sum     float64
	// bad marks an update the aggregator must reject: it is published but
	// never counted.
	bad bool
}

// counter is a counter delta; labels are name, value pairs.
func counter(name string, delta float64, labels ...string) update {
	return update{name: name, kind: streams.KindCounter, labels: pairs(labels), value: delta}
}

// gauge is a gauge set.
func gauge(name string, value float64, labels ...string) update {
	return update{name: name, kind: streams.KindGauge, labels: pairs(labels), value: value}
}

// rejected marks u as one the aggregator must reject.
func rejected(u update) update {
	u.bad = true
	return u
}

// histogram is a histogram update: counts per bucket (not cumulative) and
// the sum of the observations.
func histogram(name string, buckets []float64, counts []uint64, sum float64, labels ...string) update {
	return update{name: name, kind: streams.KindHistogram, labels: pairs(labels), buckets: buckets, counts: counts, sum: sum}
}

func pairs(kv []string) []series.Label {
	if len(kv)%2 != 0 {
		panic("labels must be name, value pairs")
	}
	var ls []series.Label
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, series.Label{Name: kv[i], Value: kv[i+1]})
	}
	series.SortLabels(ls)
	return ls
}

// sampleKey names one exposed sample the way harness.Samples does:
// name{a="x",b="y"}, with extra label pairs (le) last.
func sampleKey(name string, labels []series.Label, extra ...string) string {
	var b strings.Builder
	b.WriteString(name)
	n := 0
	write := func(k, v string) {
		if n == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, v)
		n++
	}
	for _, l := range labels {
		write(l.Name, l.Value)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		write(extra[i], extra[i+1])
	}
	if n > 0 {
		b.WriteByte('}')
	}
	return b.String()
}

// samples are the exposed samples an update changes: for a counter or
// gauge its value, for a histogram each cumulative bucket, the count and
// the sum.
func (u update) samples(fn func(key string, v float64)) {
	switch u.kind {
	case streams.KindHistogram:
		var cum uint64
		for i, ub := range u.buckets {
			cum += u.counts[i]
			fn(sampleKey(u.name+"_bucket", u.labels, "le", strconv.FormatFloat(ub, 'g', -1, 64)), float64(cum))
		}
		cum += u.counts[len(u.buckets)]
		fn(sampleKey(u.name+"_bucket", u.labels, "le", "+Inf"), float64(cum))
		fn(sampleKey(u.name+"_count", u.labels), float64(cum))
		fn(sampleKey(u.name+"_sum", u.labels), u.sum)
	default:
		fn(sampleKey(u.name, u.labels), u.value)
	}
}

// batchID names a batch: producer id and batch sequence.
type batchID struct {
	producer string
	seq      uint64
}

func (b batchID) String() string { return b.producer + ":" + strconv.FormatUint(b.seq, 10) }

// record is the ledger's line for one batch.
type record struct {
	batchID
	outcome outcome
	// stored reports, for a timed-out batch, whether the broker stored it:
	// an acknowledgement lost on the way back, rather than a publish lost on
	// the way there.
	stored  bool
	updates []update
	// order is the batch's place in publish order across producers.
	order int
}

// landed reports whether the batch is in the stream, and so must be
// applied exactly once.
func (r *record) landed() bool {
	return r.outcome == acked || (r.outcome == timedOut && r.stored)
}

// ledger records, for every batch of every producer, whether its publish
// was acknowledged, timed out or never sent, and what it carried. From it
// follow the values the aggregate must show once faults have healed.
type ledger struct {
	mu      sync.Mutex
	records map[batchID]*record
	next    int
}

func newLedger() *ledger { return &ledger{records: map[batchID]*record{}} }

// note records what became of a batch. A batch noted again (an ack lost,
// then a retry acknowledged) keeps its first place in publish order.
func (l *ledger) note(id batchID, o outcome, stored bool, updates []update) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.records[id]
	if r == nil {
		r = &record{batchID: id, order: l.next}
		l.next++
		l.records[id] = r
	}
	r.outcome, r.stored, r.updates = o, stored, updates
}

// count returns how many batches have outcome o.
func (l *ledger) count(o outcome) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.outcome == o {
			n++
		}
	}
	return n
}

// expectation is what the aggregate must show for the ledger's series.
type expectation struct {
	// exact is each sample's value given what the test knows landed.
	exact map[string]float64
	// lo and hi bound each counter and histogram sample as the guarantee
	// states it: the acknowledged deltas, plus at most the timed-out ones.
	lo, hi map[string]float64
	// kinds maps each sample key to its update kind.
	kinds map[string]streams.Kind
	// names are the metric names the ledger has seen.
	names map[string]bool
}

func (l *ledger) expect() expectation {
	l.mu.Lock()
	recs := make([]*record, 0, len(l.records))
	for _, r := range l.records {
		recs = append(recs, r)
	}
	l.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].order < recs[j].order })
	e := expectation{exact: map[string]float64{}, lo: map[string]float64{}, hi: map[string]float64{},
		kinds: map[string]streams.Kind{}, names: map[string]bool{}}
	for _, r := range recs {
		for _, u := range r.updates {
			if u.bad {
				continue
			}
			e.names[u.name] = true
			u.samples(func(key string, v float64) {
				e.kinds[key] = u.kind
				if u.kind == streams.KindGauge {
					if r.landed() {
						e.exact[key] = v
					}
					return
				}
				if r.outcome == unsent {
					return
				}
				if r.outcome == acked {
					e.lo[key] += v
				}
				e.hi[key] += v
				if r.landed() {
					e.exact[key] += v
				} else if _, ok := e.exact[key]; !ok {
					e.exact[key] = 0 // announced by nothing that landed: absent or zero
				}
			})
		}
	}
	return e
}

// check compares exposed samples with the ledger: first the guarantee
// (acknowledged deltas exactly once, timed-out ones at most once), then the
// exact values. Only samples of metrics the ledger knows are compared, and
// any such sample it did not expect is an error.
func (l *ledger) check(got map[string]float64) error {
	e := l.expect()
	var errs []error
	add := func(err error) {
		if len(errs) < 12 {
			errs = append(errs, err)
		}
	}
	keys := make([]string, 0, len(e.exact))
	for k := range e.exact {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, ok := got[k]
		want := e.exact[k]
		if e.kinds[k] != streams.KindGauge {
			if lo, hi := e.lo[k], e.hi[k]; g < lo || g > hi {
				add(fmt.Errorf("guarantee broken: %s = %v, acknowledged deltas sum to %v, with the timed-out ones %v", k, g, lo, hi))
				continue
			}
			if !ok && want == 0 {
				continue
			}
		}
		if !ok {
			add(fmt.Errorf("%s missing, want %v", k, want))
			continue
		}
		if g != want {
			add(fmt.Errorf("%s = %v, want exactly %v (%+v)", k, g, want, g-want))
		}
	}
	extra := make([]string, 0)
	for k := range got {
		if _, ok := e.exact[k]; !ok && e.names[metricName(k)] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		add(fmt.Errorf("%s = %v was never published", k, got[k]))
	}
	return errors.Join(errs...)
}

// metricName is the metric a sample key belongs to.
func metricName(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		key = key[:i]
	}
	for _, s := range []string{"_bucket", "_count", "_sum"} {
		if n, ok := strings.CutSuffix(key, s); ok {
			return n
		}
	}
	return key
}
