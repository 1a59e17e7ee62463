package main

import (
	"context"
	"time"

	"github.com/kube2lb/kube2lb/notify"
)

// Backoff between failed notification attempts.
var notifyBackoff = notify.Backoff{Initial: time.Second, Max: 30 * time.Second}

// startNotifying runs the notifiers for n in the background, in order,
// retrying a failed one with backoff until it succeeds. A newer apply
// supersedes the run in flight: its retries stop (an attempt already
// running finishes, bounded by -update-timeout).
func (d *daemon) startNotifying(ctx context.Context, n notify.Notification) {
	d.stopNotifying()
	nctx, cancel := context.WithCancel(ctx)
	d.notifyCancel = cancel
	d.notifyWG.Add(1)
	go func() {
		defer d.notifyWG.Done()
		_ = d.chain.RunWithRetry(nctx, n) // failures are logged and counted by the chain
	}()
}

// stopNotifying cancels the notification run in flight and waits for it.
func (d *daemon) stopNotifying() {
	if d.notifyCancel != nil {
		d.notifyCancel()
		d.notifyCancel = nil
	}
	d.notifyWG.Wait()
}
