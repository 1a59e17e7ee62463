package main

import (
	"bytes"
	"fmt"
	"time"
)

// The targets of issue 9, with its memory target restated by cluster size
// (BENCHMARKS.md, "Targets"): they are measured here, never asserted by a
// test, and a run that misses one says so in its table and its exit status.
const (
	startTarget = time.Second            // start to the first configuration
	p99Target   = 100 * time.Millisecond // change to the notifier, -wait 0
	binTarget   = 9_000_000              // bytes: the stripped static binary
	// Peak RSS: under 40 MB for clusters of up to smallServices services
	// (the second fixture), under 100 MiB above (the 10,000).
	smallServices  = 3000
	smallRSSTarget = 40_000_000 // bytes
	largeRSSTarget = 100 << 20  // bytes
)

// A check is one target applied to one result.
type check struct {
	name  string
	limit float64
	value func(result) float64
	show  func(float64) string
}

func showMs(v float64) string { return ms(time.Duration(v)) }

func showBytes(v float64) string {
	return fmt.Sprintf("%.1f MB (%.1f MiB)", v/1e6, v/(1<<20))
}

// checks returns the targets that apply to a fixture of that many
// services: the start-up and latency ones at the scale, and the
// memory one that its size calls for.
func checks(services int) []check {
	peak := func(res result) float64 { return float64(res.HWMEnd) * 1024 }
	if services <= smallServices {
		return []check{{"peak RSS < 40 MB", smallRSSTarget, peak, showBytes}}
	}
	return []check{
		{"first configuration within 1 s", float64(startTarget), func(res result) float64 { return float64(res.FirstConfig) }, showMs},
		{"p99 change → notifier ran < 100 ms", float64(p99Target), func(res result) float64 {
			return float64(percentile(res.ToNotify, 99))
		}, showMs},
		{"peak RSS < 100 MiB", largeRSSTarget, peak, showBytes},
	}
}

// measured reports whether res counts for the targets: a start-up-only
// case (-nodes-full, whose configuration is a GiB) does not.
func measured(res result) bool { return len(res.ToNotify) > 0 }

// evaluate applies the targets to the runs: the Markdown table, and a line
// per target missed.
func (r report) evaluate() (table string, missed []string) {
	var b bytes.Buffer
	b.WriteString("\n| target | fixture |")
	var names []string
	if len(r.runs) > 0 {
		for _, res := range r.runs[0].results {
			if measured(res) {
				names = append(names, res.Case.Name)
				fmt.Fprintf(&b, " %s |", res.Case.Name)
			}
		}
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
		for _, c := range checks(run.fixture.Services) {
			fmt.Fprintf(&b, "| %s | %d services |", c.name, run.fixture.Services)
			for _, name := range names {
				cell := "–"
				for _, res := range run.results {
					if res.Case.Name != name || !measured(res) {
						continue
					}
					v := c.value(res)
					ok := v < c.limit
					cell = verdict(ok) + ": " + c.show(v)
					if !ok {
						missed = append(missed, fmt.Sprintf("%s at %d services, %s: %s", c.name, run.fixture.Services, name, c.show(v)))
					}
				}
				fmt.Fprintf(&b, " %s |", cell)
			}
			b.WriteByte('\n')
		}
	}
	ok := r.binSize > 0 && r.binSize < binTarget
	fmt.Fprintf(&b, "| binary < 9 MB | |")
	for i := range names {
		if i == 0 {
			fmt.Fprintf(&b, " %s: %d B |", verdict(ok), r.binSize)
		} else {
			b.WriteString(" |")
		}
	}
	b.WriteByte('\n')
	if !ok {
		missed = append(missed, fmt.Sprintf("binary < 9 MB: %d B", r.binSize))
	}
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
