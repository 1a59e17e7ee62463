package main

import (
	"bytes"
	"fmt"
	"time"
)

// The targets of issue 9, its memory target restated by cluster size in
// session 19 (BENCHMARKS.md, "Targets"). They are measured by this
// command, never asserted by a test; a run that misses one says so in its
// table and exits 1. One run on a busy machine can miss a timing target
// that the code meets: run it again before looking for a cause.
const (
	startTarget = time.Second            // start to the first configuration
	p99Target   = 100 * time.Millisecond // change to the notifier, -wait 0
	binTarget   = 9_000_000              // bytes: the stripped static binary
	// Peak RSS: under 40 MB for clusters of up to smallServices Services
	// (the second fixture), under 100 MiB for the first, the issue's
	// 10,000. The 40 MB there is still shown, as a row that does
	// not count.
	smallServices  = 3000
	smallRSSTarget = 40_000_000 // bytes
	largeRSSTarget = 100 << 20  // bytes
)

// A check is one target, applied to each case's result.
type check struct {
	name  string
	limit float64
	value func(result) (float64, bool) // false: not measured
	show  func(float64) string
	// informational checks are shown and never missed.
	informational bool
}

func showMs(v float64) string { return fmt.Sprintf("%.2f ms", v/float64(time.Millisecond)) }

func showMB(v float64) string  { return fmt.Sprintf("%.2f MB (%.1f MiB)", v/1e6, v/(1<<20)) }
func showMiB(v float64) string { return fmt.Sprintf("%.1f MiB (%.2f MB)", v/(1<<20), v/1e6) }

// showSize writes a size in bytes with thousands separators.
func showSize(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s + " B"
}

// checks returns the targets a fixture is held to: the at the
// large one, the memory target of small clusters at the second.
func checks(small bool) []check {
	peak := func(res result) (float64, bool) { return float64(res.HWMEnd) * 1024, true }
	if small {
		return []check{{name: "peak RSS < 40 MB", limit: smallRSSTarget, value: peak, show: showMB}}
	}
	return []check{
		{name: "first configuration < 1 s", limit: float64(startTarget), show: showMs,
			value: func(res result) (float64, bool) { return float64(res.FirstConfig), true }},
		{name: "p99 change → notifier ran < 100 ms", limit: float64(p99Target), show: showMs,
			value: func(res result) (float64, bool) {
				if len(res.ToNotify) == 0 {
					return 0, false
				}
				return float64(percentile(res.ToNotify, 99)), true
			}},
		{name: "peak RSS < 100 MiB", limit: largeRSSTarget, value: peak, show: showMiB},
		{name: "peak RSS < 40 MB (issue 9 as filed; restated, not counted)", limit: smallRSSTarget, value: peak, show: showMB, informational: true},
	}
}

// evaluate applies the targets to the runs: the Markdown table, and a line
// per target missed.
func (r report) evaluate() (table string, missed []string) {
	var names []string
	if len(r.runs) > 0 {
		for _, res := range r.runs[0].results {
			if !res.Case.Unchecked {
				names = append(names, res.Case.Name)
			}
		}
	}
	var b bytes.Buffer
	b.WriteString("\nTargets (BENCHMARKS.md, \"Targets\": issue 9's, its peak RSS restated by cluster size):\n\n| target | fixture |")
	for _, name := range names {
		fmt.Fprintf(&b, " %s |", name)
	}
	b.WriteString("\n|---|---|")
	for range names {
		b.WriteString("---:|")
	}
	b.WriteByte('\n')
	verdict := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	for _, run := range r.runs {
		for _, c := range checks(run.small) {
			fmt.Fprintf(&b, "| %s | %d services |", c.name, run.fixture.Services)
			for _, name := range names {
				cell := "–"
				for _, res := range run.results {
					if res.Case.Name != name {
						continue
					}
					v, ok := c.value(res)
					if !ok {
						cell = "not measured"
						break
					}
					met := v < c.limit
					cell = verdict(met) + ": " + c.show(v)
					if !met && !c.informational {
						missed = append(missed, fmt.Sprintf("%s at %d services, %s: %s", c.name, run.fixture.Services, name, c.show(v)))
					}
				}
				fmt.Fprintf(&b, " %s |", cell)
			}
			b.WriteByte('\n')
		}
	}
	cell := "**no**: size unknown"
	if r.binSize > 0 {
		cell = verdict(r.binSize < binTarget) + ": " + showSize(r.binSize)
	}
	if r.binSize <= 0 || r.binSize >= binTarget {
		missed = append(missed, "binary < 9 MB: "+cell[len("**no**: "):])
	}
	fmt.Fprintf(&b, "| binary < 9 MB | – |")
	for range names {
		fmt.Fprintf(&b, " %s |", cell)
	}
	b.WriteByte('\n')
	return b.String(), missed
}

func (r report) targets() string {
	t, _ := r.evaluate()
	return t
}

func (r report) missed() []string {
	_, m := r.evaluate()
	return m
}
