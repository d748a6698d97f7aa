package aggregate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/aggregate"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// peerState is what Known says of one node, or "absent".
func peerState(t *testing.T, p *aggregate.Peers, node string) string {
	t.Helper()
	known, err := p.Known(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range known {
		if k.Node == node {
			return fmt.Sprintf("version=%d live=%v removed=%v", k.Version, k.Live, k.Removed)
		}
	}
	return "absent"
}

func listed(t *testing.T, p *aggregate.Peers, node string) bool {
	t.Helper()
	snaps, err := p.List(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if s.Node == node {
			return true
		}
	}
	return false
}

// A peer whose snapshot expired is remembered as down until it is removed
// on purpose or the forget period passes; its snapshot data still expires
// at its TTL.
func TestPeersRememberDownPeers(t *testing.T) {
	ctx := context.Background()
	rdb := harness.RedisClient(t, harness.Redis(t))
	put := func(p *aggregate.Peers, node string, version uint64, ttl time.Duration) {
		t.Helper()
		now := time.Now()
		if _, err := p.Put(ctx, aggregate.Snapshot{Node: node, Version: version, Generated: now, Expires: now.Add(ttl), Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		// act brings the peer "n2", stored at version 7, into the state.
		act  func(p *aggregate.Peers)
		want string
		// listed is whether its snapshot data is still served.
		listed bool
	}{
		{"live", func(*aggregate.Peers) {}, "version=7 live=true removed=false", true},
		{"expired by the server's marker", func(p *aggregate.Peers) {
			if err := p.Expire(ctx, "n2"); err != nil {
				t.Fatal(err)
			}
		}, "version=7 live=false removed=false", false},
		{"graceful removal", func(p *aggregate.Peers) {
			if _, err := p.Remove(ctx, "n2", 9); err != nil {
				t.Fatal(err)
			}
		}, "version=7 live=false removed=true", false},
		{"removal with an absurd version", func(p *aggregate.Peers) {
			// Honoured, but its version is not kept: the record claims no
			// more than the newest snapshot seen, and the next snapshot,
			// of any version, is stored.
			if _, err := p.Remove(ctx, "n2", 1<<64-1); err != nil {
				t.Fatal(err)
			}
			if got := peerState(t, p, "n2"); got != "version=7 live=false removed=true" {
				t.Errorf("after the removal: %s", got)
			}
			put(p, "n2", 8, time.Minute)
		}, "version=8 live=true removed=false", true},
		{"removal older than the snapshot", func(p *aggregate.Peers) {
			if _, err := p.Remove(ctx, "n2", 5); err != nil {
				t.Fatal(err)
			}
		}, "version=7 live=true removed=false", true},
		{"back with its versions started over", func(p *aggregate.Peers) {
			if err := p.Expire(ctx, "n2"); err != nil {
				t.Fatal(err)
			}
			put(p, "n2", 2, time.Minute)
		}, "version=2 live=true removed=false", true},
		{"removed with its versions started over", func(p *aggregate.Peers) {
			if err := p.Expire(ctx, "n2"); err != nil {
				t.Fatal(err)
			}
			put(p, "n2", 2, time.Minute)
			if _, err := p.Remove(ctx, "n2", 3); err != nil {
				t.Fatal(err)
			}
		}, "version=2 live=false removed=true", false},
		{"back after a removal", func(p *aggregate.Peers) {
			if _, err := p.Remove(ctx, "n2", 9); err != nil {
				t.Fatal(err)
			}
			put(p, "n2", 9, time.Minute)
		}, "version=9 live=true removed=false", true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := aggregate.NewPeers(rdb, fmt.Sprintf("t%d", i))
			put(p, "n2", 7, time.Minute)
			tc.act(p)
			if got := peerState(t, p, "n2"); got != tc.want {
				t.Errorf("known: %s, want %s", got, tc.want)
			}
			if got := listed(t, p, "n2"); got != tc.listed {
				t.Errorf("listed: %v, want %v", got, tc.listed)
			}
		})
	}

	t.Run("expiry by ttl, then forgotten", func(t *testing.T) {
		p := aggregate.NewPeers(rdb, "ttl", aggregate.ForgetAfter(2*time.Second))
		put(p, "n3", 4, time.Second)
		harness.Eventually(t, 10*time.Second, func() error {
			if got := peerState(t, p, "n3"); got != "version=4 live=false removed=false" {
				return fmt.Errorf("known: %s", got)
			}
			if listed(t, p, "n3") {
				return fmt.Errorf("still listed after its ttl")
			}
			return nil
		})
		harness.Eventually(t, 10*time.Second, func() error {
			if got := peerState(t, p, "n3"); got != "absent" {
				return fmt.Errorf("known after the forget period: %s", got)
			}
			return nil
		})
		if n, err := rdb.Exists(ctx, "ttl:{peer:n3}:seen").Result(); err != nil || n != 0 {
			t.Errorf("record still in Redis after the forget period: %d %v", n, err)
		}
	})
}
