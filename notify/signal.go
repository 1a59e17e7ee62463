package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// signals maps the names ParseSignal accepts, without the SIG prefix, to
// signals: those every Unix defines, and on Linux its own (signal_linux.go).
// Real-time signals are reachable by number.
var signals = map[string]syscall.Signal{
	"HUP":    syscall.SIGHUP,
	"INT":    syscall.SIGINT,
	"QUIT":   syscall.SIGQUIT,
	"ILL":    syscall.SIGILL,
	"TRAP":   syscall.SIGTRAP,
	"ABRT":   syscall.SIGABRT,
	"BUS":    syscall.SIGBUS,
	"FPE":    syscall.SIGFPE,
	"KILL":   syscall.SIGKILL,
	"USR1":   syscall.SIGUSR1,
	"SEGV":   syscall.SIGSEGV,
	"USR2":   syscall.SIGUSR2,
	"PIPE":   syscall.SIGPIPE,
	"ALRM":   syscall.SIGALRM,
	"TERM":   syscall.SIGTERM,
	"CHLD":   syscall.SIGCHLD,
	"CONT":   syscall.SIGCONT,
	"STOP":   syscall.SIGSTOP,
	"TSTP":   syscall.SIGTSTP,
	"TTIN":   syscall.SIGTTIN,
	"TTOU":   syscall.SIGTTOU,
	"URG":    syscall.SIGURG,
	"XCPU":   syscall.SIGXCPU,
	"XFSZ":   syscall.SIGXFSZ,
	"VTALRM": syscall.SIGVTALRM,
	"PROF":   syscall.SIGPROF,
	"WINCH":  syscall.SIGWINCH,
	"IO":     syscall.SIGIO,
	"SYS":    syscall.SIGSYS,
}

// aliases are other names of signals in signals (SIGIOT is SIGABRT), as
// the system defines them: ParseSignal accepts them, signalName never gives
// them.
var aliases map[string]syscall.Signal

// maxSignal is the highest signal number Linux accepts (SIGRTMAX).
const maxSignal = 64

// ParseSignal returns the signal named by s: a name with or without the SIG
// prefix, in any case (SIGHUP, HUP, hup, SigHup), or a number from 1 to 64
// (1 is SIGHUP). Signal 0, which only probes a process, is refused.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > maxSignal {
			return 0, fmt.Errorf("signal number %d out of range (want 1 to %d, or a name like SIGHUP)", n, maxSignal)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	if sig, ok := aliases[name]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q (want a name like SIGHUP, HUP or a number)", s)
}

// signalName returns the conventional name of sig ("SIGHUP") for logs and
// errors; syscall.Signal.String gives a description ("hangup") instead.
func signalName(sig syscall.Signal) string {
	for name, s := range signals {
		if s == sig {
			return "SIG" + name
		}
	}
	return "signal " + strconv.Itoa(int(sig))
}

// maxPID is the largest pid a kernel gives (below Linux's PID_MAX_LIMIT; the
// BSDs' are lower).
const maxPID = 1<<22 - 1

// parsePIDText reads a pid written in decimal digits, or a minus and
// digits (which checkPID refuses by name), no more digits than maxPID
// has: not "+2", not 2^32 + 2.
func parsePIDText(s string) (int, bool) {
	pid, err := strconv.Atoi(s)
	return pid, err == nil && len(s) <= 8 && s[0] != '+'
}

// checkPID refuses pids that cannot be a load balancer: 0 and negative pids
// address process groups (-1: every process); a number above maxPID is no
// process, and kill(2) would read its low 32 bits alone (4294967295 is
// -1); and kube2lb's own pid, or one of its threads' ids, which signal the
// whole process, would make it signal itself (SIGHUP re-renders: a
// loop). Pid 1 is allowed, as the original allowed it: in a container, an
// init such as tini or dumb-init forwards the signal to the load balancer
// it started.
func checkPID(pid int) error {
	if pid < 1 || pid > maxPID {
		return fmt.Errorf("pid %d refused (want a process id, 1 to %d)", pid, maxPID)
	}
	if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(pid)); pid == os.Getpid() || err == nil {
		return fmt.Errorf("pid %d is kube2lb itself", pid)
	}
	return nil
}

// sendSignal signals pid and explains the usual failures.
func sendSignal(pid int, sig syscall.Signal) error {
	err := syscall.Kill(pid, sig)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ESRCH):
		return fmt.Errorf("send %s to pid %d: %w", signalName(sig), pid, err)
	case errors.Is(err, syscall.EPERM):
		return fmt.Errorf("send %s to pid %d: %w (kube2lb must run as the same user, or with CAP_KILL, and share the pid namespace)", signalName(sig), pid, err)
	default:
		return fmt.Errorf("send %s to pid %d: %w", signalName(sig), pid, err)
	}
}

// lastSignalled is the process a notifier last signalled, so that it does
// not signal another one that got its pid since: once the load balancer
// has stopped, the system gives its pid to a later process (when it has
// gone through its pids), and SIGHUP or SIGUSR2 terminates most programs.
// A process is told from a later one by its start time (processStart);
// where that is unknown, nothing is checked.
type lastSignalled struct {
	mu    sync.Mutex
	pid   int         // 0: none yet
	start uint64      // processStart of pid then; 0: unknown
	file  os.FileInfo // the pidfile pid was read from, for pidfile:
}

