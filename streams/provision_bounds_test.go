package streams_test

import (
	"testing"

	"github.com/jetmetrics/jetmetrics/streams"
	"github.com/jetmetrics/jetmetrics/tests/harness"
)

// A node's derived byte bounds bound only the streams it creates: a node
// with another disk, or one on an external NATS (derived: unlimited),
// keeps the bounds the streams have, while an operator's explicit bound
// replaces them.
func TestDerivedBoundsKeepExistingStreams(t *testing.T) {
	js, cfg := harness.Streams(t)
	ctx := t.Context()
	maxBytes := func() (delta, dlq int64) {
		t.Helper()
		for i, name := range []string{cfg.DeltaStream(), cfg.DeadLetterStream()} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				delta = s.CachedInfo().Config.MaxBytes
			} else {
				dlq = s.CachedInfo().Config.MaxBytes
			}
		}
		return delta, dlq
	}
	provision := func(delta, dlq int64, derived bool) {
		t.Helper()
		c := cfg
		c.DeltaMaxBytes, c.DeadLetterMaxBytes = delta, dlq
		c.DeltaMaxBytesDerived, c.DeadLetterMaxBytesDerived = derived, derived
		if err := streams.Provision(ctx, js, c); err != nil {
			t.Fatal(err)
		}
	}

	provision(64<<20, 16<<20, false) // the first node's bounds, or an operator's
	provision(-1, -1, true)          // a node on an external NATS: derived unlimited
	if d, q := maxBytes(); d != 64<<20 || q != 16<<20 {
		t.Fatalf("after a node with derived unlimited bounds: delta %d, dlq %d bytes; want the existing 64 MiB and 16 MiB kept", d, q)
	}
	provision(128<<20, 32<<20, true) // a node with a larger disk
	if d, q := maxBytes(); d != 64<<20 || q != 16<<20 {
		t.Fatalf("after a node with other derived bounds: delta %d, dlq %d bytes; want the existing 64 MiB and 16 MiB kept", d, q)
	}
	provision(256<<20, -1, false) // an operator's explicit bounds
	if d, q := maxBytes(); d != 256<<20 || q != -1 {
		t.Fatalf("after explicit bounds: delta %d, dlq %d bytes; want 256 MiB and unlimited", d, q)
	}
}
