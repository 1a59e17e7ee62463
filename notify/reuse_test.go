package notify

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeStarts makes every process seem to have started at *start.
func fakeStarts(t *testing.T) *uint64 {
	start := new(uint64)
	old := startOf
	startOf = func(int) (uint64, bool) { return *start, *start != 0 }
	t.Cleanup(func() { startOf = old })
	return start
}

// TestPidfileReusedPid checks that a pidfile whose pid another process
// got since the last notification is refused until the pidfile is
// written again, and that a pid: notifier refuses its pid for good once
// another process has it. SIGCONT, which the receivers ignore, is the
// signal: they stay up.
func TestPidfileReusedPid(t *testing.T) {
	start := fakeStarts(t)
	r1, r2 := startReceiver(t), startReceiver(t)
	path := filepath.Join(t.TempDir(), "lb.pid")
	var pid int // in the pidfile
	write := func(p int) {
		t.Helper()
		pid = p
		if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(r1.pid)
	n, err := Parse("pidfile:CONT:"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	notify := func(step string, wantErr bool) {
		t.Helper()
		err := n.Notify(context.Background(), Notification{})
		switch {
		case wantErr && err == nil:
			t.Fatalf("%s: Notify succeeded, want the pid refused", step)
		case wantErr:
			want := "pidfile " + path + ": stale pidfile: pid " + strconv.Itoa(pid) + " is no longer the process kube2lb signalled"
			if !strings.HasPrefix(err.Error(), want) || errors.Is(err, syscall.ESRCH) {
				t.Fatalf("%s: error %q, want it to start with %q", step, err, want)
			}
		case err != nil:
			t.Fatalf("%s: %v", step, err)
		}
	}
	*start = 100
	notify("first", false)
	notify("same process", false)
	*start = 200
	notify("another process has the pid", true)
	notify("still", true)
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	notify("pidfile written again", false)
	*start = 300
	notify("another process has the pid again", true)
	write(r2.pid)
	notify("another pid", false)

	*start = 0 // unknown: nothing to check, and the start known is kept
	notify("start unknown", false)
	*start = 400
	write(r2.pid) // the same pid, written again: trusted
	notify("pidfile written again", false)
	*start = 0
	notify("start unknown again", false)
	*start = 500
	notify("another process has the pid after an unknown start", true)

	p, err := Parse("pid:CONT:"+strconv.Itoa(r1.pid), nil)
	if err != nil {
		t.Fatal(err)
	}
	*start = 100
	if err := p.Notify(context.Background(), Notification{}); err != nil {
		t.Fatal(err)
	}
	*start = 200
	for range 2 {
		err := p.Notify(context.Background(), Notification{})
		if want := "pid " + strconv.Itoa(r1.pid) + " is no longer the process kube2lb signalled"; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("pid: error %v, want it to start with %q", err, want)
		}
	}
}
