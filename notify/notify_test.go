package notify

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The test binary doubles as a signal receiver: started with helperEnv set
// to a directory, it installs signal handlers, writes "ready" there and
// then writes the first signal it gets to "got".
const helperEnv = "KUBE2LB_NOTIFY_TEST_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(signalHelper(dir))
	}
	os.Exit(m.Run())
}

func signalHelper(dir string) int {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	if err := writeAtomic(filepath.Join(dir, "ready"), strconv.Itoa(os.Getpid())); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The parent kills the helper when a test ends without signalling it;
	// the timeout only bounds a helper whose parent died.
	select {
	case sig := <-ch:
		if err := writeAtomic(filepath.Join(dir, "got"), signalName(sig.(syscall.Signal))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case <-time.After(10 * time.Minute):
		return 1
	}
}

func writeAtomic(path, content string) error {
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// receiver is a running signal helper.
type receiver struct {
	pid int
	dir string
}

// startReceiver starts a signal helper and waits until its handlers are
// installed.
func startReceiver(t *testing.T) *receiver {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := waitForFile(t, filepath.Join(dir, "ready"))
	if ready != strconv.Itoa(cmd.Process.Pid) {
		t.Fatalf("helper wrote pid %q, started %d", ready, cmd.Process.Pid)
	}
	return &receiver{pid: cmd.Process.Pid, dir: dir}
}

// received waits for the signal the helper got and returns its name.
func (r *receiver) received(t *testing.T) string {
	t.Helper()
	return waitForFile(t, filepath.Join(r.dir, "got"))
}

// waitForFile polls for a file and returns its content. The deadline is
// generous: this runs on two shared cores.
func waitForFile(t *testing.T, path string) string {
	t.Helper()
	var content string
	poll(t, "file "+path, func() bool {
		b, err := os.ReadFile(path)
		content = string(b)
		return err == nil
	})
	return content
}

// poll calls cond until it is true, failing the test after a minute.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer is a goroutine-safe log destination for tests.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func testLogger() (*slog.Logger, *logBuffer) {
	var b logBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// describe summarizes what Parse built, for comparisons.
func describe(n Notifier) string {
	switch n := n.(type) {
	case *commandNotifier:
		return "command " + n.cmd
	case *pidNotifier:
		return fmt.Sprintf("pid %s %d", signalName(n.sig), n.pid)
	case *pidfileNotifier:
		return fmt.Sprintf("pidfile %s %s", signalName(n.sig), n.path)
	case *caddyNotifier:
		return fmt.Sprintf("caddy host=%q", n.host)
	case *debugNotifier:
		return "debug"
	}
	return fmt.Sprintf("unknown %T", n)
}

func TestParse(t *testing.T) {
	const (
		anyKind    = "want command:CMD, pid:SIGNAL:PID, pidfile:SIGNAL:PATH, caddy:ADDRESS or debug:"
		pidForm    = "want pid:SIGNAL:PID, e.g. pid:SIGHUP:1234"
		pidfileFrm = "want pidfile:SIGNAL:PATH, e.g. pidfile:SIGUSR2:/run/haproxy.pid"
		caddyForm  = "want caddy:HOST:PORT or caddy:unix/PATH, e.g. caddy:127.0.0.1:2019 or caddy:unix//run/caddy/admin.sock"
	)
	tests := []struct {
		spec    string
		want    string // describe of the notifier
		wantErr string
	}{
		{spec: "command:systemctl reload haproxy", want: "command systemctl reload haproxy"},
		{spec: "command:haproxy -f /etc/haproxy.cfg -sf $(cat /run/haproxy.pid)", want: "command haproxy -f /etc/haproxy.cfg -sf $(cat /run/haproxy.pid)"},
		{spec: "command:echo a:b::c", want: "command echo a:b::c"},
		{spec: "pid:SIGHUP:5678", want: "pid SIGHUP 5678"},
		{spec: "pid:HUP:5678", want: "pid SIGHUP 5678"},
		{spec: "pid:hup:5678", want: "pid SIGHUP 5678"},
		{spec: "pid:1:5678", want: "pid SIGHUP 5678"},
		{spec: "pid:12:5678", want: "pid SIGUSR2 5678"},
		{spec: "pidfile:SIGUSR2:/run/haproxy.pid", want: "pidfile SIGUSR2 /run/haproxy.pid"},
		{spec: "pidfile:usr1:caddy.pid", want: "pidfile SIGUSR1 caddy.pid"},
		{spec: "pidfile:HUP:/odd/path:with:colons", want: "pidfile SIGHUP /odd/path:with:colons"},
		{spec: "caddy:127.0.0.1:2019", want: `caddy host="127.0.0.1:2019"`},
		{spec: "caddy:localhost:2019", want: `caddy host="localhost:2019"`},
		{spec: "caddy:[::1]:2019", want: `caddy host="[::1]:2019"`},
		{spec: "caddy::2019", want: `caddy host="localhost:2019"`},
		{spec: "caddy:unix//run/caddy/admin.sock", want: `caddy host="unix//run/caddy/admin.sock"`},
		{spec: "caddy:unix/admin.sock", want: `caddy host="unix/admin.sock"`},
		{spec: "debug:", want: "debug"},
		{spec: "debug:x", want: "debug"},
		{spec: "pid:SIGHUP:1", want: "pid SIGHUP 1"},

		{spec: "", wantErr: `-notify "": missing ':' after the notifier kind (` + anyKind + `)`},
		{spec: "debug", wantErr: `-notify "debug": missing ':' after the notifier kind (` + anyKind + `)`},
		{spec: "bogus:x", wantErr: `-notify "bogus:x": unknown notifier kind "bogus" (` + anyKind + `)`},
		{spec: "Command:ls", wantErr: `-notify "Command:ls": unknown notifier kind "Command" (` + anyKind + `)`},
		{spec: "command:", wantErr: `-notify "command:": missing command (want command:CMD, e.g. command:systemctl reload haproxy)`},
		{spec: "command:  ", wantErr: `-notify "command:  ": missing command (want command:CMD, e.g. command:systemctl reload haproxy)`},
		{spec: "pid:", wantErr: `-notify "pid:": missing signal (` + pidForm + `)`},
		{spec: "pid::12", wantErr: `-notify "pid::12": missing signal (` + pidForm + `)`},
		{spec: "pid:SIGFOO:12", wantErr: `-notify "pid:SIGFOO:12": unknown signal "SIGFOO" (want a name like SIGHUP, HUP or a number)`},
		{spec: "pid:0:12", wantErr: `-notify "pid:0:12": signal number 0 out of range (want 1 to 64, or a name like SIGHUP)`},
		{spec: "pid:65:12", wantErr: `-notify "pid:65:12": signal number 65 out of range (want 1 to 64, or a name like SIGHUP)`},
		{spec: "pid:SIGHUP", wantErr: `-notify "pid:SIGHUP": missing pid after the signal (` + pidForm + `)`},
		{spec: "pid:SIGHUP:", wantErr: `-notify "pid:SIGHUP:": missing pid after the signal (` + pidForm + `)`},
		{spec: "pid:SIGHUP:abc", wantErr: `-notify "pid:SIGHUP:abc": pid "abc" is not a process id (` + pidForm + `)`},
		{spec: "pid:SIGHUP:12:13", wantErr: `-notify "pid:SIGHUP:12:13": pid "12:13" is not a process id (` + pidForm + `)`},
		{spec: "pid:SIGHUP:0", wantErr: `-notify "pid:SIGHUP:0": pid 0 refused (want a process id, 1 to 4194303)`},
		{spec: "pid:SIGHUP:-1", wantErr: `-notify "pid:SIGHUP:-1": pid -1 refused (want a process id, 1 to 4194303)`},
		{spec: "pid:SIGHUP:4294967295", wantErr: `-notify "pid:SIGHUP:4294967295": pid "4294967295" is not a process id (want pid:SIGNAL:PID, e.g. pid:SIGHUP:1234)`},
		{spec: "pid:SIGHUP:+2", wantErr: `-notify "pid:SIGHUP:+2": pid "+2" is not a process id (want pid:SIGNAL:PID, e.g. pid:SIGHUP:1234)`},
		{spec: "pidfile:SIGUSR2", wantErr: `-notify "pidfile:SIGUSR2": missing pidfile path after the signal (` + pidfileFrm + `)`},
		{spec: "pidfile:SIGUSR2:", wantErr: `-notify "pidfile:SIGUSR2:": missing pidfile path after the signal (` + pidfileFrm + `)`},
		{spec: "pidfile:/run/haproxy.pid", wantErr: `-notify "pidfile:/run/haproxy.pid": unknown signal "/run/haproxy.pid" (want a name like SIGHUP, HUP or a number)`},
		{spec: "caddy:", wantErr: `-notify "caddy:": missing admin address (` + caddyForm + `)`},
		{spec: "caddy:localhost", wantErr: `-notify "caddy:localhost": address "localhost" is not HOST:PORT (` + caddyForm + `)`},
		{spec: "caddy:localhost:", wantErr: `-notify "caddy:localhost:": address "localhost:" is not HOST:PORT (` + caddyForm + `)`},
		{spec: "caddy:http://127.0.0.1:2019", wantErr: `-notify "caddy:http://127.0.0.1:2019": address "http://127.0.0.1:2019" has a scheme (` + caddyForm + `)`},
		{spec: "caddy:unix/", wantErr: `-notify "caddy:unix/": missing socket path (` + caddyForm + `)`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			n, err := Parse(tt.spec, nil)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %s, want error %q", tt.spec, describe(n), tt.wantErr)
				}
				if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
					t.Fatalf("Parse(%q) error (-want +got):\n%s", tt.spec, diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.spec, err)
			}
			if diff := cmp.Diff(tt.want, describe(n)); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.spec, diff)
			}
			if n.String() != tt.spec {
				t.Errorf("String() = %q, want the spec %q", n.String(), tt.spec)
			}
		})
	}
}

