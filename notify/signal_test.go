package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in      string
		want    syscall.Signal
		wantErr string
	}{
		{in: "SIGHUP", want: syscall.SIGHUP},
		{in: "HUP", want: syscall.SIGHUP},
		{in: "hup", want: syscall.SIGHUP},
		{in: "sighup", want: syscall.SIGHUP},
		{in: "SigHup", want: syscall.SIGHUP},
		{in: "1", want: syscall.SIGHUP},
		{in: "SIGUSR1", want: syscall.SIGUSR1},
		{in: "USR2", want: syscall.SIGUSR2},
		{in: "term", want: syscall.SIGTERM},
		{in: "SIGWINCH", want: syscall.SIGWINCH},
		{in: "10", want: syscall.Signal(10)},
		{in: "64", want: syscall.Signal(64)},
		{in: "", wantErr: `unknown signal "" (want a name like SIGHUP, HUP or a number)`},
		{in: "SIG", wantErr: `unknown signal "SIG" (want a name like SIGHUP, HUP or a number)`},
		{in: "SIGFOO", wantErr: `unknown signal "SIGFOO" (want a name like SIGHUP, HUP or a number)`},
		{in: "SIG HUP", wantErr: `unknown signal "SIG HUP" (want a name like SIGHUP, HUP or a number)`},
		{in: "1.5", wantErr: `unknown signal "1.5" (want a name like SIGHUP, HUP or a number)`},
		{in: "0", wantErr: "signal number 0 out of range (want 1 to 64, or a name like SIGHUP)"},
		{in: "-1", wantErr: "signal number -1 out of range (want 1 to 64, or a name like SIGHUP)"},
		{in: "65", wantErr: "signal number 65 out of range (want 1 to 64, or a name like SIGHUP)"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSignal(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseSignal(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSignal(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSignalNameRoundTrip(t *testing.T) {
	for name, sig := range signals {
		if got := signalName(sig); got != "SIG"+name {
			t.Errorf("signalName(%d) = %q, want %q", sig, got, "SIG"+name)
		}
		if got, err := ParseSignal(signalName(sig)); err != nil || got != sig {
			t.Errorf("ParseSignal(%q) = %v, %v", signalName(sig), got, err)
		}
	}
	if got := signalName(syscall.Signal(40)); got != "signal 40" {
		t.Errorf("signalName(40) = %q", got)
	}
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"SIGHUP", "hup", "1", "64", "0", "SIG", "+3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := ParseSignal(s)
		if err == nil && (sig < 1 || sig > maxSignal) {
			t.Errorf("ParseSignal(%q) = %d, out of range", s, sig)
		}
	})
}

func TestPIDNotifierDeliversSignal(t *testing.T) {
	for _, sig := range []string{"SIGHUP", "usr1", "12"} {
		t.Run(sig, func(t *testing.T) {
			r := startReceiver(t)
			n, err := Parse(fmt.Sprintf("pid:%s:%d", sig, r.pid), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Notify(context.Background(), Notification{}); err != nil {
				t.Fatal(err)
			}
			want, _ := ParseSignal(sig)
			if got := r.received(t); got != signalName(want) {
				t.Errorf("helper got %s, want %s", got, signalName(want))
			}
		})
	}
}

func TestPIDNotifierNoSuchProcess(t *testing.T) {
	pid := exitedPID(t)
	n, err := Parse(fmt.Sprintf("pid:HUP:%d", pid), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Notify(context.Background(), Notification{})
	if !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("Notify to exited pid %d = %v, want ESRCH", pid, err)
	}
	if want := fmt.Sprintf("send SIGHUP to pid %d: no such process", pid); err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

// exitedPID returns the pid of a child that exited and was reaped, so that
// no process has it (pids are not reused this quickly).
func exitedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestPidfileRereadEveryTime checks that the pidfile is read at every
// notification: the load balancer may have restarted with another pid.
func TestPidfileRereadEveryTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.pid")
	n, err := Parse("pidfile:SIGUSR2:"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		r := startReceiver(t)
		if err := os.WriteFile(path, []byte(strconv.Itoa(r.pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := n.Notify(context.Background(), Notification{}); err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
		if got := r.received(t); got != "SIGUSR2" {
			t.Errorf("notification %d: helper got %s, want SIGUSR2", i, got)
		}
	}
}

func TestPidfileErrors(t *testing.T) {
	dir := t.TempDir()
	stale := exitedPID(t)
	tests := []struct {
		name    string
		content *string // nil: no file
		wantIs  error
		want    string // the error, with PATH for the pidfile's path
	}{
		{name: "missing", wantIs: os.ErrNotExist,
			want: "read pidfile: open PATH: no such file or directory"},
		{name: "empty", content: ptr(""),
			want: "pidfile PATH is empty (is the load balancer running?)"},
		{name: "blank", content: ptr(" \n"),
			want: "pidfile PATH is empty (is the load balancer running?)"},
		{name: "garbage", content: ptr("haproxy\n"),
			want: `pidfile PATH: "haproxy" is not a pid`},
		{name: "trailing garbage", content: ptr("123abc"),
			want: `pidfile PATH: "123abc" is not a pid`},
		{name: "two pids", content: ptr("123\n456\n"),
			want: `pidfile PATH: "123\n456" is not a pid`},
		{name: "huge", content: ptr(strings.Repeat("9", 100)),
			want: "pidfile PATH: does not hold a pid (more than 64 bytes)"},
		{name: "pid 0", content: ptr("0"),
			want: "pidfile PATH: pid 0 refused (want a process id, 1 to 4194303)"},
		{name: "negative", content: ptr("-1"),
			want: "pidfile PATH: pid -1 refused (want a process id, 1 to 4194303)"},
		{name: "own pid", content: ptr(strconv.Itoa(os.Getpid())),
			want: fmt.Sprintf("pidfile PATH: pid %d is kube2lb itself", os.Getpid())},
		// kill(2) takes the low 32 bits: -1 (every process), 0 (kube2lb's
		// process group), kube2lb's own pid.
		{name: "every process", content: ptr("4294967295"), want: `pidfile PATH: "4294967295" is not a pid`},
		{name: "process group", content: ptr("4294967296"), want: `pidfile PATH: "4294967296" is not a pid`},
		{name: "own pid wrapped", content: ptr(strconv.Itoa(os.Getpid() + 1<<32)), want: fmt.Sprintf(`pidfile PATH: "%d" is not a pid`, os.Getpid()+1<<32)},
		{name: "above any pid", content: ptr("4194304"), want: "pidfile PATH: pid 4194304 refused (want a process id, 1 to 4194303)"},
		{name: "plus", content: ptr("+2"), want: `pidfile PATH: "+2" is not a pid`},
		{name: "stale", content: ptr(strconv.Itoa(stale)), wantIs: syscall.ESRCH,
			want: fmt.Sprintf("pidfile PATH: send SIGHUP to pid %d: no such process (stale pidfile: is the load balancer running?)", stale)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%d.pid", i))
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			n, err := Parse("pidfile:HUP:"+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = n.Notify(context.Background(), Notification{})
			if err == nil {
				t.Fatal("Notify succeeded, want an error")
			}
			if want := strings.ReplaceAll(tt.want, "PATH", path); err.Error() != want {
				t.Errorf("error = %q\nwant      %q", err, want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestPidfileReloadsRealHAProxy reloads a real HAProxy master (-W) with
// pidfile:SIGUSR2 and waits for the new configuration to serve.
func TestPidfileReloadsRealHAProxy(t *testing.T) {
	bin := needProgram(t, "haproxy")
	dir := shortTempDir(t)
	cfg, pidfile, master := filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, "haproxy.pid"), filepath.Join(dir, "master.sock")
	writeConfig := func(port int) {
		t.Helper()
		c := fmt.Sprintf("defaults\n\tmode http\n\ttimeout connect 5s\n\ttimeout client 5s\n\ttimeout server 5s\n"+
			"frontend monitor\n\tbind 127.0.0.1:%d\n\tmonitor-uri /healthz\n", port)
		if err := os.WriteFile(cfg, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before, after := freePort(t), freePort(t)
	writeConfig(before)
	cmd := exec.Command(bin, "-W", "-f", cfg, "-p", pidfile, "-S", master)
	var logs logBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy's log:\n%s", logs.String())
		}
	})
	// The master loses a SIGUSR2 that arrives before it serves its CLI,
	// even when the worker already answers: wait for both.
	poll(t, "haproxy on the first port", func() bool { return healthy(before) })
	poll(t, "haproxy's master CLI", func() bool { return masterServes(master) })

	writeConfig(after)
	n, _ := mustParse(t, "pidfile:SIGUSR2:"+pidfile)
	if err := n.Notify(context.Background(), Notification{ConfigPath: cfg}); err != nil {
		t.Fatal(err)
	}
	// A signal reports nothing: the reload shows when the new port answers.
	poll(t, "haproxy on the second port", func() bool { return healthy(after) })
}

func healthy(port int) bool {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// masterServes reports whether HAProxy's master answers on its CLI socket.
func masterServes(sock string) bool {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return false
	}
	defer c.Close()
	// The master may keep the connection open after answering.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "show proc\n"); err != nil {
		return false
	}
	var answer []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(answer), "master") {
		n, err := c.Read(buf)
		answer = append(answer, buf[:n]...)
		if err != nil {
			return false
		}
	}
	return true
}

// needProgram returns the path of a real load balancer's binary. Missing,
// the test is skipped on a developer's machine and fails in CI.
func needProgram(t *testing.T, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (CI must run this test)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return bin
}

// shortTempDir is a temporary directory with a short path: unix socket
// paths are limited to 108 bytes, which t.TempDir can exceed.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "k2l")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestPidfileNotRegular: a FIFO at the path is refused at once, not waited
// on until a writer comes (past every deadline), and so is a directory.
func TestPidfileNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.pid")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		fifo: "pidfile " + fifo + " is not a regular file (p---------)",
		dir:  "pidfile " + dir + " is not a regular file (d---------)",
	} {
		n, err := Parse("pidfile:HUP:"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- n.Notify(context.Background(), Notification{}) }()
		select {
		case err := <-done:
			if err == nil || err.Error() != want {
				t.Errorf("Notify = %v, want %q", err, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Notify on %s still blocked after 30 s", path)
		}
	}
}

// TestOwnThreadRefused checks that the id of one of kube2lb's threads is
// refused as its own pid: kill(2) of a thread id signals the whole process.
func TestOwnThreadRefused(t *testing.T) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("no /proc/self/task (%v): not Linux", err)
	}
	for _, e := range entries {
		tid, _ := strconv.Atoi(e.Name())
		if tid == os.Getpid() {
			continue
		}
		_, err := Parse("pid:SIGHUP:"+e.Name(), nil)
		if want := fmt.Sprintf(`-notify "pid:SIGHUP:%d": pid %d is kube2lb itself`, tid, tid); err == nil || err.Error() != want {
			t.Errorf("error = %v, want %s", err, want)
		}
		return
	}
	t.Fatal("no thread but the main one")
}
