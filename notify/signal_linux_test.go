package notify

import (
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// TestLinuxSignalNames checks the names the original kube2lb accepted on
// Linux besides those of every Unix, and that the aliases never name a
// signal in logs.
func TestLinuxSignalNames(t *testing.T) {
	names := map[string]syscall.Signal{
		"SIGPWR": syscall.SIGPWR, "pwr": syscall.SIGPWR,
		"SIGCLD": syscall.SIGCHLD, "SIGIOT": syscall.SIGABRT, "SIGPOLL": syscall.SIGIO, "SIGUNUSED": syscall.SIGSYS,
	}
	if !strings.HasPrefix(runtime.GOARCH, "mips") { // MIPS has no SIGSTKFLT
		names["SIGSTKFLT"] = syscall.Signal(16)
	}
	for in, want := range names {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %d", in, got, err, want)
		}
	}
	for sig, want := range map[syscall.Signal]string{
		syscall.SIGCHLD: "SIGCHLD", syscall.SIGABRT: "SIGABRT", syscall.SIGIO: "SIGIO", syscall.SIGSYS: "SIGSYS", syscall.SIGPWR: "SIGPWR",
	} {
		for range 20 { // map order: an alias must never win
			if got := signalName(sig); got != want {
				t.Fatalf("signalName(%d) = %q, want %q", sig, got, want)
			}
		}
	}
}
