package observer

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetmetrics/jetmetrics/pkg/natsserver"
	"github.com/jetmetrics/jetmetrics/streams"
)

// A survivor takes a dead node's vacant leases in the first round that
// finds its keys expired, not a round later when the dead node leaves the
// live set: at the node's interval of TTL/3 that round made a dead
// leader's targets go unpolled for up to two TTLs. Rounds are driven by
// hand, so the test counts rounds, not time.
func TestDeadNodesLeasesTakenInTheFirstRound(t *testing.T) {
	s, err := natsserver.Start(natsserver.Config{Name: "n0", StoreDir: t.TempDir(), Port: -1, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := s.Connect()
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
	const ttl = 10 * time.Second // longer than the test: only the deletes below remove keys
	kv, err := streams.ProvisionLeases(ctx, js, streams.ObsConfig{LeaseTTL: ttl, MemoryStorage: true})
	if err != nil {
		t.Fatal(err)
	}
	targets := names("vol", 12)
	newNode := func(name string) *Leases {
		l, err := NewLeases(LeaseConfig{Observer: "volume", Node: name, Targets: targets}, kv, zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	dead, survivor := newNode("dead"), newNode("survivor")
	held := func(l *Leases) (n int) {
		for _, t := range targets {
			if _, ok := l.Lease(t); ok {
				n++
			}
		}
		return n
	}
	// Both see each other, and each takes its share.
	for range 3 {
		dead.round(ctx, ttl)
		survivor.round(ctx, ttl)
	}
	if d, s := held(dead), held(survivor); d != 6 || s != 6 {
		t.Fatalf("dead holds %d, survivor %d; want 6 each", d, s)
	}
	// dead stops renewing, and its keys go, as the bucket removes them
	// a TTL after their last write.
	keys := []string{dead.nodeKey("dead")}
	for _, st := range dead.state {
		if st.held {
			keys = append(keys, st.key)
		}
	}
	for _, key := range keys {
		if err := kv.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	survivor.round(ctx, ttl)
	if n := held(survivor); n != len(targets) {
		t.Errorf("after the first round without dead's keys the survivor holds %d of %d targets", n, len(targets))
	}
}
