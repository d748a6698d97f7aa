package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

type nodesAnswer struct {
	Nodes []struct {
		Name            string     `json:"name"`
		Role            string     `json:"role"`
		Up              bool       `json:"up"`
		SnapshotVersion uint64     `json:"snapshot_version"`
		AgeSeconds      float64    `json:"age_seconds"`
		LastSeen        *time.Time `json:"last_seen"`
		DeltaSubject    string     `json:"delta_subject"`
	} `json:"nodes"`
}

// listNodes renders GET /api/v1/nodes as "name:role:up ...".
func listNodes(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/api/v1/nodes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a nodesAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range a.Nodes {
		if n.DeltaSubject != "jetmetrics.delta."+n.Name+".<name>.<name>-<id>" {
			t.Errorf("node %s: delta_subject %q", n.Name, n.DeltaSubject)
		}
		if n.Role == "peer" && (n.LastSeen == nil || n.AgeSeconds < 0) {
			t.Errorf("peer %s: last_seen %v, age %g", n.Name, n.LastSeen, n.AgeSeconds)
		}
		out = append(out, fmt.Sprintf("%s:%s:%v", n.Name, n.Role, n.Up))
	}
	return strings.Join(out, " ")
}

func forget(t *testing.T, url, name string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, url+"/api/v1/nodes/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// peerSeries renders node a's jetmetrics_peer_up and age for peer b as
// "up=<v> age=<v>", or "absent".
func peerSeries(t *testing.T, url string) (up, age float64, present bool) {
	t.Helper()
	fams, err := harness.Scrape(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Samples(fams)
	up, present = s[`jetmetrics_peer_up{peer="b"}`]
	_, agePresent := s[`jetmetrics_peer_snapshot_age_seconds{peer="b"}`]
	if present != agePresent {
		t.Errorf("peer_up present %v, age present %v", present, agePresent)
	}
	return up, s[`jetmetrics_peer_snapshot_age_seconds{peer="b"}`], present
}

// A peer that dies stays listed and exported as down, with a growing age,
// until an operator forgets it; one that stops gracefully leaves at once.
func TestNodesListAndForget(t *testing.T) {
	ns := harness.NATS(t)
	a := harness.StartNode(t, node.Config{Name: "a", NATSURL: ns.ClientURL(), SnapshotInterval: 300 * time.Millisecond, SnapshotTTL: time.Second})
	b := harness.StartProcessNode(t, harness.ProcessNodeConfig{Name: "b", ExtraArgs: []string{
		"--nats.url=" + ns.ClientURL(), "--snapshot.interval=300ms", "--snapshot.ttl=1s",
	}})
	b.WaitReady(90 * time.Second)
	until := func(want string) {
		t.Helper()
		harness.Eventually(t, 60*time.Second, func() error {
			if got := listNodes(t, a.URL); got != want {
				return fmt.Errorf("nodes %q, want %q", got, want)
			}
			return nil
		})
	}
	until("a:self:true b:peer:true")

	for _, tc := range []struct {
		name string
		want int
	}{
		{"b", http.StatusConflict},          // live
		{"a", http.StatusConflict},          // the node answering
		{"c", http.StatusNotFound},          // unknown
		{"bad.name", http.StatusBadRequest}, // not a node name
	} {
		if got := forget(t, a.URL, tc.name); got != tc.want {
			t.Errorf("DELETE %s: %d, want %d", tc.name, got, tc.want)
		}
	}

	b.Kill()
	until("a:self:true b:peer:false")
	_, age1, _ := peerSeries(t, a.URL)
	harness.Eventually(t, 30*time.Second, func() error {
		up, age2, present := peerSeries(t, a.URL)
		if !present || up != 0 || age2 <= age1 {
			return fmt.Errorf("peer_up %g present %v, age %g then %g", up, present, age1, age2)
		}
		return nil
	})

	if got := forget(t, a.URL, "b"); got != http.StatusOK {
		t.Fatalf("DELETE b when down: %d", got)
	}
	until("a:self:true")
	if _, _, present := peerSeries(t, a.URL); present {
		t.Error("a forgotten peer is still exported")
	}

	// Back after being forgotten, then a graceful stop: gone at once, never
	// shown down.
	b.Start()
	b.WaitReady(90 * time.Second)
	until("a:self:true b:peer:true")
	b.Stop()
	until("a:self:true")
	if _, _, present := peerSeries(t, a.URL); present {
		t.Error("a peer that stopped gracefully is still exported")
	}
}
