package kubeapi

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	tm := defaultTiming()
	b := backoff{t: &tm}
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	// Failures in a row double the wait, from 800ms to the 30s cap, with
	// jitter of at most a fifth.
	want := []time.Duration{800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond,
		6400 * time.Millisecond, 12800 * time.Millisecond, 25600 * time.Millisecond, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		got := b.next(now)
		if got > w || got < w*4/5 {
			t.Errorf("failure %d: wait %v, want (%v, %v]", i+1, got, w*4/5, w)
		}
		now = now.Add(got)
	}
	// After two minutes without failure it starts over.
	now = now.Add(tm.backoffReset + time.Second)
	if got := b.next(now); got > 800*time.Millisecond {
		t.Errorf("after a healthy period: wait %v, want at most 800ms", got)
	}
}

func TestTimingDefaults(t *testing.T) {
	tm := timing{idleRead: time.Second}.withDefaults()
	d := defaultTiming()
	if tm.idleRead != time.Second || tm.pingAfter != d.pingAfter || tm.backoffBase != d.backoffBase || !tm.keepAlive.Enable {
		t.Errorf("withDefaults: %+v", tm)
	}
	// Dead connections must be found within 60 s; a watch over HTTP/1.x
	// from a server that stopped sending within 2 minutes, but not before
	// the API server's bookmark, a minute after the watch starts or the
	// last one.
	if d.pingAfter+d.pingTimeout >= time.Minute || d.idleRead >= time.Minute || d.responseHeader >= time.Minute ||
		d.keepAlive.Idle+time.Duration(d.keepAlive.Count)*d.keepAlive.Interval >= time.Minute ||
		d.idleWatch >= 2*time.Minute || d.idleWatch < 75*time.Second {
		t.Errorf("default liveness timeouts out of bounds: %+v", d)
	}
}
