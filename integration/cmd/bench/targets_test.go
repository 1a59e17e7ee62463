package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func caseResult(name string, first time.Duration, peakKB int64, notify ...time.Duration) result {
	return result{Case: benchCase{Name: name}, FirstConfig: first, HWMEnd: peakKB, ToNotify: notify}
}

func TestTargetsMet(t *testing.T) {
	r := report{binSize: 8_999_074, runs: []fixtureRun{
		{fixture{Services: 10000}, []result{
			caseResult("endpoints", 700*time.Millisecond, 80<<10, 30*time.Millisecond, 60*time.Millisecond),
			caseResult("nodes", 500*time.Millisecond, 62<<10, 40*time.Millisecond),
			caseResult("nodes, all", 9*time.Second, 2<<20), // start-up only: not checked
		}},
		{fixture{Services: 3000}, []result{
			caseResult("endpoints", 200*time.Millisecond, 35<<10, 20*time.Millisecond),
			caseResult("nodes", 200*time.Millisecond, 30<<10, 20*time.Millisecond),
		}},
	}}
	table, missed := r.evaluate()
	if len(missed) > 0 {
		t.Errorf("missed %q, want none", missed)
	}
	want := `
| target | fixture | endpoints | nodes |
|---|---|---:|---:|
| first configuration within 1 s | 10000 services | yes: 700.0 ms | yes: 500.0 ms |
| p99 change → notifier ran < 100 ms | 10000 services | yes: 60.0 ms | yes: 40.0 ms |
| peak RSS < 100 MiB | 10000 services | yes: 83.9 MB (80.0 MiB) | yes: 65.0 MB (62.0 MiB) |
| peak RSS < 40 MB | 3000 services | yes: 36.7 MB (35.0 MiB) | yes: 31.5 MB (30.0 MiB) |
| binary < 9 MB | | yes: 8999074 B | |
`
	if table != want {
		t.Errorf("table:\n%s\nwant:\n%s", table, want)
	}
}

func TestTargetsMissed(t *testing.T) {
	r := report{binSize: 9_000_000, runs: []fixtureRun{
		{fixture{Services: 10000}, []result{
			caseResult("endpoints", time.Second, 100<<10, 100*time.Millisecond),
		}},
		{fixture{Services: 3000}, []result{
			caseResult("endpoints", 0, 39063, time.Millisecond), // 40,000,512 bytes
		}},
	}}
	table, missed := r.evaluate()
	want := []string{
		"first configuration within 1 s at 10000 services, endpoints: 1000.0 ms",
		"p99 change → notifier ran < 100 ms at 10000 services, endpoints: 100.0 ms",
		"peak RSS < 100 MiB at 10000 services, endpoints: 104.9 MB (100.0 MiB)",
		"peak RSS < 40 MB at 3000 services, endpoints: 40.0 MB (38.1 MiB)",
		"binary < 9 MB: 9000000 B",
	}
	if !slices.Equal(missed, want) {
		t.Errorf("missed:\n%s\nwant:\n%s", strings.Join(missed, "\n"), strings.Join(want, "\n"))
	}
	if n := strings.Count(table, "**no**"); n != len(want) {
		t.Errorf("table has %d **no**, want %d:\n%s", n, len(want), table)
	}
}
