package render

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// pcreTokens are what the regexps of TestRegexpsPCREAgrees are made of:
// anchors, classes and the quantifiers, groups and class syntax around
// them, where Go's regexp and PCRE disagree.
var pcreTokens = []string{
	`^`, `$`, `\b`, `\B`, `\A`, `\z`, `\d`, `\D`, `\w`, `\W`, `\s`, `\S`, `\.`, `\-`, `\]`, `\[`,
	`a`, `z`, `0`, `.`, `-`, `*`, `+`, `?`, `*?`, `|`, `(`, `)`, `(?:`, `(?i)`, `(?-s)`, `[`, `[^`, `]`,
	`[:alpha:]`, `[:digit:]`, `:`, `=`, `[.`, `[=`, `.]`, `=]`, `:]`,
}

// pcreCorpus returns n regexps of up to 8 tokens that validRegexp accepts,
// made at random from a fixed seed, and each accepted token on its own.
func pcreCorpus(n int) []string {
	rnd := rand.New(rand.NewPCG(9, 9))
	seen := map[string]bool{}
	var out []string
	for tries := 0; len(out) < n && tries < 200*n; tries++ {
		var b strings.Builder
		for range 1 + rnd.IntN(8) {
			b.WriteString(pcreTokens[rnd.IntN(len(pcreTokens))])
		}
		re := b.String()
		if seen[re] {
			continue
		}
		seen[re] = true
		if validRegexp(re) == "" {
			out = append(out, re)
		}
	}
	return out
}

// TestRegexpsPCREAgrees checks validRegexp against the real PCRE of
// HAProxy and nginx: every regexp it accepts, made at random from the
// constructs where Go's regexp and PCRE disagree, passes `haproxy -c` and
// `nginx -t` (a regexp PCRE refuses fails the whole configuration: one
// namespace's annotation would stop every update).
func TestRegexpsPCREAgrees(t *testing.T) {
	corpus := pcreCorpus(5000)
	if len(corpus) < 5000 {
		t.Fatalf("only %d regexps accepted: the corpus does not test much", len(corpus))
	}
	// and the largest accepted: groups nested as deep as allowed, the
	// longest regexp.
	for _, re := range []string{
		strings.Repeat("(", maxRegexpDepth) + "a" + strings.Repeat(")", maxRegexpDepth),
		strings.Repeat("(?:a|", maxRegexpDepth) + "b" + strings.Repeat(")", maxRegexpDepth),
		"^" + strings.Repeat("(a)", (maxRegexp-2)/3) + "$",
	} {
		if v := validRegexp(re); v != "" {
			t.Fatalf("validRegexp refuses %q: %s", re, v)
		}
		corpus = append(corpus, re)
	}
	// Each configuration's line 8+i holds corpus[i].
	for _, lb := range []struct {
		name, head, line, tail string
		check                  func(dir, file string) *exec.Cmd
	}{
		{"haproxy", "defaults\n  mode http\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\nfrontend f\n  bind 127.0.0.1:8080\n",
			"  use_backend b if { hdr_reg(host) %s }\n", "backend b\n  server s 127.0.0.1:1\n",
			func(dir, file string) *exec.Cmd { return exec.Command("haproxy", "-c", "-f", file) }},
		{"nginx", "pid nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n  server {\n    listen 127.0.0.1:8080;\n",
			"    server_name ~%s;\n", "  }\n}\n",
			func(dir, file string) *exec.Cmd {
				return exec.Command("nginx", "-t", "-p", dir+"/", "-c", file, "-e", "stderr")
			}},
	} {
		t.Run(lb.name, func(t *testing.T) {
			if _, err := exec.LookPath(lb.name); err != nil {
				needProgram(t, lb.name)
			}
			var cfg strings.Builder
			cfg.WriteString(lb.head)
			for _, re := range corpus {
				fmt.Fprintf(&cfg, lb.line, re)
			}
			cfg.WriteString(lb.tail)
			pcreCheck(t, corpus, cfg.String(), 8, lb.check)
		})
	}
}

// pcreCheck runs check on cfg, whose line first+i holds corpus[i], and
// reports the regexps of the lines it refuses.
func pcreCheck(t *testing.T, corpus []string, cfg string, first int, check func(dir, file string) *exec.Cmd) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "lb.conf")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := check(dir, file)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		return
	}
	lineRE := regexp.MustCompile(regexp.QuoteMeta(file) + `:(\d+)`)
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	n := 0
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(sc.Text())
		var line int
		if m != nil {
			fmt.Sscan(m[1], &line)
		}
		if i := line - first; m != nil && i >= 0 && i < len(corpus) {
			if n++; n <= 20 {
				t.Errorf("validRegexp accepts %q, which %s refuses: %s", corpus[i], cmd.Args[0], sc.Text())
			}
		}
	}
	if n == 0 {
		t.Errorf("%s refused the configuration: %v\n%s", cmd.Args[0], err, out)
	}
}
