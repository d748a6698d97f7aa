package e2e_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/cmd/jetmetrics/node"
	"github.com/jetmetrics/jetmetrics/pkg/datadir"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// runRefused runs a node that must fail at start, and returns its error.
func runRefused(t *testing.T, cfg node.Config) error {
	t.Helper()
	cfg.WebListen, cfg.NATSListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = harness.Logger(t)
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = n.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("node %s on %s started (%v), want it refused", cfg.Name, cfg.DataDir, err)
	}
	return err
}

// Two nodes never share a data directory, and a node never silently takes
// over another node's: the second is refused at start, naming the holder or
// the owner and the flag that lets an operator take a directory over.
func TestDataDirClaimed(t *testing.T) {
	dir := t.TempDir()
	first := harness.StartNode(t, node.Config{Name: "n1", DataDir: dir})

	err := runRefused(t, node.Config{Name: "n1", DataDir: dir})
	if !errors.Is(err, datadir.ErrInUse) || !strings.Contains(err.Error(), "node n1, pid") || !strings.Contains(err.Error(), "--data.dir") {
		t.Fatalf("second node on the directory: %v, want it in use by node n1 with its pid, naming --data.dir", err)
	}
	// The running node was not disturbed.
	if _, err := harness.Scrape(first.URL + "/metrics"); err != nil {
		t.Fatalf("first node after the refused second: %v", err)
	}
	first.Stop(t)

	err = runRefused(t, node.Config{Name: "n2", DataDir: dir})
	if !errors.Is(err, datadir.ErrOtherNode) || !strings.Contains(err.Error(), "--data.adopt") {
		t.Fatalf("node n2 on n1's directory: %v, want it refused as n1's, naming --data.adopt", err)
	}

	// Taken over on purpose, it starts, and the directory is n2's from then on.
	harness.StartNode(t, node.Config{Name: "n2", DataDir: dir, AdoptDataDir: true}).Stop(t)
	err = runRefused(t, node.Config{Name: "n1", DataDir: dir})
	if !errors.Is(err, datadir.ErrOtherNode) {
		t.Fatalf("node n1 on the directory n2 adopted: %v, want it refused as n2's", err)
	}
}
