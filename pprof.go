//go:build pprof

package main

// Profiling builds (go build -tags pprof): KUBE2LB_CPUPROFILE=PATH writes
// a CPU profile of the process's first KUBE2LB_CPUPROFILE_SECONDS (default
// 30) to PATH, with %d replaced by the process ID, starting
// KUBE2LB_CPUPROFILE_DELAY seconds after start (default 0: from the start;
// a delay past the first configuration profiles changes alone).
// KUBE2LB_HEAPPROFILE=PATH writes a heap profile (live objects, after a
// collection) KUBE2LB_HEAPPROFILE_DELAY seconds after start (default 5).
// KUBE2LB_MEMPEAK=PATH appends, at each new peak of the RSS (sampled every
// 10 ms), what the runtime's memory classes were then.
// Release builds leave this file out.

import (
	"fmt"
	"os"
	"runtime"
	rmetrics "runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

func init() {
	cpuProfile()
	heapProfile()
	memPeak()
}

// memPeak (KUBE2LB_MEMPEAK=PATH) samples the RSS every 10 ms and, at each
// new peak, appends what the runtime says makes it up to PATH: where and
// when a peak RSS comes from.
func memPeak() {
	path := os.Getenv("KUBE2LB_MEMPEAK")
	if path == "" {
		return
	}
	path = strings.ReplaceAll(path, "%d", strconv.Itoa(os.Getpid()))
	if f, err := os.Create(path); err == nil { // this run's peaks alone
		f.Close()
	}
	names := []string{
		"/memory/classes/heap/objects:bytes",
		"/memory/classes/heap/unused:bytes",
		"/memory/classes/heap/free:bytes",
		"/memory/classes/heap/released:bytes",
		"/memory/classes/heap/stacks:bytes",
		"/memory/classes/metadata/other:bytes",
		"/memory/classes/metadata/mspan/inuse:bytes",
		"/memory/classes/other:bytes",
		"/memory/classes/total:bytes",
		"/gc/heap/goal:bytes",
		"/gc/heap/live:bytes",
		"/gc/cycles/total:gc-cycles",
	}
	samples := make([]rmetrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	start := time.Now()
	go func() {
		var peak int64
		for range time.Tick(10 * time.Millisecond) {
			st, err := os.ReadFile("/proc/self/status")
			if err != nil {
				return
			}
			var rss int64
			for _, l := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
					rss, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				}
			}
			if rss <= peak {
				continue
			}
			peak = rss
			rmetrics.Read(samples)
			var b strings.Builder
			fmt.Fprintf(&b, "at %v\n", time.Since(start).Round(time.Millisecond))
			for _, l := range strings.Split(string(st), "\n") {
				if strings.HasPrefix(l, "Rss") || strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "VmHWM") {
					b.WriteString(l + "\n")
				}
			}
			for _, s := range samples {
				switch {
				case s.Value.Kind() != rmetrics.KindUint64:
				case strings.HasSuffix(s.Name, ":bytes"):
					fmt.Fprintf(&b, "%s %.1f MiB\n", s.Name, float64(s.Value.Uint64())/(1<<20))
				default:
					fmt.Fprintf(&b, "%s %d\n", s.Name, s.Value.Uint64())
				}
			}
			if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
				f.WriteString(b.String())
				f.Close()
			}
		}
	}()
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
