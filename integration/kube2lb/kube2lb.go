// Package kube2lb runs the kube2lb command as a built binary for the
// integration suite: Binary finds or builds it, Start runs it as a child
// process whose logs are captured and shown when the test fails, Run runs
// it to completion (-once, -dry-run), and WaitFile, WaitLines and
// CountingNotifier observe what it writes and how often it notifies. Every
// wait polls with a generous deadline instead of asserting how long
// something takes: the machines that run the suite are shared and slow.
package kube2lb

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Deadline is how long the waits of this package wait before failing the
// test. It bounds a hang, it is not a performance target.
const Deadline = 60 * time.Second

// pollInterval paces every poll of this package.
const pollInterval = 50 * time.Millisecond

// stopGrace is how long a process has to exit after SIGTERM in cleanup.
const stopGrace = 10 * time.Second

var (
	buildMu  sync.Mutex
	built    bool   // build was tried in this test process
	buildBin string // its binary
	buildErr error  // or why it failed
)

// Binary returns the path of the kube2lb binary to test: $KUBE2LB_BIN when
// set (the Makefile sets it to the binary it built), else the repository
// root built with `go build` once per test process. A build failure fails
// the test (and every later caller in the process, without building again).
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("KUBE2LB_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("KUBE2LB_BIN: %v", err)
		}
		return bin
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if !built {
		buildBin, buildErr = build()
		built = true
	}
	if buildErr != nil {
		t.Fatalf("build kube2lb: %v", buildErr)
	}
	return buildBin
}

// build compiles the repository root into a directory under the user's
// cache (a fixed place, so that test runs do not leave binaries behind).
// The binary is built beside its final name and renamed over it, so that
// test processes building at the same time never run a half-written file.
func build() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", errors.New("cannot locate the repository from the kube2lb package")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "kube2lb", "e2e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "kube2lb-*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("go", "build", "-o", tmp.Name(), ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build in %s: %w\n%s", root, err, out)
	}
	bin := filepath.Join(dir, "kube2lb")
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	return bin, nil
}

// Process is a running kube2lb.
type Process struct {
	Args []string // the arguments it was started with

	cmd    *exec.Cmd
	stdout SyncBuffer
	stderr SyncBuffer
	done   chan struct{} // closed once it exited
	err    error         // cmd.Wait's answer, set before done is closed
}

// Start runs the kube2lb binary with args in a process group of its own
// and returns at once. Its standard output and standard error are captured
// (Stdout, Logs). In t's cleanup it gets SIGTERM, then SIGKILL after 10 s;
// when t failed, its logs are written to the test log.
func Start(t testing.TB, args ...string) *Process {
	t.Helper()
	bin := Binary(t)
	p := &Process{Args: args, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	// Pdeathsig: a test binary that dies without its cleanups (a go test
	// -timeout panic) takes kube2lb with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start kube2lb: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("kube2lb %s:\n%s", strings.Join(args, " "), p.Logs())
		}
	})
	return p
}

// stop ends the process group: SIGCONT (it may have been stopped), SIGTERM,
// then SIGKILL after stopGrace.
func (p *Process) stop() {
	pgid := -p.cmd.Process.Pid
	if !p.Exited() {
		syscall.Kill(pgid, syscall.SIGCONT)
		syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
		}
	}
	syscall.Kill(pgid, syscall.SIGKILL) // and anything it left behind
	<-p.done
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the kube2lb process (not to its children).
func (p *Process) Signal(sig syscall.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// Wait waits for the process to exit and returns its exit error: nil for
// status 0, an *exec.ExitError otherwise. It does not time out; use Done
// to wait with a deadline.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode returns the exit status, or -1 while it runs or when it was
// killed by a signal.
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Logs returns everything the process wrote to standard error so far: its
// log (log/slog) and, on exit, the error.
func (p *Process) Logs() string { return p.stderr.String() }

// Stdout returns everything the process wrote to standard output so far
// (-dry-run's rendering, -version).
func (p *Process) Stdout() string { return p.stdout.String() }

// WaitLog waits until the logs contain substring and returns the first
// line holding it. It fails the test when Deadline passes or the process
// exits without logging it.
func (p *Process) WaitLog(t testing.TB, substring string) string {
	t.Helper()
	deadline := time.Now().Add(Deadline)
	for {
		logs := p.Logs()
		if i := strings.Index(logs, substring); i >= 0 {
			start := strings.LastIndexByte(logs[:i], '\n') + 1
			end := strings.IndexByte(logs[i:], '\n')
			if end < 0 {
				return logs[start:]
			}
			return logs[start : i+end]
		}
		if p.Exited() {
			t.Fatalf("kube2lb exited (%v) without logging %q; logs:\n%s", p.err, substring, logs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube2lb did not log %q within %s; logs:\n%s", substring, Deadline, logs)
		}
		time.Sleep(pollInterval)
	}
}

// Result is how a kube2lb run ended.
type Result struct {
	Code   int    // exit status; -1 when killed
	Stdout string // standard output
	Logs   string // standard error
}

// Run runs kube2lb with args to completion (-once, -dry-run, -version, a
// bad flag) and returns how it ended. It fails the test when the process
// is still running after twice Deadline (kube2lb gives up syncing after a
// minute in -once and -dry-run).
func Run(t testing.TB, args ...string) Result {
	t.Helper()
	p := Start(t, args...)
	select {
	case <-p.Done():
	case <-time.After(2 * Deadline):
		t.Fatalf("kube2lb %s still running after %s; logs:\n%s", strings.Join(args, " "), 2*Deadline, p.Logs())
	}
	return Result{Code: p.ExitCode(), Stdout: p.Stdout(), Logs: p.Logs()}
}

// WaitFile polls path until cond accepts its content and returns that
// content. A missing file is not an error: it is polled until it appears.
// It fails the test when Deadline passes, showing the last content.
func WaitFile(t testing.TB, path string, cond func(content string) bool) string {
	t.Helper()
	return WaitFileWithin(t, Deadline, path, cond)
}

// WaitFileWithin is WaitFile with its own deadline, for the few waits that
// must be longer than Deadline (a dead connection detected after 60 s).
func WaitFileWithin(t testing.TB, d time.Duration, path string, cond func(content string) bool) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile(path)
		if err == nil && cond(string(b)) {
			return string(b)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("wait for %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("wait for %s: not there after %s", path, d)
			}
			t.Fatalf("wait for %s: the condition still fails after %s; content:\n%s", path, d, b)
		}
		time.Sleep(pollInterval)
	}
}

// CountingNotifier returns a -notify value that appends one line to path
// at every notification; CountLines reads the count back.
func CountingNotifier(path string) string {
	return "command:echo x >> " + shellQuote(path)
}

// CountLines returns the number of lines of path; 0 when it does not exist.
func CountLines(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// WaitLines waits until path has at least n lines (see CountingNotifier)
// and returns the count, which may be more than n.
func WaitLines(t testing.TB, path string, n int) int {
	t.Helper()
	if n <= 0 {
		return CountLines(t, path)
	}
	content := WaitFile(t, path, func(s string) bool { return strings.Count(s, "\n") >= n })
	return strings.Count(content, "\n")
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// SyncBuffer is a bytes.Buffer safe for a writing process and reading
// tests.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
