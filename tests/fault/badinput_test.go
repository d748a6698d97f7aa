package fault_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/redisserver"
	"github.com/jetmetrics/jetmetrics/pkg/series"
	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// badCase is one bad input: a batch body (seq is filled in) and the reason
// it must be rejected for. A case with entries is a batch whose first entry
// is valid and applies; the listed entries are rejected. A case without a
// reason is a batch a careless publisher writes that must apply in full:
// its first entry, plus applies.
type badCase struct {
	name    string
	reason  streams.Reason
	body    string // the batch, its seq a %d verb if it has one
	entries string
	// more are the entries rejected for other reasons: each reason has a
	// dead letter of its own.
	more map[streams.Reason]string
	// applies is what a batch without a reason applies beyond its first
	// entry.
	applies []update
	// subject overrides the bad producer's subject.
	subject string
}

const badProducer = "bad-1"

// maxBatchBytes is the test node's largest delta message.
const maxBatchBytes = 2048

// okEntry is the valid entry the partly bad batches carry first.
const okEntry = `{"name":"ok_total","type":"counter","labels":{"k":"a"},"value":1}`

func entries(bad ...string) string {
	return `{"v":1,"node":"n1","producer":"bad-1","seq":%d,"metrics":[` + okEntry + "," + strings.Join(bad, ",") + `]}`
}

