package kubeconfig

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// toValue turns a node into plain Go values for comparisons: map[string]any,
// []any, string, bool (plain true/false only) and nil.
func toValue(n *node) any {
	switch n.kind {
	case scalarNode:
		if n.plain {
			switch n.str {
			case "true", "True", "TRUE":
				return true
			case "false", "False", "FALSE":
				return false
			}
		}
		return n.str
	case mapNode:
		m := map[string]any{}
		for i, k := range n.keys {
			m[k] = toValue(n.vals[i])
		}
		return m
	case seqNode:
		s := []any{}
		for _, it := range n.items {
			s = append(s, toValue(it))
		}
		return s
	}
	return nil
}

type m = map[string]any
type l = []any

func TestParseYAML(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"empty", "", nil},
		{"comments only", "# a\n\n  # b\n", nil},
		{"doc start", "---\na: b\n", m{"a": "b"}},
		{"doc start comment", "--- # x\na: b\n", m{"a": "b"}},
		{"doc end", "a: b\n...\n# bye\n", m{"a": "b"}},
		{"nested", "a:\n  b:\n    c: d\n  e: f\ng: h\n", m{"a": m{"b": m{"c": "d"}, "e": "f"}, "g": "h"}},
		{"seq indented", "a:\n  - x\n  - y\n", m{"a": l{"x", "y"}}},
		{"seq not indented", "a:\n- x\n- y\nb: c\n", m{"a": l{"x", "y"}, "b": "c"}},
		{"seq of maps", "a:\n- name: x\n  v: 1\n- name: y\n  w:\n    z: 2\n", m{"a": l{m{"name": "x", "v": "1"}, m{"name": "y", "w": m{"z": "2"}}}}},
		{"seq item on next line", "-\n  a: b\n- c\n-\n", l{m{"a": "b"}, "c", nil}},
		{"nested compact seq", "- - a\n  - b\n- c\n", l{l{"a", "b"}, "c"}},
		{"wide item indent", "-   a: b\n    c: d\n", l{m{"a": "b", "c": "d"}}},
		{"nulls", "a:\nb: ~\nc: null\nd: NULL\ne: 'null'\n", m{"a": nil, "b": nil, "c": nil, "d": nil, "e": "null"}},
		{"bools", "a: true\nb: False\nc: \"true\"\n", m{"a": true, "b": false, "c": "true"}},
		{"plain with colons", "a: arn:aws:eks:us-west-2:1:cluster/x\nb: https://h:6443/p?q=1#f\nc: Mon, 01 Jan 2024 10:00:00 UTC\n",
			m{"a": "arn:aws:eks:us-west-2:1:cluster/x", "b": "https://h:6443/p?q=1#f", "c": "Mon, 01 Jan 2024 10:00:00 UTC"}},
		{"comments", "a: b # c\nd: 'e' # f\n# g\nh: i#j\n", m{"a": "b", "d": "e", "h": "i#j"}},
		{"single quotes", "a: 'it''s # not a comment'\n", m{"a": "it's # not a comment"}},
		{"double quotes", `a: "t\tab \"q\" \\ \u00e9 \x41 \U0001F600 \/"` + "\n", m{"a": "t\tab \"q\" \\ é A 😀 /"}},
		{"surrogate pair", `a: "\ud83d\ude00"` + "\n", m{"a": "😀"}},
		{"quoted keys", "\"a b\": 1\n'c': 2\n", m{"a b": "1", "c": "2"}},
		{"multi-line plain", "a: one two\n  three\n\n  four\nb: x\n", m{"a": "one two three\nfour", "b": "x"}},
		{"multi-line double", "a: \"one\n  two\\\n  three\"\n", m{"a": "one twothree"}},
		{"multi-line single", "a: 'one\n\n  two'\n", m{"a": "one\ntwo"}},
		{"literal", "a: |\n  x\n   y\n\n  z\n\nb: c\n", m{"a": "x\n y\n\nz\n", "b": "c"}},
		{"literal strip", "a: |-\n  x\n  y\n", m{"a": "x\ny"}},
		{"literal keep", "a: |+\n  x\n\nb: c\n", m{"a": "x\n\n", "b": "c"}},
		{"literal keep at end", "a: |+\n  x\n\n", m{"a": "x\n\n"}},
		{"folded", "a: >\n  x\n  y\n\n  z\n    w\n  v\n", m{"a": "x y\nz\n  w\nv\n"}},
		{"explicit indent", "a:\n  b: |2\n\n      hint\n\n      more\n  c: d\n", m{"a": m{"b": "\n  hint\n\n  more\n", "c": "d"}}},
		{"flow", "a: {}\nb: []\nc: {cluster: x, user: y}\nd: [1, 'two', \"three\"]\n",
			m{"a": m{}, "b": l{}, "c": m{"cluster": "x", "user": "y"}, "d": l{"1", "two", "three"}}},
		{"flow nested multi-line", "a: {b: [1,\n  2], c: {d: e}}\n", m{"a": m{"b": l{"1", "2"}, "c": m{"d": "e"}}}},
		{"json", "{\n  \"a\": {\"b\": [1, true, null, \"x\\ny\"]},\n\t\"c\": \"\"\n}\n", m{"a": m{"b": l{"1", true, nil, "x\ny"}}, "c": ""}},
		{"crlf", "a:\r\n  - b\r\n  - 'c'\r\nd: |\r\n  e\r\n", m{"a": l{"b", "c"}, "d": "e\n"}},
		{"bom", "\ufeffa: b\n", m{"a": "b"}},
		{"tab after colon", "a:\tb\n", m{"a": "b"}},
		{"no final newline", "a: b", m{"a": "b"}},
		{"scalar doc", "hello\n", "hello"},
		{"indented document", "  a: b\n  c:\n  - d\n", m{"a": "b", "c": l{"d"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := parseYAML("f", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, toValue(n)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseYAMLRefuses(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"anchor", "a: &x b\n", "f:1:4: anchors (&) are not supported"},
		{"alias", "a: b\nc: *x\n", "f:2:4: aliases (*) are not supported"},
		{"tag", "a: !!str b\n", "f:1:4: tags (!) are not supported"},
		{"tag in flow", "a: [!x b]\n", "f:1:5: tags (!) are not supported"},
		{"alias in seq", "a:\n- *x\n", "f:2:3: aliases (*) are not supported"},
		{"anchor on map", "a: &x\n  b: c\n", "f:1:4: anchors (&) are not supported"},
		{"two documents", "a: b\n---\nc: d\n", "f:2:1: several documents in one file are not supported"},
		{"after doc end", "a: b\n...\nc: d\n", "f:3:1: several documents in one file are not supported"},
		{"directive", "%YAML 1.2\n---\na: b\n", "f:1:1: directives (%) are not supported"},
		{"complex key", "? a\n: b\n", "f:1:1: complex mapping keys (?) are not supported"},
		{"duplicate key", "a: b\na: c\n", `f:2:1: duplicate key "a"`},
		{"duplicate flow key", "{a: b, a: c}\n", `f:1:8: duplicate key "a"`},
		{"tab indent", "a:\n\tb: c\n", "f:2:1: tab character in indentation"},
		{"bad indent", "a:\n  b:\n    c: d\n   e: f\n", "f:4:4: unexpected indentation"},
		{"indented key after plain", "a:\n  b: c\n   d: e\n", "f:3:5: mapping values are not allowed here"},
		{"map value in plain", "a: b: c\n", "f:1:5: mapping values are not allowed here"},
		{"unclosed quote", "a: \"b\n", "f:1:4: quoted scalar is not closed"},
		{"quote continues left", "a: \"b\nc: d\"\n", "f:2:1: quoted scalar continues at or left of its parent's indentation"},
		{"unclosed flow", "a: {b: c\n", "f:1:4: flow collection is not closed"},
		{"bad escape", "a: \"\\q\"\n", "f:1:5: invalid escape sequence in double-quoted scalar"},
		{"text after quote", "a: 'b' c\n", "f:1:8: unexpected text after value"},
		{"seq in map", "a: b\n- c\n", "f:2:1: sequence item where a mapping key was expected"},
		{"reserved", "a: @b\n", "f:1:4: character '@' cannot start a plain scalar"},
		{"flow indicator", "a: ]\n", "f:1:4: character ']' cannot start a plain scalar"},
		{"comma", "a: ,b\n", "f:1:4: character ',' cannot start a plain scalar"},
		{"flow indicator key", "a: b\n}c: d\n", "f:2:1: expected a mapping key followed by a colon"},
		{"empty key", "a: b\n: c\n", "f:2:1: missing mapping key before the colon"},
		{"hash in flow", "a: [b,#c]\n", "f:1:7: character '#' cannot start a plain scalar"},
		{"deep", strings.Repeat("[", 100), "f:1:64: nested deeper than 64 levels"},
		{"deep block", deepBlock(100), "nested deeper than 64 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseYAML("f", []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want %q", err, tt.want)
			}
		})
	}
}

func deepBlock(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.Repeat(" ", i) + "a:\n")
	}
	return b.String()
}

// TestParseYAMLNoSecrets checks that syntax errors never quote the text.
func TestParseYAMLNoSecrets(t *testing.T) {
	const secret = "s3cr3t-t0ken"
	for _, in := range []string{
		"token: \"" + secret,
		"token: &" + secret + " x",
		"token: " + secret + ": x",
		"token: '" + secret + "' " + secret,
		"token: [" + secret,
		"token: \"" + secret + "\\q\"",
		"token: " + secret + "\n---\n",
		"[" + secret + "}",
	} {
		_, err := parseYAML("f", []byte(in))
		if err == nil {
			t.Errorf("%q: no error", in)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%q: error %q shows the secret", in, err)
		}
	}
}
