package observers_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	jmnode "github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/config"
	"github.com/jetmetrics/jetmetrics/producers/observer"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

const (
	// foInterval is the shortest observe interval a file may set.
	foInterval = time.Second
	// foTTL is the lease TTL the node derives from it (three intervals,
	// leaseTTL in cmd/jetmetrics/node/volumes.go), and foTakeover the
	// bound on how long a dead leader's volumes go unpolled.
	foTTL      = 3 * foInterval
	foTakeover = 2 * foTTL
	// foVolumes divides by 2 and by 3: every node of a settled cluster
	// leads exactly its share.
	foVolumes = 12
	// foNodeEnv holds the name of the node a backend call comes from: each
	// node reads it (an env secret, read once at start) into a header.
	foNodeEnv    = "JM_TEST_POLLING_NODE"
	foNodeHeader = "X-Polling-Node"
)

// ledger is one loopback backend for many volumes (GET /<volume>, http-json)
// that records, per volume and schedule slot, which nodes called. Slot k
// of a volume is [k·interval + phase, (k+1)·interval + phase): the instant
// a poll is scheduled at and the time it may take to arrive.
type ledger struct {
	srv *httptest.Server

	mu    sync.Mutex
	calls map[string]map[int64][]string // volume → slot → nodes
}

func newLedger(t *testing.T) *ledger {
	l := &ledger{calls: map[string]map[int64][]string{}}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := strings.TrimPrefix(r.URL.Path, "/")
		s := slotOf(v, time.Now())
		l.mu.Lock()
		if l.calls[v] == nil {
			l.calls[v] = map[int64][]string{}
		}
		l.calls[v][s] = append(l.calls[v][s], r.Header.Get(foNodeHeader))
		l.mu.Unlock()
		fmt.Fprint(w, `{"r": 1}`)
	}))
	t.Cleanup(l.srv.Close)
	return l
}

func slotOf(volume string, at time.Time) int64 {
	return (at.UnixNano() - int64(observer.Phase("volume", volume, foInterval))) / int64(foInterval)
}

func slotStart(volume string, slot int64) time.Time {
	return time.Unix(0, slot*int64(foInterval)+int64(observer.Phase("volume", volume, foInterval)))
}

// complete is volume's last slot whose calls have all arrived: a call
// arrives within half an interval of its instant or not in its slot.
func complete(volume string) int64 { return slotOf(volume, time.Now().Add(-foInterval/2)) }

// at returns the nodes that called volume in slot.
func (l *ledger) at(volume string, slot int64) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls[volume][slot])
}

// doubles lists every slot in which a volume was called more than once.
func (l *ledger) doubles() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for v, slots := range l.calls {
		for s, nodes := range slots {
			if len(nodes) > 1 {
				out = append(out, fmt.Sprintf("%s slot %d by %v", v, s, nodes))
			}
		}
	}
	sort.Strings(out)
	return out
}

// writeFile writes the configuration every node reads: foVolumes volumes
// on l, polled every foInterval, each call naming the node that makes it.
func (l *ledger) writeFile(t *testing.T) (string, []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "observers:\n  volume:\n    observe-interval: %s\n    observe-timeout: 500ms\nvolumes:\n", foInterval)
	var names []string
	for i := range foVolumes {
		name := fmt.Sprintf("vol%02d", i)
		names = append(names, name)
		fmt.Fprintf(&b, "  - name: %s\n    backend: http-json\n    endpoint: %s/%s\n    fields: {iops-read: r}\n    headers:\n      %s: {env: %s}\n",
			name, l.srv.URL, name, foNodeHeader, foNodeEnv)
	}
	path := filepath.Join(t.TempDir(), "jetmetrics.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, names
}

// settle waits until the nodes share the volumes out evenly and stably
// (in each volume's last two complete slots one call each, by the same
// node, every node leading foVolumes/len(nodes)), then requires the next
// window slots of every volume to be polled exactly once, by that node:
// none missed, none twice. It returns each volume's leader.
func (l *ledger) settle(t *testing.T, vols, nodes []string, window int64) map[string]string {
	t.Helper()
	leaders := map[string]string{}
	from := map[string]int64{}
	harness.Eventually(t, 45*time.Second, func() error {
		clear(leaders)
		load := map[string]int{}
		for _, v := range vols {
			s := complete(v)
			prev, last := l.at(v, s-1), l.at(v, s)
			if len(prev) != 1 || len(last) != 1 || prev[0] != last[0] {
				return fmt.Errorf("%s: slot %d polled by %v, slot %d by %v", v, s-1, prev, s, last)
			}
			leaders[v], from[v] = last[0], s
			load[last[0]]++
		}
		for _, n := range nodes {
			if load[n] != foVolumes/len(nodes) {
				return fmt.Errorf("volumes led per node %v, want %d each of %v", load, foVolumes/len(nodes), nodes)
			}
		}
		return nil
	})
	t.Logf("settled on %v: %v", nodes, leaders)
	harness.Eventually(t, time.Duration(window+3)*foInterval, func() error {
		for _, v := range vols {
			if complete(v) < from[v]+window {
				return fmt.Errorf("%s: slot %d not complete", v, from[v]+window)
			}
		}
		return nil
	})
	for _, v := range vols {
		for s := from[v] + 1; s <= from[v]+window; s++ {
			if got := l.at(v, s); len(got) != 1 || got[0] != leaders[v] {
				t.Errorf("%s slot %d polled by %v, want once by %s", v, s, got, leaders[v])
			}
		}
	}
	return leaders
}

