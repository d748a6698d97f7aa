package aggregator

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jetmetrics/jetmetrics/streams"
)

// A batch whose seq jumps more than MaxSeqJump above its producer's mark
// (or, for a producer with none, above its own stream sequence) is
// dead-lettered as seq_jump and leaves the mark alone: the real producer's
// later batches still apply. Within the bound, batches apply. Help texts
// are cut at MaxHelpBytes on a character boundary.
func TestSeqJumpRejected(t *testing.T) {
	f := newFolder(t)
	ctx := context.Background()
	batch := func(stream uint64, producer string, seq uint64) []deadLetter {
		t.Helper()
		raw := fmt.Appendf(nil, `{"v":1,"node":"n1","producer":%q,"seq":%d,"metrics":[{"name":"c_total","type":"counter","help":%q,"value":1}]}`,
			producer, seq, strings.Repeat("é", MaxHelpBytes))
		f.st.letters = f.st.letters[:0]
		f.st.add(f.a, decodeItem(f.a, stream, raw))
		g := newGroup()
		f.st.seal(g, stream)
		if err := f.store.Apply(ctx, g.u); err != nil {
			t.Fatal(err)
		}
		f.st.live.commit(g)
		return f.st.letters
	}
	steps := []struct {
		producer string
		seq      uint64
		jump     bool
	}{
		{"victim", 1, false},
		{"victim", 1<<64 - 1, true},              // under another's id: would silence it
		{"victim", 2, false},                     // the real producer goes on
		{"victim", 2 + DefaultMaxSeqJump, false}, // the bound itself
		{"fresh", 5 + DefaultMaxSeqJump, false},  // no mark: its stream sequence (5) + the bound
		{"fresh2", 7 + DefaultMaxSeqJump, true},  // one above
	}
	applied := 0
	for i, s := range steps {
		letters := batch(uint64(i+1), s.producer, s.seq)
		jumped := len(letters) == 1 && letters[0].rej.Reason == streams.ReasonSeqJump
		if jumped != s.jump || (!s.jump && len(letters) > 0) {
			t.Fatalf("step %d (%s seq %d): %d letters, seq_jump %v, want %v", i, s.producer, s.seq, len(letters), jumped, s.jump)
		}
		if !s.jump {
			applied++
		}
	}
	st, err := f.store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Rejected[string(streams.ReasonSeqJump)]; got != 2 {
		t.Errorf("rejected{seq_jump} = %d, want 2", got)
	}
	fam := st.Families[0]
	if got := fam.Series[0].Value; got != float64(applied) {
		t.Errorf("c_total = %g, want %d", got, applied)
	}
	if len(fam.Meta.Help) > MaxHelpBytes || !strings.HasPrefix(strings.Repeat("é", MaxHelpBytes), fam.Meta.Help) || len(fam.Meta.Help) < MaxHelpBytes-1 {
		t.Errorf("help of %d bytes, want the first whole characters within %d", len(fam.Meta.Help), MaxHelpBytes)
	}
}
