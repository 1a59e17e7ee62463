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

func mustParse(t *testing.T, spec string) (Notifier, *logBuffer) {
	t.Helper()
	logger, logs := testLogger()
	n, err := Parse(spec, logger)
	if err != nil {
		t.Fatal(err)
	}
	return n, logs
}

func TestCommandSucceedsAndLogsOutput(t *testing.T) {
	n, logs := mustParse(t, `command:echo "reloaded a:b"; echo warning >&2`)
	if err := n.Notify(context.Background(), Notification{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reloaded a:b", "warning", `notifier="command:echo`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q lacks %q", logs.String(), want)
		}
	}
}

func TestCommandSilentSuccessLogsNothing(t *testing.T) {
	n, logs := mustParse(t, "command:true")
	if err := n.Notify(context.Background(), Notification{}); err != nil {
		t.Fatal(err)
	}
	if logs.String() != "" {
		t.Errorf("logged %q for a silent command", logs.String())
	}
}

func TestCommandFailureCarriesOutput(t *testing.T) {
	n, _ := mustParse(t, "command:echo out; echo 'parsing [cfg:3]: error' >&2; exit 3")
	err := n.Notify(context.Background(), Notification{})
	want := `command "echo out; echo 'parsing [cfg:3]: error' >&2; exit 3": exit status 3: out
parsing [cfg:3]: error`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %q\nwant      %q", err, want)
	}
}

func TestCommandFailureWithoutOutput(t *testing.T) {
	n, _ := mustParse(t, "command:exit 1")
	err := n.Notify(context.Background(), Notification{})
	if want := `command "exit 1": exit status 1 (no output)`; err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

func TestCommandOutputIsBounded(t *testing.T) {
	n, _ := mustParse(t, "command:head -c 20000 /dev/zero | tr '\\0' x; exit 1")
	err := n.Notify(context.Background(), Notification{})
	if err == nil {
		t.Fatal("Notify succeeded, want an error")
	}
	if !strings.HasSuffix(err.Error(), " ... (11808 more bytes)") || len(err.Error()) > maxOutput+200 {
		t.Errorf("error of %d bytes ends %q", len(err.Error()), err.Error()[max(0, len(err.Error())-40):])
	}
}

func TestCommandGetsConfigPath(t *testing.T) {
	n, _ := mustParse(t, `command:test "$KUBE2LB_CONFIG" = /etc/lb/haproxy.cfg`)
	if err := n.Notify(context.Background(), Notification{ConfigPath: "/etc/lb/haproxy.cfg"}); err != nil {
		t.Errorf("with the right path: %v", err)
	}
	if err := n.Notify(context.Background(), Notification{ConfigPath: "/elsewhere"}); err == nil {
		t.Error("with another path: the command succeeded")
	}
}

// TestCommandKilledWithItsChildren cancels a command whose shell waits for
// a child: both must die, since the whole process group is killed.
func TestCommandKilledWithItsChildren(t *testing.T) {
	dir := t.TempDir()
	n, _ := mustParse(t, "command:echo $$ > "+dir+"/sh.tmp && mv "+dir+"/sh.tmp "+dir+"/sh.pid; "+
		"sleep 300 & echo $! > "+dir+"/child.tmp && mv "+dir+"/child.tmp "+dir+"/child.pid; wait")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Notify(ctx, Notification{}) }()

	shPID := readPID(t, waitForFile(t, filepath.Join(dir, "sh.pid")))
	childPID := readPID(t, waitForFile(t, filepath.Join(dir, "child.pid")))
	t.Cleanup(func() { syscall.Kill(childPID, syscall.SIGKILL) })
	cancel()

	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Notify did not return after its context was canceled")
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "killed after") {
		t.Errorf("error = %v, want one saying it was killed, wrapping context.Canceled", err)
	}
	for _, pid := range []int{shPID, childPID} {
		poll(t, "pid "+strconv.Itoa(pid)+" to die", func() bool { return gone(pid) })
	}
}

func TestCommandKilledAtDeadline(t *testing.T) {
	n, _ := mustParse(t, "command:echo started; exec sleep 300")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := n.Notify(ctx, Notification{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want context.DeadlineExceeded", err)
	}
	if !strings.HasPrefix(err.Error(), `command "echo started; exec sleep 300"`) {
		t.Errorf("error = %q", err)
	}
}

func TestCommandNotStartedAfterDeadline(t *testing.T) {
	dir := t.TempDir()
	n, _ := mustParse(t, "command:touch "+dir+"/ran")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Notify(ctx, Notification{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("the command ran with a canceled context")
	}
}

// TestCommandLeavingBackgroundProcess covers reload commands that start a
// process in the background which keeps the output pipe open: the command
// counts as done once the shell exits, and the process is left alone.
func TestCommandLeavingBackgroundProcess(t *testing.T) {
	dir := t.TempDir()
	n, logs := mustParse(t, "command:sleep 300 & echo $! > "+dir+"/bg.pid")
	if err := n.Notify(context.Background(), Notification{}); err != nil {
		t.Fatal(err)
	}
	pid := readPID(t, waitForFile(t, filepath.Join(dir, "bg.pid")))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if gone(pid) {
		t.Error("the background process was killed")
	}
	if !strings.Contains(logs.String(), "left a background process") {
		t.Errorf("log %q lacks the warning", logs.String())
	}
}

func readPID(t *testing.T, s string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// gone reports whether pid no longer runs. A zombie counts as gone: an
// orphan is reaped by pid 1, which on some machines takes its time.
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state == 'Z' || state == 'X'
}
