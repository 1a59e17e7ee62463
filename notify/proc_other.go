//go:build !linux

package notify

// processStart cannot tell processes apart outside Linux: no check.
func processStart(pid int) (start uint64, ok bool) { return 0, false }
