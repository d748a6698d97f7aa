package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// natsPub matches a `nats pub <subject> --jetstream -H 'Nats-Msg-Id:<id>'
// '<payload>'` example, over continued lines.
var natsPub = regexp.MustCompile(`pub\s+(\S+)[\s\\]+--jetstream[\s\\]+-H\s+'Nats-Msg-Id:([^']+)'[\s\\]+'([^']+)'`)

// The `nats pub` examples of the README and the wire format, run in the
// order a reader meets them against one node, each show up: none reuses
// another's producer id and seq, so none is dropped as a duplicate.
func TestDocsExamplesEachApply(t *testing.T) {
	type example struct {
		file, subject, id, raw string
		payload                struct {
			Node    string `json:"node"`
			Metrics []struct {
				Name string `json:"name"`
			} `json:"metrics"`
		}
	}
	var examples []example
	for _, file := range []string{"../../README.md", "../../docs/wire-format.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range natsPub.FindAllStringSubmatch(string(b), -1) {
			e := example{file: file, subject: m[1], id: m[2], raw: m[3]}
			if err := json.Unmarshal([]byte(m[3]), &e.payload); err != nil {
				t.Fatalf("%s: example %s: %v", file, e.id, err)
			}
			examples = append(examples, e)
		}
	}
	if len(examples) < 2 {
		t.Fatalf("found %d nats pub examples, want the README's and the wire format's", len(examples))
	}
	ids := map[string]string{}
	for _, e := range examples {
		if prev, ok := ids[e.id]; ok {
			t.Errorf("%s reuses %s's Nats-Msg-Id %s: run second, it is dropped", e.file, prev, e.id)
		}
		ids[e.id] = e.file
		if e.payload.Node != examples[0].payload.Node {
			t.Errorf("%s publishes for node %q, the README for %q", e.file, e.payload.Node, examples[0].payload.Node)
		}
	}

	rn := harness.StartNode(t, node.Config{Name: examples[0].payload.Node})
	js, err := jetstream.New(rn.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range examples {
		msg := nats.NewMsg(e.subject)
		msg.Header.Set(jetstream.MsgIDHeader, e.id)
		msg.Data = []byte(e.raw)
		harness.Eventually(t, converge, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			ack, err := js.PublishMsg(ctx, msg)
			if err == nil && ack.Duplicate {
				return fmt.Errorf("%s: %s acknowledged as a duplicate", e.file, e.id)
			}
			return err
		})
	}
	harness.Eventually(t, converge, func() error {
		fams, err := harness.Scrape(rn.URL + "/metrics")
		if err != nil {
			return err
		}
		for _, e := range examples {
			for _, m := range e.payload.Metrics {
				if _, ok := fams[m.Name]; !ok {
					return fmt.Errorf("%s: %s not on /metrics", e.file, m.Name)
				}
			}
		}
		return nil
	})
}
