// Command testreport reads `go test -json` from standard input and prints
// what a person needs from a long test run: one line per package, the
// output of every failed test, every skipped test with the reason it gave,
// and a closing count. It exits 1 when anything failed.
//
//	go test -json ./... | go run ./cmd/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type testKey struct{ pkg, test string }

func main() {
	failed, err := report(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// report summarises the events read from r onto w; failed says whether
// any test or package failed.
func report(r io.Reader, w io.Writer) (failed bool, err error) {
	var (
		output                 = map[testKey][]string{}
		skips                  []string
		passed, fails, skipped int
		pkgFailed              []string
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// Not an event: build errors and the like. Show them.
			fmt.Fprintln(w, string(line))
			continue
		}
		k := testKey{e.Package, e.Test}
		switch e.Action {
		case "output":
			output[k] = append(output[k], e.Output)
			if e.Test == "" && strings.HasPrefix(e.Output, "FAIL") {
				fmt.Fprint(w, e.Output)
			}
		case "pass":
			if e.Test == "" {
				fmt.Fprintf(w, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
			} else {
				passed++
			}
			delete(output, k)
		case "skip":
			if e.Test == "" {
				fmt.Fprintf(w, "ok  \t%s\t[no tests to run]\n", e.Package)
				break
			}
			skipped++
			skips = append(skips, fmt.Sprintf("%s %s: %s", e.Package, e.Test, skipReason(output[k])))
			delete(output, k)
		case "fail":
			if e.Test == "" {
				pkgFailed = append(pkgFailed, e.Package)
				// Package-level output holds build errors and panics.
				for _, l := range output[k] {
					fmt.Fprint(w, l)
				}
				fmt.Fprintf(w, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
			} else {
				fails++
				fmt.Fprintf(w, "--- FAIL: %s %s\n", e.Package, e.Test)
				for _, l := range output[k] {
					fmt.Fprint(w, "    ", strings.TrimLeft(l, " "))
				}
			}
			delete(output, k)
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	if len(skips) > 0 {
		sort.Strings(skips)
		fmt.Fprintf(w, "\nskipped tests (%d):\n", len(skips))
		for _, s := range skips {
			fmt.Fprintln(w, "  ", s)
		}
	}
	fmt.Fprintf(w, "\n%s: %d passed, %d failed, %d skipped\n", "tests", passed, fails, skipped)
	return fails > 0 || len(pkgFailed) > 0, nil
}

// skipReason is the last line a skipped test printed (its t.Skip message).
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") {
			continue
		}
		// "file_test.go:12: reason"
		if _, after, ok := strings.Cut(l, ".go:"); ok {
			if _, reason, ok := strings.Cut(after, ": "); ok {
				return reason
			}
		}
		return l
	}
	return "(no reason given)"
}
