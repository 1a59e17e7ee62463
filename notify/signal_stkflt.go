//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package notify

import "syscall"

// SIGSTKFLT is a Linux signal but on MIPS, which has none.
func init() { signals["STKFLT"] = syscall.SIGSTKFLT }
