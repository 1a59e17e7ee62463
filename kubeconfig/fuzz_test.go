package kubeconfig

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseYAML checks the YAML reader on any input: no panic, no hang
// (bounded work: nesting and size are limited), errors that carry a
// position, and what it accepts survives a round trip through JSON, which
// it must read back the same.
func FuzzParseYAML(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.*")
	more, _ := filepath.Glob("testdata/corpus/merge/*.yaml")
	for _, file := range append(files, more...) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"a: b\n", "- a\n- b: c\n  d: e\n", "a:\n- x\nb: {c: d, e: [f, 'g', \"h\"]}\n",
		"a: |2\n\n    x\n  y\n", "a: >-\n  x\n\n   y\n  z\n", "a: \"x\\\n  y\\u00e9\\U0001F600\"\n",
		"a: 'it''s\n\n  folded'\n", "--- # c\na: b\n...\n", "- - - a\n  - b\n", "? a\n", "a: &x b\n",
		"{\"a\": [1, {\"b\": null}]}", "a: b # c\n#d\n  # e\ne: f\r\n", "\ufeffa: ~\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		n, err := parseYAML("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		v := toValue(n)
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		n2, err := parseYAML("json", b)
		if err != nil {
			t.Fatalf("reading back %s: %v", b, err)
		}
		if diff := cmp.Diff(v, toValue(n2)); diff != "" {
			t.Fatalf("round trip through %s (-first +second):\n%s", b, diff)
		}
		// The kubeconfig decoder must cope with any tree too.
		decodeKubeconfig("f", data)
	})
}
