package backoff_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jetmetrics/jetmetrics/pkg/backoff"
)

func TestDoublesToMaxAndResets(t *testing.T) {
	b := backoff.Backoff{Min: time.Second, Max: 5 * time.Second}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != time.Second {
		t.Fatalf("after Reset: %v, want 1s", d)
	}
	var zero backoff.Backoff
	if d := zero.Next(); d != 100*time.Millisecond {
		t.Fatalf("zero value: %v, want 100ms", d)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if backoff.Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported a full wait on a cancelled context")
	}
	if !backoff.Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep reported an early end")
	}
}

// Run starts the session again after each return, waiting the growing
// delay and reporting each error with it, until ctx ends.
func TestRunRestartsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	sessions := 0
	backoff.Run(ctx, &backoff.Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond}, func(ctx context.Context, _ *backoff.Backoff) error {
		sessions++
		if sessions == 4 {
			cancel()
			return ctx.Err()
		}
		return errors.New("boom")
	}, func(err error, wait time.Duration) {
		if err == nil || err.Error() != "boom" {
			t.Errorf("failed(%v)", err)
		}
		waits = append(waits, wait)
	})
	if want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}; sessions != 4 || !slices.Equal(waits, want) {
		t.Errorf("%d sessions, waits %v; want 4 and %v", sessions, waits, want)
	}
}
