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

// checkPID refuses pids that cannot be a load balancer: 0 and negative pids
// address process groups (-1: every process), and kube2lb's own pid would
// make it signal itself (SIGHUP re-renders: a loop). Pid 1 is allowed, as
// the original allowed it: in a container, an init such as tini or
// dumb-init forwards the signal to the load balancer it started.
func checkPID(pid int) error {
	if pid < 1 {
		return fmt.Errorf("pid %d refused (want a process id, 1 or more)", pid)
	}
	if pid == os.Getpid() {
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

// pidNotifier signals a fixed process: pid:SIGNAL:PID.
type pidNotifier struct {
	spec string
	sig  syscall.Signal
	pid  int
}

func parsePID(spec, arg string, logger *slog.Logger) (Notifier, error) {
	const want = "want pid:SIGNAL:PID, e.g. pid:SIGHUP:1234"
	sig, rest, err := parseSignalSpec(spec, arg, "pid", want)
	if err != nil {
		return nil, err
	}
	pid, err := strconv.Atoi(rest)
	if err != nil {
		return nil, specError(spec, "pid %q is not a number (%s)", rest, want)
	}
	if err := checkPID(pid); err != nil {
		return nil, specError(spec, "%v", err)
	}
	if pid == 1 {
		logger.Warn("pid 1 is the init process of kube2lb's pid namespace: in a container, an init such as tini forwards the signal to the load balancer; on a host, the init system gets it", "notify", spec)
	}
	return &pidNotifier{spec: spec, sig: sig, pid: pid}, nil
}

func (p *pidNotifier) Notify(ctx context.Context, n Notification) error {
	return sendSignal(p.pid, p.sig)
}

func (p *pidNotifier) String() string { return p.spec }

// pidfileNotifier signals the process whose pid a file holds:
// pidfile:SIGNAL:PATH. The file is read at every notification because the
// load balancer may have restarted with a new pid.
type pidfileNotifier struct {
	spec string
	sig  syscall.Signal
	path string
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
	pid, err := readPidfile(p.path)
	if err != nil {
		return err
	}
	if err := sendSignal(pid, p.sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pidfile %s: %w (stale pidfile: is the load balancer running?)", p.path, err)
		}
		return fmt.Errorf("pidfile %s: %w", p.path, err)
	}
	return nil
}

func (p *pidfileNotifier) String() string { return p.spec }

// maxPidfile bounds what readPidfile reads, in case the path names
// something that is not a pidfile.
const maxPidfile = 64

// readPidfile returns the pid in path: one decimal number, optionally
// surrounded by white space (a trailing newline). Every error names the file.
func readPidfile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read pidfile: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPidfile+1))
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
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, fmt.Errorf("pidfile %s: %q is not a pid", path, b)
	}
	if err := checkPID(pid); err != nil {
		return 0, fmt.Errorf("pidfile %s: %w", path, err)
	}
	return pid, nil
}