// reused reports whether pid, read from the pidfile file (nil for pid:),
// now belongs to another process than the one signalled last: the same
// pid, another start time, and the pidfile not written since (a load
// balancer that restarts writes its pidfile again, even with the pid it
// had).
func (l *lastSignalled) reused(pid int, start uint64, file os.FileInfo) bool {
	l.mu.Lock()
	same := l.pid == pid && l.start != 0 && start != 0 && start != l.start &&
		(file == nil || l.file != nil && os.SameFile(file, l.file) && file.ModTime().Equal(l.file.ModTime()) && file.Size() == l.file.Size())
	l.mu.Unlock()
	return same
}

// startOf is processStart; tests replace it.
var startOf = processStart

// signalled remembers the process signalled. A start time /proc could
// not tell this time (EMFILE) keeps the one known of the same pid.
func (l *lastSignalled) signalled(pid int, start uint64, file os.FileInfo) {
	l.mu.Lock()
	if start == 0 && pid == l.pid {
		start = l.start
	}
	l.pid, l.start, l.file = pid, start, file
	l.mu.Unlock()
}

// pidNotifier signals a fixed process: pid:SIGNAL:PID.
type pidNotifier struct {
	spec string
	sig  syscall.Signal
	pid  int
	last lastSignalled
}

func parsePID(spec, arg string, logger *slog.Logger) (Notifier, error) {
	const want = "want pid:SIGNAL:PID, e.g. pid:SIGHUP:1234"
	sig, rest, err := parseSignalSpec(spec, arg, "pid", want)
	if err != nil {
		return nil, err
	}
	pid, ok := parsePIDText(rest)
	if !ok {
		return nil, specError(spec, "pid %q is not a process id (%s)", rest, want)
	}
	if err := checkPID(pid); err != nil {
		return nil, specError(spec, "%v", err)
	}
	if pid == 1 {
		logger.Warn("pid 1 is init: in a container, an init such as tini forwards the signal to the load balancer; on a host, the init system gets it", "notify", spec)
	}
	return &pidNotifier{spec: spec, sig: sig, pid: pid}, nil
}

func (p *pidNotifier) Notify(ctx context.Context, n Notification) error {
	start, _ := startOf(p.pid)
	if p.last.reused(p.pid, start, nil) {
		return fmt.Errorf("pid %d is no longer the process kube2lb signalled, and is not signalled (the load balancer stopped: give kube2lb its new pid, or use pidfile:)", p.pid)
	}
	if err := sendSignal(p.pid, p.sig); err != nil {
		return err
	}
	p.last.signalled(p.pid, start, nil)
	return nil
}

func (p *pidNotifier) String() string { return p.spec }

// pidfileNotifier signals the process whose pid a file holds:
// pidfile:SIGNAL:PATH. The file is read at every notification because the
// load balancer may have restarted with a new pid.
type pidfileNotifier struct {
	spec string
	sig  syscall.Signal
	path string
	last lastSignalled
}

func parsePidfile(spec, arg string) (Notifier, error) {
	const want = "want pidfile:SIGNAL:PATH, e.g. pidfile:SIGUSR2:/run/haproxy.pid"
	sig, path, err := parseSignalSpec(spec, arg, "pidfile path", want)
	if err != nil {
		return nil, err
	}
	return &pidfileNotifier{spec: spec, sig: sig, path: path}, nil
}

func (p *pidfileNotifier) Notify(ctx context.Context, n Notification) error {
	pid, file, err := readPidfile(p.path)
	if err != nil {
		return err
	}
	start, _ := startOf(pid)
	if p.last.reused(pid, start, file) {
		return fmt.Errorf("pidfile %s: stale pidfile: pid %d is no longer the process kube2lb signalled (the load balancer stopped and left it), and is not signalled", p.path, pid)
	}
	if err := sendSignal(pid, p.sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pidfile %s: %w (stale pidfile: is the load balancer running?)", p.path, err)
		}
		return fmt.Errorf("pidfile %s: %w", p.path, err)
	}
	p.last.signalled(pid, start, file)
	return nil
}

func (p *pidfileNotifier) String() string { return p.spec }

// maxPidfile bounds what readPidfile reads, in case the path names
// something that is not a pidfile.
const maxPidfile = 64

// readPidfile returns the pid in path, one decimal number, optionally
// surrounded by white space (a trailing newline), and the file's
// information as it was read. Every error names the file.
func readPidfile(path string) (int, os.FileInfo, error) {
	// Non-blocking: a FIFO at path would block the open until a writer
	// came, past every deadline, and the notifications after it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("read pidfile: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, nil, fmt.Errorf("read pidfile: %w", err)
	}
	if !info.Mode().IsRegular() {
		return 0, nil, fmt.Errorf("pidfile %s is not a regular file (%s)", path, info.Mode().Type())
	}
	pid, err := pidIn(path, f)
	return pid, info, err
}

// pidIn reads the pid of the pidfile path from r.
func pidIn(path string, r io.Reader) (int, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxPidfile+1))
	if err != nil {
		return 0, fmt.Errorf("read pidfile: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, fmt.Errorf("pidfile %s is empty (is the load balancer running?)", path)
	}
	if len(b) > maxPidfile {
		return 0, fmt.Errorf("pidfile %s: does not hold a pid (more than %d bytes)", path, maxPidfile)
	}
	pid, ok := parsePIDText(string(b))
	if !ok {
		return 0, fmt.Errorf("pidfile %s: %q is not a pid", path, b)
	}
	if err := checkPID(pid); err != nil {
		return 0, fmt.Errorf("pidfile %s: %w", path, err)
	}
	return pid, nil
}
