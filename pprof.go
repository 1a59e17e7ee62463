//go:build pprof

package main

// Profiling builds (go build -tags pprof): KUBE2LB_CPUPROFILE=PATH writes
// a CPU profile of the process's first KUBE2LB_CPUPROFILE_SECONDS (default
// 30) to PATH, with %d replaced by the process ID, starting
// KUBE2LB_CPUPROFILE_DELAY seconds after start (default 0: from the start;
// a delay past the first configuration profiles changes alone).
// KUBE2LB_HEAPPROFILE=PATH writes a heap profile (live objects, after a
// collection) KUBE2LB_HEAPPROFILE_DELAY seconds after start (default 5).
// Release builds leave this file out.

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

func init() {
	cpuProfile()
	heapProfile()
}

func heapProfile() {
	path := os.Getenv("KUBE2LB_HEAPPROFILE")
	if path == "" {
		return
	}
	path = strings.ReplaceAll(path, "%d", strconv.Itoa(os.Getpid()))
	delay, err := strconv.ParseFloat(os.Getenv("KUBE2LB_HEAPPROFILE_DELAY"), 64)
	if err != nil || delay <= 0 {
		delay = 5
	}
	time.AfterFunc(time.Duration(delay*float64(time.Second)), func() {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "heap profile:", err)
			return
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			fmt.Fprintln(os.Stderr, "heap profile:", err)
		}
	})
}

func cpuProfile() {
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