func TestParseRefusesOwnPid(t *testing.T) {
	spec := fmt.Sprintf("pid:HUP:%d", os.Getpid())
	_, err := Parse(spec, nil)
	if err == nil || !strings.Contains(err.Error(), "is kube2lb itself") {
		t.Fatalf("Parse(%q) error = %v, want one saying it is kube2lb itself", spec, err)
	}
}

func TestDebugNotifierLogs(t *testing.T) {
	logger, logs := testLogger()
	n, err := Parse("debug:", logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), Notification{ConfigPath: "/etc/lb.cfg", Content: Bytes("12345")}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"config=/etc/lb.cfg", "bytes=5", "notifier=debug:"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q lacks %q", logs.String(), want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"command:true", "pid:HUP:2", "pidfile:USR2:/x", "caddy:127.0.0.1:2019",
		"caddy:unix//a", "debug:", "pid:99999999999999999999:2", "pidfile::", "caddy:[::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		n, err := Parse(spec, nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("-notify %q: ", spec)) {
				t.Errorf("error %q does not name the spec", err)
			}
			return
		}
		if n.String() != spec {
			t.Errorf("String() = %q, want %q", n.String(), spec)
		}
	})
}

// TestParseWarns checks the specs that are accepted, as the original
// accepted them, with a warning at start.
func TestParseWarns(t *testing.T) {
	for spec, want := range map[string]string{
		"pid:SIGHUP:1": `level=WARN msg="pid 1 is init: in a container, an init such as tini forwards the signal to the load balancer; on a host, the init system gets it" notify=pid:SIGHUP:1`,
		"debug:true":   `level=WARN msg="the debug notifier takes no argument: ignored" notify=debug:true`,
		"pid:SIGHUP:2": ``,
		"debug:":       ``,
	} {
		var buf bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
		if _, err := Parse(spec, logger); err != nil {
			t.Fatalf("Parse(%q): %v", spec, err)
		}
		if got := strings.TrimSpace(buf.String()); got != want {
			t.Errorf("Parse(%q) logged %q, want %q", spec, got, want)
		}
	}
}
