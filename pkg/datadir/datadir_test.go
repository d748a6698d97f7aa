package datadir_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/pkg/datadir"
)

func TestClaim(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := datadir.Claim(dir, "n1", false)
	if err != nil {
		t.Fatal(err)
	}

	// A second claim while the first holds it is refused, naming the holder.
	_, err = datadir.Claim(dir, "n1", false)
	if !errors.Is(err, datadir.ErrInUse) || !strings.Contains(err.Error(), "node n1, pid") {
		t.Fatalf("second claim: %v, want ErrInUse naming node n1 and its pid", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// Released, the same node claims it again.
	b, err := datadir.Claim(dir, "n1", false)
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	b.Close()

	// Another name is refused, naming the owner and the way out.
	_, err = datadir.Claim(dir, "n2", false)
	if !errors.Is(err, datadir.ErrOtherNode) || !strings.Contains(err.Error(), `"n1"`) || !strings.Contains(err.Error(), "--data.adopt") {
		t.Fatalf("claim as n2: %v, want ErrOtherNode naming n1 and --data.adopt", err)
	}
	// The refused claim released the lock.
	c, err := datadir.Claim(dir, "n1", false)
	if err != nil {
		t.Fatalf("claim after a refused one: %v", err)
	}
	c.Close()

	// Adopting makes it n2's.
	d, err := datadir.Claim(dir, "n2", true)
	if err != nil {
		t.Fatalf("adopt: %v", err)
	}
	d.Close()
	if owner, _ := os.ReadFile(filepath.Join(dir, datadir.NodeFile)); strings.TrimSpace(string(owner)) != "n2" {
		t.Fatalf("owner after adopt: %q, want n2", owner)
	}
}

// A directory written before owner records existed becomes the claimer's.
func TestClaimUnrecordedDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "nats"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := datadir.Claim(dir, "n1", false)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := datadir.Claim(dir, "n2", false); !errors.Is(err, datadir.ErrOtherNode) {
		t.Fatalf("claim as n2 after n1 recorded it: %v, want ErrOtherNode", err)
	}
}
