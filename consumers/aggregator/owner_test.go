package aggregator

import (
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/streams"
)

// The subject's owner token is what a producer credential is allowed to
// publish under, so a batch is applied only if its producer id is the
// subject's last token and, in the owned form, starts with the owner: a
// credential owning "billing" cannot write the marks of "payments-…".
func TestSubjectOwner(t *testing.T) {
	a := &Aggregator{cfg: Config{Node: "n1"}.withDefaults()}
	batch := func(producer string) []byte {
		return []byte(`{"v":1,"node":"n1","producer":"` + producer + `","seq":1,"metrics":[]}`)
	}
	for _, tc := range []struct {
		name, subject, producer string
		reject                  string // "" when applied, else part of the error
	}{
		{"owned", "jetmetrics.delta.n1.billing.billing-abcdefgh", "billing-abcdefgh", ""},
		{"legacy", "jetmetrics.delta.n1.billing-abcdefgh", "billing-abcdefgh", ""},
		{"another owner's id", "jetmetrics.delta.n1.billing.payments-abcdefgh", "payments-abcdefgh", `owner token "billing"`},
		{"owner without the dash", "jetmetrics.delta.n1.bill.billing-abcdefgh", "billing-abcdefgh", `owner token "bill"`},
		{"body names another producer", "jetmetrics.delta.n1.billing.billing-abcdefgh", "billing-zzzzzzzz", "batch names producer"},
		{"legacy, body names another producer", "jetmetrics.delta.n1.p1", "p2", "batch names producer"},
		{"a token too many", "jetmetrics.delta.n1.billing.billing-abcdefgh.x", "x", "4 tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := a.decode(item{seq: 1, subject: tc.subject, data: batch(tc.producer)})
			switch {
			case tc.reject == "" && in.reject != nil:
				t.Fatalf("rejected: %v", in.reject)
			case tc.reject == "" && in.dec == nil:
				t.Fatal("not decoded")
			case tc.reject != "" && in.reject == nil:
				t.Fatal("applied, want rejected")
			case tc.reject != "" && (in.reject.Reason != streams.ReasonEnvelope || !strings.Contains(in.reject.Err.Error(), tc.reject)):
				t.Fatalf("rejected %s: %v; want %s naming %q", in.reject.Reason, in.reject.Err, streams.ReasonEnvelope, tc.reject)
			}
		})
	}
}
