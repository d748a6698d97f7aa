package exposition_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/series"
)

// TestPeerStateRendersAsState: a peer's state, kept without keys and with
// its label strings interned (aggregate.Dump.PeerState), renders byte for
// byte as the state with keys, in every format, with and without the node
// label, for plain and histogram series, shared and escaped label values.
func TestPeerStateRendersAsState(t *testing.T) {
	d := &aggregate.Dump{
		Node:  "n2",
		Marks: map[string]string{"stream": "9"},
		Meta: map[string]string{
			"req_total": `{"type":"counter","help":"requests"}`,
			"temp":      `{"type":"gauge"}`,
			"lat":       `{"type":"histogram","buckets":[0.1,1]}`,
		},
		Series: map[string]string{"temp": "-3.25"},
	}
	for i := range 40 {
		labels := []series.Label{
			{Name: "code", Value: fmt.Sprint(200 + i%3)},
			{Name: "path", Value: fmt.Sprintf("/a\"b\\c\n%d", i)},
			{Name: "zone", Value: "eu-west-1"},
		}
		d.Series[series.Key("req_total", labels)] = fmt.Sprint(i)
		hk := series.Key("lat", labels[:1+i%3])
		d.Series[aggregate.BucketField(hk, i%3)] = fmt.Sprint(i + 1)
		d.Series[aggregate.SumField(hk)] = fmt.Sprint(float64(i) / 4)
	}
	own, err := d.State()
	if err != nil {
		t.Fatal(err)
	}
	peer, err := d.PeerState()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range peer.Families {
		for _, s := range f.Series {
			if s.Key != "" {
				t.Fatalf("peer state series %v has key %q", s.Labels, s.Key)
			}
		}
	}
	for _, nodeLabel := range []bool{false, true} {
		for _, accept := range []string{"text/plain", "application/openmetrics-text", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"} {
			render := func(st *aggregate.State) string {
				// A handler each: one caches renderings by node and version,
				// which the two states share.
				h, err := exposition.NewHandler(exposition.HandlerConfig{NodeLabel: nodeLabel})
				if err != nil {
					t.Fatal(err)
				}
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/metrics", nil)
				req.Header.Set("Accept", accept)
				h.Serve(rec, req, []*aggregate.State{st})
				b, _ := io.ReadAll(rec.Result().Body)
				return string(b)
			}
			want, got := render(own), render(peer)
			if got != want || len(want) < 1000 {
				t.Errorf("node label %v, %s: peer state renders %d bytes, state %d:\n%s\nwant\n%s", nodeLabel, accept, len(got), len(want), got, want)
			}
		}
	}
}
