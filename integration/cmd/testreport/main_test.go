package main

import (
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:12: haproxy not installed\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: boom\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestC"}`,
		`{"Action":"fail","Package":"p","Elapsed":1.5}`,
		`{"Action":"pass","Package":"q","Elapsed":0.25}`,
		`# q/x [build failed]`,
	}, "\n")
	var out strings.Builder
	failed, err := report(strings.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("failed = false, want true")
	}
	for _, want := range []string{
		"--- FAIL: p TestC\n    c_test.go:3: boom\n",
		"FAIL\tp\t1.500s\n",
		"ok  \tq\t0.250s\n",
		"skipped tests (1):\n   p TestB: haproxy not installed\n",
		"# q/x [build failed]\n",
		"\ntests: 1 passed, 1 failed, 1 skipped\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}

	failed, err = report(strings.NewReader(`{"Action":"pass","Package":"p","Test":"TestA"}`), &out)
	if err != nil || failed {
		t.Errorf("all passing: failed = %v, err = %v", failed, err)
	}
}
