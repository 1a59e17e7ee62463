package notify

import "syscall"

// Linux's own signals and its other names of signals, which the original
// kube2lb accepted too.
func init() {
	signals["PWR"] = syscall.SIGPWR
	aliases = map[string]syscall.Signal{
		"CLD":    syscall.SIGCHLD,
		"IOT":    syscall.SIGABRT,
		"POLL":   syscall.SIGIO,
		"UNUSED": syscall.SIGSYS,
	}
}