// badCases are the rejections of single messages on a node whose limits
// are 4 labels, 16-byte label values, 3 series per metric and 10 in all.
// The test adds the node's cap on series and on message size. Not here:
// invalid UTF-8 in a label value, which JSON cannot carry (encoding/json
// turns it into U+FFFD before the node sees it); a label value that is not
// a string is invalid_label_value.
var badCases = []badCase{
	{name: "truncated JSON", reason: streams.ReasonUndecodable, body: `{"v":1,"node":"n1","producer":"bad-1","seq":%d,"metrics":[`},
	{name: "NaN is not JSON", reason: streams.ReasonUndecodable, body: `{"v":1,"node":"n1","producer":"bad-1","seq":%d,"metrics":[{"name":"x","type":"gauge","value":NaN}]}`},
	{name: "version 2", reason: streams.ReasonVersion, body: `{"v":2,"node":"n1","producer":"bad-1","seq":%d,"metrics":[]}`},
	{name: "other node", reason: streams.ReasonEnvelope, body: `{"v":1,"node":"n2","producer":"bad-1","seq":%d,"metrics":[]}`},
	{name: "other producer than the subject's", reason: streams.ReasonEnvelope, body: `{"v":1,"node":"n1","producer":"someone-else","seq":%d,"metrics":[]}`},
	{name: "seq 0", reason: streams.ReasonEnvelope, body: `{"v":1,"node":"n1","producer":"bad-1","seq":0,"metrics":[]}`},
	{name: "metric name", reason: streams.ReasonMetricName, body: entries(`{"name":"1x","type":"counter","value":1}`), entries: "1"},
	{name: "jetmetrics_ prefix", reason: streams.ReasonMetricName, body: entries(`{"name":"jetmetrics_fake_total","type":"counter","value":1}`), entries: "1"},
	{name: "label name", reason: streams.ReasonLabelName, body: entries(`{"name":"ok_total","type":"counter","labels":{"bad-name":"x"},"value":1}`), entries: "1"},
	{name: "node label", reason: streams.ReasonReservedLabel, body: entries(`{"name":"ok_total","type":"counter","labels":{"node":"x"},"value":1}`), entries: "1"},
	{name: "__ label", reason: streams.ReasonReservedLabel, body: entries(`{"name":"ok_total","type":"counter","labels":{"__x":"x"},"value":1}`), entries: "1"},
	{name: "five labels", reason: streams.ReasonTooManyLabels, body: entries(`{"name":"ok_total","type":"counter","labels":{"a":"1","b":"2","c":"3","d":"4","e":"5"},"value":1}`), entries: "1"},
	{name: "17-byte label value", reason: streams.ReasonLongLabelValue, body: entries(`{"name":"ok_total","type":"counter","labels":{"k":"` + strings.Repeat("v", 17) + `"},"value":1}`), entries: "1"},
	{name: "negative counter", reason: streams.ReasonValue, body: entries(`{"name":"ok_total","type":"counter","labels":{"k":"a"},"value":-1}`), entries: "1"},
	{name: "no value", reason: streams.ReasonValue, body: entries(`{"name":"ok_level","type":"gauge"}`), entries: "1"},
	{name: "unknown type", reason: streams.ReasonValue, body: entries(`{"name":"ok_summary","type":"summary","value":1}`), entries: "1"},
	{name: "histogram counts", reason: streams.ReasonValue, body: entries(`{"name":"ok_hist","type":"histogram","buckets":[1,4,16],"counts":[1],"sum":1}`), entries: "1"},
	{name: "counter as gauge", reason: streams.ReasonTypeConflict, body: entries(`{"name":"ok_total","type":"gauge","labels":{"k":"a"},"value":3}`), entries: "1"},
	{name: "exposed name taken", reason: streams.ReasonTypeConflict, body: entries(`{"name":"coll_total","type":"gauge","value":1}`), entries: "1"},
	{name: "other buckets", reason: streams.ReasonLayoutConflict, body: entries(`{"name":"ok_hist","type":"histogram","buckets":[1,2,3],"counts":[1,0,0,0],"sum":0.5}`), entries: "1"},
	{name: "fourth series of a metric", reason: streams.ReasonCardinality, body: entries(`{"name":"card_total","type":"counter","labels":{"i":"3"},"value":1}`), entries: "1"},

	// What JSON publishers in other languages send: a wrong type or a null
	// costs its entry alone; the envelope's, the message.
	{name: "numeric label value", reason: streams.ReasonLabelValue, body: entries(`{"name":"ok_total","type":"counter","labels":{"k":200},"value":1}`), entries: "1"},
	{name: "object label value", reason: streams.ReasonLabelValue, body: entries(`{"name":"ok_total","type":"counter","labels":{"k":{"v":"a"}},"value":1}`), entries: "1"},
	{name: "null label value", reason: streams.ReasonLabelValue, body: entries(`{"name":"ok_total","type":"counter","labels":{"k":null},"value":1}`), entries: "1"},
	{name: "labels an array", reason: streams.ReasonEntry, body: entries(`{"name":"ok_total","type":"counter","labels":[],"value":1}`), entries: "1"},
	{name: "entry a number", reason: streams.ReasonEntry, body: entries(`200`), entries: "1"},
	{name: "help a number", reason: streams.ReasonEntry, body: entries(`{"name":"ok_total","type":"counter","help":1,"labels":{"k":"a"},"value":1}`), entries: "1"},
	{name: "value a string", reason: streams.ReasonValue, body: entries(`{"name":"ok_total","type":"counter","labels":{"k":"a"},"value":"5"}`), entries: "1"},
	{name: "value null (NaN in JavaScript)", reason: streams.ReasonValue, body: entries(`{"name":"ok_level","type":"gauge","value":null}`), entries: "1"},
	{name: "counts with a float", reason: streams.ReasonValue, body: entries(`{"name":"ok_hist","type":"histogram","buckets":[1,4,16],"counts":[1.0,0,0,0],"sum":1}`), entries: "1"},
	{name: "null count", reason: streams.ReasonValue, body: entries(`{"name":"ok_hist","type":"histogram","buckets":[1,4,16],"counts":[null,0,0,0],"sum":1}`), entries: "1"},
	{name: "null sum", reason: streams.ReasonValue, body: entries(`{"name":"ok_hist","type":"histogram","buckets":[1,4,16],"counts":[1,0,0,0],"sum":null}`), entries: "1"},
	{name: "buckets a string", reason: streams.ReasonValue, body: entries(`{"name":"ok_hist","type":"histogram","buckets":"x","counts":[1,0,0,0],"sum":1}`), entries: "1"},
	{name: "value past float64", reason: streams.ReasonValue, body: entries(`{"name":"ok_level","type":"gauge","value":1e999}`), entries: "1"},
	{name: "counts adding up past 2^64-1", reason: streams.ReasonOverflow, body: entries(`{"name":"ok_hist","type":"histogram","buckets":[1,4,16],"counts":[18446744073709551615,1,0,0],"sum":1}`), entries: "1"},
	{name: "name in another case", reason: streams.ReasonMetricName, body: entries(`{"Name":"ok_level","type":"gauge","value":1}`), entries: "1"},
	{name: "go_ prefix", reason: streams.ReasonMetricName, body: entries(`{"name":"go_gc_duration_seconds_count","type":"counter","value":1}`), entries: "1"},
	{name: "process_ prefix", reason: streams.ReasonMetricName, body: entries(`{"name":"process_cpu_seconds_total","type":"counter","value":1}`), entries: "1"},
	{name: "promhttp_ prefix", reason: streams.ReasonMetricName, body: entries(`{"name":"promhttp_metric_handler_requests_total","type":"counter","value":1}`), entries: "1"},
	{name: "several reasons in one message", reason: streams.ReasonMetricName,
		body: entries(`{"name":"1x","type":"counter","value":1}`, `{"name":"ok_total","type":"counter","labels":{"k":"a"},"value":"1"}`,
			`{"name":"go_x","type":"gauge","value":1}`, `{"name":"ok_total","type":"counter","labels":{"k":7},"value":1}`, `{"name":"ok_level","type":"gauge","value":null}`),
		entries: "1,3", more: map[streams.Reason]string{streams.ReasonValue: "2,5", streams.ReasonLabelValue: "4"}},
	{name: "version a string", reason: streams.ReasonVersion, body: `{"v":"1","node":"n1","producer":"bad-1","seq":%d,"metrics":[]}`},
	{name: "version a float", reason: streams.ReasonVersion, body: `{"v":1.0,"node":"n1","producer":"bad-1","seq":%d,"metrics":[]}`},
	{name: "node a number", reason: streams.ReasonEnvelope, body: `{"v":1,"node":1,"producer":"bad-1","seq":%d,"metrics":[]}`},
	{name: "seq a string", reason: streams.ReasonEnvelope, body: `{"v":1,"node":"n1","producer":"bad-1","seq":"%d","metrics":[]}`},
	{name: "no metrics", reason: streams.ReasonEnvelope, body: `{"v":1,"node":"n1","producer":"bad-1","seq":%d}`},
	{name: "metrics null", reason: streams.ReasonEnvelope, body: `{"v":1,"node":"n1","producer":"bad-1","seq":%d,"metrics":null}`},

	// Careless but whole: these apply in full.
	{name: "time a float", body: `{"v":1,"node":"n1","producer":"bad-1","seq":%d,"time":1763702400123.5,"metrics":[` + okEntry + `]}`},
	{name: "time an ISO string", body: `{"v":1,"node":"n1","producer":"bad-1","seq":%d,"time":"2025-11-21T05:20:00Z","metrics":[` + okEntry + `]}`},
	{name: "a case variant never overrides", body: entries(`{"name":"ok_total","type":"counter","labels":{"k":"a"},"value":1,"Value":1000}`),
		applies: []update{counter("ok_total", 1, "k", "a")}},
	{name: "an empty label value is no label", body: entries(`{"name":"ok_total","type":"counter","labels":{"k":"a","env":""},"value":1}`),
		applies: []update{counter("ok_total", 1, "k", "a")}},
}

