//go:build pprof

package main

// Profiling builds (go build -tags pprof): KUBE2LB_CPUPROFILE=PATH writes
// a CPU profile of the process's first KUBE2LB_CPUPROFILE_SECONDS (default
// 30) to PATH, with %d replaced by the process ID, starting
// KUBE2LB_CPUPROFILE_DELAY seconds after start (default 0: from the start;
// a delay past the first configuration profiles changes alone). Release
// builds leave this file out.

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

func init() {
	path := os.Getenv("KUBE2LB_CPUPROFILE")
	if path == "" {
		return
	}
	path = strings.ReplaceAll(path, "%d", strconv.Itoa(os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpu profile:", err)
		return
	}
	secs, err := strconv.Atoi(os.Getenv("KUBE2LB_CPUPROFILE_SECONDS"))
	if err != nil || secs <= 0 {
		secs = 30
	}
	delay, _ := strconv.ParseFloat(os.Getenv("KUBE2LB_CPUPROFILE_DELAY"), 64)
	time.AfterFunc(time.Duration(delay*float64(time.Second)), func() {
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "cpu profile:", err)
			f.Close()
			return
		}
		time.AfterFunc(time.Duration(secs)*time.Second, func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	})
}
