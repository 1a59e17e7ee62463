package kubeapi

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff spaces out retries after failures as client-go does: starting
// at backoffBase, doubling up to backoffMax, with jitter so that clients
// do not reconnect in step after an apiserver restart, and starting over
// when the previous failure is more than backoffReset ago, or after a
// watch that worked for healthyWatch (see reset).
type backoff struct {
	t    *timing
	n    uint // failures in the current run
	last time.Time
}

// next returns the wait after a failure at now.
func (b *backoff) next(now time.Time) time.Duration {
	if !b.last.IsZero() && now.Sub(b.last) > b.t.backoffReset {
		b.n = 0
	}
	b.last = now
	d := b.t.backoffMax
	if b.n < 32 {
		if e := b.t.backoffBase << b.n; e > 0 && e < d {
			d = e
			b.n++
		}
	}
	return jitter(d)
}

// reset starts over: the next failure waits backoffBase.
func (b *backoff) reset() { b.n, b.last = 0, time.Time{} }

// jitter returns a duration in (0.8d, d].
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - rand.N(d/5+1)
}

// sleep waits for d or until ctx is done, and reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
