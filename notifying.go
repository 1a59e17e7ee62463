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
// supersedes the run in flight, and shutdown ends it: its retries stop.
//
// The first attempt is made even when ctx is already done (SIGTERM
// arrived during the apply): the file has changed, and a load balancer
// that is not told keeps serving the old configuration although the file
// on disk says otherwise. Each notifier call is bounded by -update-timeout.
func (d *daemon) startNotifying(ctx context.Context, n notify.Notification) {
	d.stopNotifying()
	nctx, cancel := context.WithCancel(ctx)
	d.notifyCancel = cancel
	d.notifyWG.Add(1)
	go func() {
		defer d.notifyWG.Done()
		// The chain's first attempt is whole (WholeFirstAttempt); its
		// failures are logged and counted by the chain.
		if err := d.chain.RunWithRetry(nctx, n); err != nil {
			return
		}
		if len(d.o.notify) > 0 {
			d.log.Info("load balancer notified", "config", n.ConfigPath, "notifiers", d.o.notify)
		}
		d.notifiedOK()
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

// fileChanged records that the file holds a configuration the load
// balancer has not been told of yet; publish runs once it has.
func (d *daemon) fileChanged(publish func()) {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	d.fileNotified, d.pendingPublish = false, publish
}

// publishWhenNotified runs publish now if the load balancer has been told
// of the file's configuration, else once it has.
func (d *daemon) publishWhenNotified(publish func()) {
	d.pubMu.Lock()
	if !d.fileNotified {
		d.pendingPublish = publish
		d.pubMu.Unlock()
		return
	}
	d.pubMu.Unlock()
	publish()
}

// notifiedOK records a successful notification and runs what waited for it.
func (d *daemon) notifiedOK() {
	d.pubMu.Lock()
	publish := d.pendingPublish
	d.fileNotified, d.pendingPublish = true, nil
	d.pubMu.Unlock()
	if publish != nil {
		publish()
	}
}
