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
	fields := bytes.Fields(b[i+1:])
	const startField = 22 - 3 // fields 1 and 2 are pid and comm
	if len(fields) <= startField {
		return 0, false
	}
	start, err := strconv.ParseUint(string(fields[startField]), 10, 64)
	return start, err == nil
}