// Two in-process nodes and a node process observe twelve volumes on a
// loopback backend that counts calls per volume and schedule slot. With
// two nodes, then three, every volume is polled exactly once per interval
// by one node and the nodes lead equal shares. The node process is
// SIGKILLed (its leases are not released): the others take its volumes
// over within two lease TTLs, and no volume's observed_at history has a
// longer gap. Started again, it leads its share again. No slot of any
// volume is polled twice in the whole run.
func TestVolumeFailoverAcrossNodes(t *testing.T) {
	harness.Binary(t) // built before the clock matters
	ns := harness.NATS(t)
	l := newLedger(t)
	path, vols := l.writeFile(t)
	file, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string) *harness.RunningNode {
		t.Setenv(foNodeEnv, name)
		return harness.StartNode(t, jmnode.Config{Name: name, NATSURL: ns.ClientURL(), File: file})
	}
	a, _ := start("a"), start("b")
	l.settle(t, vols, []string{"a", "b"}, 3)

	t.Setenv(foNodeEnv, "c")
	c := harness.StartProcessNode(t, harness.ProcessNodeConfig{Name: "c", ExtraArgs: []string{
		"--nats.url=" + ns.ClientURL(), "--config.file=" + path,
	}})
	c.WaitReady(90 * time.Second)
	leaders := l.settle(t, vols, []string{"a", "b", "c"}, 3)

	var victims []string
	for _, v := range vols {
		if leaders[v] == "c" {
			victims = append(victims, v)
		}
	}
	c.Kill()
	killed := time.Now()
	t.Logf("killed c, leading %v", victims)
	// Each of c's volumes: from its last poll by c to its first by
	// another node, at most two TTLs.
	taken := map[string]time.Time{}
	harness.Eventually(t, foTakeover+2*foInterval, func() error {
		for _, v := range victims {
			if _, ok := taken[v]; ok {
				continue
			}
			for s := slotOf(v, killed); s <= complete(v); s++ {
				if got := l.at(v, s); len(got) == 1 && got[0] != "c" {
					taken[v] = slotStart(v, s)
					break
				}
			}
			if _, ok := taken[v]; !ok {
				return fmt.Errorf("%s not taken over %s after the kill", v, time.Since(killed).Round(time.Millisecond))
			}
		}
		return nil
	})
	for _, v := range victims {
		last := slotOf(v, killed)
		for last > 0 && !slices.Contains(l.at(v, last), "c") {
			last--
		}
		gap := taken[v].Sub(slotStart(v, last))
		t.Logf("%s: last polled by c at %s, taken over at %s: %s", v, slotStart(v, last).Format("15:04:05.000"), taken[v].Format("15:04:05.000"), gap)
		if gap > foTakeover {
			t.Errorf("%s unpolled for %s after its leader died, longer than two lease TTLs (%s)", v, gap, foTakeover)
		}
	}
	l.settle(t, vols, []string{"a", "b"}, 2)

	t.Setenv(foNodeEnv, "c")
	c.Start()
	c.WaitReady(90 * time.Second)
	l.settle(t, vols, []string{"a", "b", "c"}, 3)

	if d := l.doubles(); len(d) > 0 {
		t.Errorf("polled twice in one slot: %v", d)
	}
	// The history every node serves has no gap longer than the bound,
	// and one result per instant.
	for _, v := range vols {
		var h struct {
			Results []result `json:"results"`
		}
		if code := get(t, a.URL+"/api/v1/volumes/"+v+"/performance-metric/history?limit=1000", &h); code != http.StatusOK || len(h.Results) < 10 {
			t.Fatalf("%s history: %d, %d results", v, code, len(h.Results))
		}
		for i := 0; i+1 < len(h.Results); i++ {
			newer, older := *h.Results[i].ObservedAt, *h.Results[i+1].ObservedAt
			if d := newer.Sub(older); d <= 0 || d > foTakeover {
				t.Errorf("%s history: %s (by %s) after %s (by %s): a gap of %s, bound %s",
					v, newer.Format("15:04:05.000"), h.Results[i].Node, older.Format("15:04:05.000"), h.Results[i+1].Node, d, foTakeover)
			}
		}
	}
}
