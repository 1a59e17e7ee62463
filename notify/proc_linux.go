package notify

import (
	"bytes"
	"os"
	"strconv"
)

// processStart returns when the process pid started, in clock ticks since
// boot (the 22nd field of /proc/PID/stat): with the pid, what tells a
// process from a later one the system gave its pid. ok is false when /proc
// cannot tell (no such process, /proc not mounted, or hidden).
func processStart(pid int) (start uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return statStart(b)
}

// statStart reads the start time out of a /proc/PID/stat line: pid
// (comm) state and 49 more fields. comm may hold spaces and parentheses,
// so the fields are counted from the last ')'.
func statStart(b []byte) (uint64, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	// The fields after comm, from 3 (state), one space apart.
	field, start := 2, -1
	for j := i + 1; j <= len(b); j++ {
		if j < len(b) && b[j] != ' ' && b[j] != '\n' {
			if start < 0 {
				start = j
			}
			continue
		}
		if start < 0 {
			continue
		}
		if field++; field == 22 {
			n, err := strconv.ParseUint(string(b[start:j]), 10, 64)
			return n, err == nil
		}
		start = -1
	}
	return 0, false
}
