package main

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/kube2lb/kube2lb/notify"
)

// Backoff between failed notification attempts.
const (
	notifyBackoffMin = time.Second
	notifyBackoffMax = 30 * time.Second
)

// startNotifying runs the notifiers for n in the background, in order,
// retrying a failed one with backoff until it succeeds. A newer apply
// supersedes the run in flight: its retries stop (an attempt already
// running finishes, bounded by -update-timeout).
func (d *daemon) startNotifying(ctx context.Context, n notify.Notification) {
	d.stopNotifying()
	if len(d.notifiers) == 0 {
		d.metrics.setNotifyResult(nil)
		return
	}
	nctx, cancel := context.WithCancel(ctx)
	d.notifyCancel = cancel
	d.notifyWG.Add(1)
	go func() {
		defer d.notifyWG.Done()
		d.notifyAll(nctx, n)
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

func (d *daemon) notifyAll(ctx context.Context, n notify.Notification) {
	for _, nt := range d.notifiers {
		backoff := notifyBackoffMin
		for {
			err := d.notifyOne(ctx, nt, n)
			d.metrics.setNotifyResult(err)
			if err == nil {
				break
			}
			wait := backoff/2 + rand.N(backoff/2+1)
			d.log.Warn("notification failed; retrying", "notifier", nt.String(), "retry_in", wait.Round(time.Millisecond), "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			backoff = min(2*backoff, notifyBackoffMax)
		}
	}
}

// notifyOne runs one notifier once, bounded by -update-timeout. The
// attempt is not cut short by ctx (shutdown or a newer apply): a reload
// half sent helps nobody.
func (d *daemon) notifyOne(ctx context.Context, nt notify.Notifier, n notify.Notification) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.o.updateTimeout)
	defer cancel()
	err := nt.Notify(actx, n)
	if err != nil {
		d.metrics.notifications.inc(nt.String(), "error")
		return err
	}
	d.metrics.notifications.inc(nt.String(), "ok")
	d.log.Debug("notified", "notifier", nt.String())
	return nil
}
