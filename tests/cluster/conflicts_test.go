package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmetrics/jetmetrics/pkg/exposition"
	"github.com/jetmetrics/jetmetrics/pkg/exposition/expositiontest"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// get fetches url with accept and returns the body and content type.
func get(url, accept string) ([]byte, string, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b, resp.Header.Get("Content-Type"), err
}

// TestClusterConflictsSameEverywhere: nodes that disagree on a metric's
// type, or whose names meet after suffixes (one node's histogram h beside
// another's gauge h_count), make a cluster view that every node serves the
// same, byte for byte, in every format; that parses and lints clean; and
// that shows each conflict in jetmetrics_exposition_conflicts and in the
// JSON's conflicts.
func TestClusterConflictsSameEverywhere(t *testing.T) {
	c := startCluster(t)
	nc := c.connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	publish := func(node string, entries ...string) {
		producer := "conflicts-" + node
		m := nats.NewMsg("jetmetrics.delta." + node + "." + producer)
		m.Header.Set("Nats-Msg-Id", producer+":1")
		m.Data = fmt.Appendf(nil, `{"v":1,"node":%q,"producer":%q,"seq":1,"metrics":[%s]}`, node, producer, strings.Join(entries, ","))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	scalar := func(name, kind string) string {
		return fmt.Sprintf(`{"name":%q,"type":%q,"help":"A %s.","value":1}`, name, kind, kind)
	}
	const histogram = `{"name":"cc_h","type":"histogram","help":"A histogram.","buckets":[1],"counts":[1,0],"sum":0.5}`
	publish("n1", histogram, scalar("cc_m_total", "gauge"), scalar("cc_x", "gauge"), scalar("cc_ok_total", "counter"))
	publish("n2", scalar("cc_h_count", "gauge"), scalar("cc_m_total", "counter"), scalar("cc_ok_total", "counter"))
	publish("n3", scalar("cc_m_total", "counter"), scalar("cc_x_total", "counter"), scalar("cc_ok_total", "counter"))
	wantConflicts := map[string]bool{"cc_h_count/n2": true, "cc_m_total/n1": true, "cc_x_total/n3": true}

	// Every node's view holds every node at the version it serves itself.
	harness.Eventually(t, converge, func() error {
		marks := map[string]uint64{}
		for _, nd := range c.nodes {
			b, _, err := get(nd.URL+"/metrics/cluster?format=json", "")
			if err != nil {
				return err
			}
			var view struct {
				Nodes []exposition.NodeInfo
			}
			if err := json.Unmarshal(b, &view); err != nil {
				return err
			}
			if len(view.Nodes) != len(c.nodes) {
				return fmt.Errorf("%s sees %d nodes", nd.Name, len(view.Nodes))
			}
			for _, in := range view.Nodes {
				if in.Version == 0 {
					return fmt.Errorf("%s sees %s at version 0", nd.Name, in.Node)
				}
				if m, ok := marks[in.Node]; ok && m != in.Version {
					return fmt.Errorf("%s at version %d on one node, %d on another", in.Node, m, in.Version)
				}
				marks[in.Node] = in.Version
			}
		}
		return nil
	})

	formats := []string{"text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0",
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "json"}
	for _, accept := range formats {
		var first []byte
		for _, nd := range c.nodes {
			url := nd.URL + "/metrics/cluster"
			if accept == "json" {
				url += "?format=json"
			}
			b, ct, err := get(url, accept)
			if err != nil {
				t.Fatal(err)
			}
			if accept == "json" {
				// Node infos carry ages; the rest must agree.
				var view struct {
					Metrics, Conflicts json.RawMessage
				}
				if err := json.Unmarshal(b, &view); err != nil {
					t.Fatal(err)
				}
				got := map[string]bool{}
				var conflicts []struct{ Node, Metric string }
				if err := json.Unmarshal(view.Conflicts, &conflicts); err != nil {
					t.Fatal(err)
				}
				for _, c := range conflicts {
					got[c.Metric+"/"+c.Node] = true
				}
				if fmt.Sprint(got) != fmt.Sprint(wantConflicts) {
					t.Errorf("%s JSON conflicts %v, want %v", nd.Name, got, wantConflicts)
				}
				b = append(view.Metrics, view.Conflicts...)
			} else {
				fams, err := expositiontest.Check(b, ct)
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", nd.Name, accept, err, b)
				}
				if fams != nil {
					got := map[string]bool{}
					for _, m := range fams[exposition.ConflictsName].GetMetric() {
						lbl := map[string]string{}
						for _, l := range m.GetLabel() {
							lbl[l.GetName()] = l.GetValue()
						}
						got[lbl["metric"]+"/"+lbl["node"]] = true
					}
					if fmt.Sprint(got) != fmt.Sprint(wantConflicts) {
						t.Errorf("%s %s: conflicts %v, want %v", nd.Name, accept, got, wantConflicts)
					}
					problems, err := expositiontest.Lint(fams, func(name string) bool { return strings.HasPrefix(name, "cc_") })
					if err != nil {
						t.Fatal(err)
					}
					for _, p := range problems {
						t.Errorf("%s %s: promlint: %s: %s", nd.Name, accept, p.Metric, p.Text)
					}
				}
			}
			if first == nil {
				first = b
			} else if !bytes.Equal(b, first) {
				t.Errorf("%s serves another %s cluster view than %s:\n%s", nd.Name, accept, c.nodes[0].Name, lineDiff(b, first))
			}
		}
	}

	// Each conflict is logged when it appears, not on every scrape: the
	// last lines of every node's output hold no conflict twice.
	for range 5 {
		for _, nd := range c.nodes {
			if _, _, err := get(nd.URL+"/metrics/cluster", ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, nd := range c.nodes {
		seen := map[string]bool{}
		for _, line := range strings.Split(nd.Output(), "\n") {
			if !strings.Contains(line, "left out of the view") {
				continue
			}
			var l struct{ Message string }
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatal(err)
			}
			if seen[l.Message] {
				t.Errorf("%s logged a conflict twice: %s", nd.Name, l.Message)
			}
			seen[l.Message] = true
		}
	}
}

// lineDiff lists the lines of a missing from b and of b missing from a.
func lineDiff(a, b []byte) string {
	in := func(x []byte) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(string(x), "\n") {
			m[l] = true
		}
		return m
	}
	ina, inb := in(a), in(b)
	var out []string
	for l := range ina {
		if !inb[l] {
			out = append(out, "+ "+l)
		}
	}
	for l := range inb {
		if !ina[l] {
			out = append(out, "- "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestUnreadablePeerRefused: a snapshot that cannot be decoded (here
// garbage under valid headers) is refused by the broadcast consumer before
// it is stored: counted as invalid, logged once (one message, one line),
// never in the cluster view, and the view still answers, valid.
func TestUnreadablePeerRefused(t *testing.T) {
	nd := harness.StartProcessNode(t, harness.ProcessNodeConfig{Name: "n1"})
	nd.WaitReady(formTimeout)
	nc, err := nats.Connect(nd.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := nats.NewMsg("jetmetrics.snap.ghost")
	m.Header.Set("Jetmetrics-Node", "ghost")
	m.Header.Set("Jetmetrics-Version", "7")
	m.Header.Set("Jetmetrics-Generated", fmt.Sprint(time.Now().UnixMilli()))
	m.Header.Set("Jetmetrics-TTL", "60000")
	m.Data = []byte("not a snapshot")
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	refused := func() int {
		n := 0
		for _, l := range strings.Split(nd.Output(), "\n") {
			if strings.Contains(l, "snapshot skipped") && strings.Contains(l, "jetmetrics.snap.ghost") {
				n++
			}
		}
		return n
	}
	harness.Eventually(t, converge, func() error {
		if refused() == 0 {
			return fmt.Errorf("not refused yet")
		}
		return nil
	})
	for range 10 {
		b, ct, err := get(nd.URL+"/metrics/cluster", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := expositiontest.Check(b, ct); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `node="ghost"`) {
			t.Fatalf("the refused snapshot's node is in the view:\n%s", b)
		}
	}
	if n := refused(); n != 1 {
		t.Errorf("refusal logged %d times over ten scrapes, want once:\n%s", n, nd.Output())
	}
	fams, err := harness.Scrape(nd.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if got := harness.Samples(fams)[`jetmetrics_broadcast_snapshots_total{result="invalid"}`]; got != 1 {
		t.Errorf("jetmetrics_broadcast_snapshots_total{result=\"invalid\"} = %v, want 1", got)
	}
}