// TestBadInput (scenario 10): every class of bad input the wire can carry,
// among valid traffic. Each is rejected exactly once: one dead letter with
// its reason, original subject and stream sequence, one count in
// jetmetrics_rejected_total{reason}. The node never stalls, /metrics
// always parses, and the valid traffic of the same run is exact.
func TestBadInput(t *testing.T) {
	n := startNodeOn(t, harness.RedisWith(t, redisserver.Config{}), node.Config{
		Limits:             series.Limits{MaxLabels: 4, MaxLabelValueBytes: 16},
		MaxSeries:          10,
		MaxSeriesPerMetric: 3,
		MaxBatchBytes:      maxBatchBytes,
	})
	sc := startScraper(t, n.rn.URL+"/metrics", watchNames("ok_total", "ok_hist", "card_total"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	led := newLedger()
	nc := n.dial()
	good := newPublisher(t, led, nc, nodeName, "good-1")
	bad := newPublisher(t, led, nc, nodeName, badProducer)
	goodBatch := func(i int) {
		good.ack(ctx, good.cut(
			counter("ok_total", 1, "k", "a"), counter("ok_total", 2, "k", "b"),
			gauge("ok_level", float64(i)),
			histogram("ok_hist", latencyBuckets, []uint64{1, 0, 0, 1}, 32.5),
		))
	}
	// Eight series: ok_total×2, ok_level, ok_hist, card_total×3, coll.
	goodBatch(0)
	good.ack(ctx, good.cut(
		counter("card_total", 1, "i", "0"), counter("card_total", 1, "i", "1"), counter("card_total", 1, "i", "2"),
		counter("coll", 1),
	))

	var letters []expectedLetter
	for i, c := range badCases {
		bad.seq++
		subject := bad.subject
		if c.subject != "" {
			subject = c.subject
		}
		body := c.body
		if strings.Contains(body, "%d") {
			body = fmt.Sprintf(body, bad.seq)
		}
		a := bad.raw(ctx, subject, []byte(body), "")
		if c.reason != "" {
			letters = append(letters, expectedLetter{seq: a.Sequence, subject: subject, reason: c.reason, entries: c.entries})
		}
		for r, e := range c.more {
			letters = append(letters, expectedLetter{seq: a.Sequence, subject: subject, reason: r, entries: e})
		}
		if c.entries != "" || c.reason == "" {
			led.note(batchID{badProducer, bad.seq}, acked, true, append([]update{counter("ok_total", 1, "k", "a")}, c.applies...))
		}
		goodBatch(i + 1)
	}

	// The node's cap: two new series fit, the next two do not.
	a := bad.ack(ctx, bad.cut(counter("cap_a", 1), counter("cap_b", 1), rejected(counter("cap_c", 1)), rejected(counter("cap_d", 1))))
	letters = append(letters, expectedLetter{seq: a.Sequence, subject: bad.subject, reason: streams.ReasonCardinality, entries: "2,3"})
	// Existing series keep updating at the cap.
	good.ack(ctx, good.cut(counter("card_total", 5, "i", "0"), counter("cap_a", 1)))
	goodBatch(len(badCases) + 1)

	// Larger than the node takes: rejected whole.
	bad.seq++
	pad := strings.Repeat("x", maxBatchBytes)
	a = bad.raw(ctx, "", []byte(fmt.Sprintf(`{"v":1,"node":"n1","producer":"bad-1","seq":%d,"metrics":[],"pad":%q}`, bad.seq, pad)), "")
	letters = append(letters, expectedLetter{seq: a.Sequence, subject: bad.subject, reason: streams.ReasonOversize})
	goodBatch(len(badCases) + 2)

	// As large as the server takes: its dead letter cannot carry it as well
	// as the headers, so it goes without the body, and the node carries on
	// (a copy that fails forever would stall it).
	bad.seq++
	full := fmt.Appendf(nil, `{"v":1,"node":"n1","producer":"bad-1","seq":%d,"metrics":[],"pad":"`, bad.seq)
	full = append(full, strings.Repeat("x", int(nc.MaxPayload())-64-len(full))...)
	full = append(full, `"}`...)
	a = bad.raw(ctx, "", full, "")
	letters = append(letters, expectedLetter{seq: a.Sequence, subject: bad.subject, reason: streams.ReasonOversize, omitted: strconv.Itoa(len(full))})
	goodBatch(len(badCases) + 3)

	// Larger than the server takes: refused at publish, never in the stream,
	// so never dead-lettered. The SDK splits its batches below the limit.
	huge := nats.NewMsg(bad.subject)
	huge.Data = []byte(fmt.Sprintf(`{"v":1,"node":"n1","producer":"bad-1","seq":%d,"metrics":[],"pad":"%s"}`, bad.seq+1, strings.Repeat("x", int(nc.MaxPayload()))))
	if _, err := bad.js.PublishMsg(ctx, huge); !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("publishing %d bytes: %v, want %v", len(huge.Data), err, nats.ErrMaxPayload)
	}

	n.checkExposed(led)
	fams, err := harness.Scrape(n.rn.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	got := harness.Samples(fams)
	want := map[streams.Reason]float64{}
	for _, l := range letters {
		want[l.reason] += float64(max(1, strings.Count(l.entries, ",")+1))
	}
	for _, r := range streams.Reasons {
		k := fmt.Sprintf("jetmetrics_rejected_total{reason=%q}", r)
		if got[k] != want[r] {
			t.Errorf("%s = %v, want %v", k, got[k], want[r])
		}
	}
	if err := checkDeadLetters(ctx, n.js, letters); err != nil {
		t.Errorf("dead letters:\n%v", err)
	}
	sc.finish(t, 1)
}
