// Package backoff spaces out retries: a delay that doubles from a minimum
// to a maximum, and a sleep that ends early when its context does. A
// Backoff belongs to one goroutine; Sleep is safe anywhere.
package backoff

import (
	"context"
	"time"
)

// Backoff is a doubling delay between Min and Max. The zero value of Min
// and Max means 100 ms and 5 s.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the delay to wait now and doubles the one after it.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 5 * time.Second
	}
	if b.cur < lo {
		b.cur = lo
	}
	d := min(b.cur, hi)
	b.cur = min(2*d, hi)
	return d
}

// Reset starts the delays again from Min, after a success.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits d, or until ctx ends; it reports whether the whole d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Run calls session until ctx ends, waiting b's next delay after each
// return: the loop of a consumer whose session ends on an error and
// starts again. session is given b, to Reset it once it makes progress.
// After each return before ctx ends, failed is called with the session's
// error and the delay about to be waited. Run returns when ctx ends.
func Run(ctx context.Context, b *Backoff, session func(ctx context.Context, b *Backoff) error, failed func(err error, wait time.Duration)) {
	for {
		err := session(ctx, b)
		if ctx.Err() != nil {
			return
		}
		wait := b.Next()
		failed(err, wait)
		if !Sleep(ctx, wait) {
			return
		}
	}
}
