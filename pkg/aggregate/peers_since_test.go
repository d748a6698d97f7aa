package aggregate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// sinceCopy is a reader's copy of one peer's stored chain, kept as
// ListSince hands it out.
type sinceCopy struct {
	chain  aggregate.Chain
	data   string
	deltas []string
}

func TestPeersListSinceReadsOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	rdb := harness.RedisClient(t, harness.Redis(t))
	p := aggregate.NewPeers(rdb, "")
	copies := map[string]*sinceCopy{}
	// read lists with the copies held, updates them and says what was
	// read of n1, then checks the copy against a whole read.
	read := func() string {
		t.Helper()
		snaps, err := p.ListSince(ctx, func(node string) (aggregate.Chain, bool) {
			c, ok := copies[node]
			if !ok {
				return aggregate.Chain{}, false
			}
			return c.chain, true
		})
		if err != nil {
			t.Fatal(err)
		}
		got := "absent"
		seen := map[string]bool{}
		for _, s := range snaps {
			seen[s.Node] = true
			c := copies[s.Node]
			var new []string
			for _, d := range s.Deltas {
				new = append(new, string(d))
			}
			if s.Since < 0 {
				c = &sinceCopy{data: string(s.Data)}
				got = "whole " + strings.Join(append([]string{c.data}, new...), "+")
			} else {
				if s.Data != nil || c == nil || s.Since != len(c.deltas) {
					t.Fatalf("part read of %s: data %q, since %d, copy %+v", s.Node, s.Data, s.Since, c)
				}
				got = fmt.Sprintf("part %d +%s", s.Since, strings.Join(new, "+"))
			}
			c.deltas = append(c.deltas, new...)
			c.chain = s.Chain
			if len(c.chain.Deltas) != len(c.deltas) {
				t.Fatalf("chain of %s names %d deltas, the copy holds %d", s.Node, len(c.chain.Deltas), len(c.deltas))
			}
			copies[s.Node] = c
		}
		for n := range copies {
			if !seen[n] {
				delete(copies, n)
			}
		}
		// The copy is exactly what a whole read gives.
		whole, err := p.List(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(whole) != len(copies) {
			t.Fatalf("whole read lists %d peers, the copies %d", len(whole), len(copies))
		}
		for _, s := range whole {
			c := copies[s.Node]
			var ds []string
			for _, d := range s.Deltas {
				ds = append(ds, string(d))
			}
			if c == nil || c.data != string(s.Data) || strings.Join(c.deltas, "+") != strings.Join(ds, "+") {
				t.Fatalf("copy of %s is %+v, stored %q %q", s.Node, c, s.Data, ds)
			}
		}
		return got
	}
	gen := time.UnixMilli(time.Now().UnixMilli())
	at := func(v uint64) time.Time { return gen.Add(time.Duration(v) * time.Millisecond) }
	full := func(v uint64, data string) {
		t.Helper()
		if ok, err := p.Put(ctx, aggregate.Snapshot{Node: "n1", Version: v, Generated: at(v), Expires: time.Now().Add(time.Hour), Data: []byte(data)}); err != nil || !ok {
			t.Fatalf("put %s: %v %v", data, ok, err)
		}
	}
	delta := func(v, base uint64, data string) {
		t.Helper()
		r, err := p.PutDelta(ctx, aggregate.Snapshot{Node: "n1", Version: v, Generated: at(v), Expires: time.Now().Add(time.Hour), Data: []byte(data)}, base, at(base))
		if err != nil || r != aggregate.DeltaStored {
			t.Fatalf("put delta %s: %v %v", data, r, err)
		}
	}
	steps := []struct {
		name string
		act  func()
		want string
	}{
		{"first full", func() { full(1, "F1") }, "whole F1"},
		{"nothing new", func() {}, "part 0 +"},
		{"a delta", func() { delta(2, 1, "a") }, "part 0 +a"},
		{"two more", func() { delta(3, 2, "b"); delta(4, 3, "c") }, "part 1 +b+c"},
		{"a new full", func() { full(5, "F5") }, "whole F5"},
		{"a new full and deltas", func() { full(6, "F6"); delta(7, 6, "x"); delta(8, 7, "y") }, "whole F6+x+y"},
		// A wipe, then the same full again with another chain on it: the
		// copy's deltas are not the stored ones, told by their names.
		{"wipe, same full, other delta", func() {
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			full(6, "F6")
			delta(9, 6, "z")
			delta(10, 9, "w")
		}, "whole F6+z+w"},
		{"wipe, same full only", func() {
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			full(6, "F6")
		}, "whole F6"},
		{"a delta again", func() { delta(11, 6, "q") }, "part 0 +q"},
		{"expired", func() {
			if err := p.Expire(ctx, "n1"); err != nil {
				t.Fatal(err)
			}
		}, "absent"},
		{"back", func() { full(12, "F12") }, "whole F12"},
		{"removed", func() {
			if ok, err := p.Remove(ctx, "n1", 12); err != nil || !ok {
				t.Fatalf("remove: %v %v", ok, err)
			}
		}, "absent"},
	}
	for _, s := range steps {
		s.act()
		if got := read(); got != s.want {
			t.Fatalf("%s: read %q, want %q", s.name, got, s.want)
		}
	}
}

// A snapshot stored by a store that kept no chain names is read whole
// every time.
func TestPeersListSinceUnnamedReadWhole(t *testing.T) {
	ctx := context.Background()
	rdb := harness.RedisClient(t, harness.Redis(t))
	p := aggregate.NewPeers(rdb, "")
	now := time.Now()
	if _, err := p.Put(ctx, aggregate.Snapshot{Node: "n1", Version: 1, Generated: now, Expires: now.Add(time.Hour), Data: []byte("F")}); err != nil {
		t.Fatal(err)
	}
	// As an older store wrote it: no names.
	if err := rdb.HDel(ctx, aggregate.DefaultKeyPrefix+":{peer:n1}:snapshot", "full").Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		snaps, err := p.ListSince(ctx, func(string) (aggregate.Chain, bool) { return aggregate.Chain{Full: ""}, true })
		if err != nil {
			t.Fatal(err)
		}
		if len(snaps) != 1 || snaps[0].Since != -1 || string(snaps[0].Data) != "F" || snaps[0].Chain.Full != "" {
			t.Fatalf("read %+v, want it whole and unnamed", snaps)
		}
	}
}
