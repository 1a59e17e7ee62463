package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Backoff is the wait between attempts of a failed notification: Initial,
// doubled after every failed attempt up to Max.
type Backoff struct {
	Initial time.Duration // 0: 1s
	Max     time.Duration // 0: 30s; raised to Initial when smaller
}

// Delay returns the wait after the given failed attempt (1 for the first).
func (b Backoff) Delay(attempt int) time.Duration {
	initial, maximum := b.Initial, b.Max
	if initial <= 0 {
		initial = time.Second
	}
	if maximum <= 0 {
		maximum = 30 * time.Second
	}
	maximum = max(maximum, initial)
	d := initial
	for i := 1; i < attempt && d < maximum; i++ {
		d *= 2
	}
	return min(d, maximum)
}

// ChainOptions configures a Chain.
type ChainOptions struct {
	// Timeout bounds each notifier call (-update-timeout); 0 leaves it to
	// the context. A command notifier is killed at it.
	Timeout time.Duration

	// Backoff is the wait between attempts in RunWithRetry.
	Backoff Backoff

	// WholeFirstAttempt makes RunWithRetry's first attempt call every
	// notifier even when ctx is done before or during it: the
	// configuration file has changed, and a load balancer that is not told
	// keeps serving the old one although the file says otherwise. The
	// retries still stop with ctx.
	WholeFirstAttempt bool

	// Logger receives a line per failure and per success; nil discards them.
	Logger *slog.Logger
}

// Stat counts the calls of one notifier of a Chain, for metrics and health.
type Stat struct {
	Notifier  string // the spec (Notifier.String)
	Successes uint64
	Failures  uint64
	LastError error // the last call's error; nil after a success or before any call
}

// Chain runs notifiers in order for each applied configuration. Its methods
// are safe for concurrent use, but callers should let one notification end
// before starting the next, so that the load balancer sees them in order.
type Chain struct {
	notifiers []Notifier
	opts      ChainOptions
	logger    *slog.Logger

	mu    sync.Mutex
	stats []Stat // parallel to notifiers
}

// UsesContent reports whether a notifier of the chain reads
// Notification.Content: caddy: sends it, debug: counts it. For the others
// the caller need not hand it, and the retries then do not hold it.
func (c *Chain) UsesContent() bool {
	for _, n := range c.notifiers {
		switch n.(type) {
		case *caddyNotifier, *debugNotifier:
			return true
		}
	}
	return false
}

// NewChain returns a Chain running notifiers in the order given. A Chain
// without notifiers succeeds at once.
func NewChain(notifiers []Notifier, opts ChainOptions) *Chain {
	c := &Chain{
		notifiers: append([]Notifier(nil), notifiers...),
		opts:      opts,
		logger:    opts.Logger,
		stats:     make([]Stat, len(notifiers)),
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	for i, n := range notifiers {
		c.stats[i].Notifier = n.String()
	}
	return c
}

// Run makes one attempt: it calls every notifier in order and stops at the
// first failure, whose error it returns, since a later notifier may depend
// on an earlier one. A notifier already running when ctx is canceled is
// given until ChainOptions.Timeout to finish (a reload interrupted halfway helps nobody);
// no notifier starts after ctx is done.
func (c *Chain) Run(ctx context.Context, n Notification) error {
	_, _, err := c.runFrom(ctx, n, 0)
	return err
}

// RunWithRetry calls the notifiers like Run until all of them succeeded,
// waiting Backoff between attempts; each failure is logged and counted. A
// retry resumes at the notifier that failed: those that succeeded for n
// are not called again. A refusal (errRefused) ends the retries: its error is
// returned at once. It returns nil on success, or, once ctx is done
// (the caller cancels it when a newer configuration supersedes n, or at
// shutdown), an error wrapping ctx.Err() and the last failure, if any.
func (c *Chain) RunWithRetry(ctx context.Context, n Notification) error {
	var lastErr error
	next := 0
	for attempt := 1; ; attempt++ {
		actx := ctx
		if attempt == 1 && c.opts.WholeFirstAttempt {
			actx = context.WithoutCancel(ctx)
		}
		i, failed, err := c.runFrom(actx, n, next)
		if err == nil {
			if attempt > 1 {
				c.logger.InfoContext(ctx, "notification succeeded after retries",
					"config", n.ConfigPath, "attempts", attempt)
			}
			return nil
		}
		if failed {
			lastErr = err
		}
		refused := failed && errors.Is(err, errRefused)
		if ctx.Err() != nil || refused {
			if failed {
				why := any(ctx.Err())
				if refused {
					why = "refused: not sent again"
				}
				c.logger.WarnContext(ctx, "notification failed, abandoned",
					"notifier", c.notifiers[i].String(), "config", n.ConfigPath,
					"attempt", attempt, "err", err, "why", why)
			}
			if refused {
				return err
			}
			return abandoned(ctx, attempt, lastErr)
		}
		next = i
		delay := c.opts.Backoff.Delay(attempt)
		c.logger.WarnContext(ctx, "notification failed, will retry",
			"notifier", c.notifiers[i].String(), "config", n.ConfigPath,
			"attempt", attempt, "retry_in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return abandoned(ctx, attempt, lastErr)
		case <-t.C:
		}
	}
}

// abandoned is RunWithRetry's error when ctx ends the retries.
func abandoned(ctx context.Context, attempts int, lastErr error) error {
	if lastErr == nil {
		return fmt.Errorf("notification abandoned: %w", ctx.Err())
	}
	return fmt.Errorf("notification abandoned after %d attempts: %w (last error: %w)", attempts, ctx.Err(), lastErr)
}

// runFrom calls the notifiers from index first on. When one fails, it
// returns its index and error, and failed is true. When ctx is done before
// a notifier starts, it returns that notifier's index and ctx.Err().
func (c *Chain) runFrom(ctx context.Context, n Notification, first int) (int, bool, error) {
	for i := first; i < len(c.notifiers); i++ {
		if err := ctx.Err(); err != nil {
			return i, false, err
		}
		notifier := c.notifiers[i]
		start := time.Now()
		err := c.call(ctx, notifier, n)
		c.record(i, err)
		if err != nil {
			return i, true, err
		}
		c.logger.DebugContext(ctx, "notifier done", "notifier", notifier.String(),
			"config", n.ConfigPath, "duration", time.Since(start))
	}
	return len(c.notifiers), false, nil
}

// call runs one notifier with the per-call deadline, detached from the
// cancellation of ctx when there is a Timeout to bound it.
func (c *Chain) call(ctx context.Context, notifier Notifier, n Notification) error {
	if c.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
		defer cancel()
	}
	return notifier.Notify(ctx, n)
}

func (c *Chain) record(i int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.stats[i]
	if err != nil {
		s.Failures++
	} else {
		s.Successes++
	}
	s.LastError = err
}

// Stats returns the counts of every notifier, in chain order.
func (c *Chain) Stats() []Stat {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Stat(nil), c.stats...)
}
