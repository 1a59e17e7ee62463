package render

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

const pcreClassProblem = "regexp has a class PCRE (HAProxy, nginx) refuses: a range from or to a class, or [:, [. or [= out of place"

// TestRegexpVerdictCache checks that cached verdicts are the verdicts and
// that the cache stays bounded while keeping the regexps in use.
func TestRegexpVerdictCache(t *testing.T) {
	for _, tc := range []struct{ re, want string }{
		{`^a\.example\.com$`, ""},
		{`^(unclosed$`, "regexp does not compile"},
		{`-x`, "regexp starts with -, which HAProxy reads as an option"},
		{`-f`, "regexp starts with -, which HAProxy reads as an option"},
		{`^-x\.example\.com$`, ""},
		{`^(?P<host>.+)$`, "regexp has a named group, which nginx makes a variable: use (...) or (?:...)"},
		{`^(?<server_name>.+)$`, "regexp has a named group, which nginx makes a variable: use (...) or (?:...)"},
		{`^(a|b)(?:\.example)\.com$`, ""},
		// Escapes the load balancers' parsers read before PCRE does.
		{`^ok\d+\.example\.com$`, ""},
		{`^a\x5c`, "regexp holds a \\ escape other than one of " + keptEscapes},
		{`^e\\`, "regexp holds a \\ escape other than one of " + keptEscapes},
		{`^c\\(d)`, "regexp holds a \\ escape other than one of " + keptEscapes},
		{`^t\tab`, "regexp holds a \\ escape other than one of " + keptEscapes},
		{`^end\`, "regexp holds a \\ escape other than one of " + keptEscapes},
		// What PCRE (HAProxy, nginx) refuses and Go's regexp accepts.
		{`^*a`, "regexp repeats an anchor or (?flags), which PCRE (HAProxy, nginx) refuses"},
		{`^a\b?`, "regexp repeats an anchor or (?flags), which PCRE (HAProxy, nginx) refuses"},
		{`^a(?i)+`, "regexp repeats an anchor or (?flags), which PCRE (HAProxy, nginx) refuses"},
		{`^[\w-.]+$`, pcreClassProblem},
		{`^[a[:digit:]-z]$`, pcreClassProblem},
		{`^[:alpha:]+$`, pcreClassProblem},
		{`^[[.a.]]$`, pcreClassProblem},
		{`<<EOF`, "regexp starts with <<, which Caddy 2.7 and later read as a heredoc"},
		{strings.Repeat("(", 33) + "a" + strings.Repeat(")", 33), "regexp nests groups over 32 deep (PCRE refuses over 250)"},
		{strings.Repeat("(?:", 33) + "a" + strings.Repeat(")", 33), "regexp nests groups over 32 deep (PCRE refuses over 250)"},
		{strings.Repeat("(?i)", 40) + strings.Repeat("(a)", 40) + strings.Repeat("(", 32) + "a" + strings.Repeat(")", 32), ""},
		// and what both accept.
		{`^[\w-]+\.example\.com$`, ""},
		{`^[a-z0-9-]+\.example\.com$`, ""},
		{`^[-\d]+\.[^:]+$`, ""},
		{`(?i)^(www|api)\.example\.com$`, ""},
		{`^(?:^)*a(?i:b)+$`, ""},
		{`^[[:alpha:]-]+$`, ""},
		{"^" + strings.Repeat("a", maxRegexp-2) + "$", ""},
		{"^" + strings.Repeat("a", maxRegexp-1) + "$", "regexp longer than 1024 bytes"},
	} {
		for range 2 { // computed, then cached
			if got := validRegexp(tc.re); got != tc.want {
				t.Errorf("validRegexp(%q) = %q, want %q", tc.re, got, tc.want)
			}
		}
	}
	const inUse = `^in-use\.example\.com$`
	for i := range 3 * maxCompiledVerdicts {
		regexpVerdict(fmt.Sprintf(`^svc-%d\.example\.com$`, i))
		if i%1000 == 0 {
			regexpVerdict(inUse)
		}
	}
	c := &compiledVerdicts
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) > maxCompiledVerdicts || len(c.prev) > maxCompiledVerdicts {
		t.Errorf("cache holds %d + %d verdicts, want at most %d each", len(c.cur), len(c.prev), maxCompiledVerdicts)
	}
	_, inCur := c.cur[inUse]
	_, inPrev := c.prev[inUse]
	if !inCur && !inPrev {
		t.Errorf("a regexp in use was dropped from the cache")
	}
}

// TestExternalDomainsNormalized: names are lower-cased and lose a final
// dot, which a Host header never carries; duplicates go.
func TestExternalDomainsNormalized(t *testing.T) {
	var w warnings
	got := externalDomains("ns/svc", "WWW.Example.com., www.example.com,*.Apps.Example.COM.,.,*.,shop.example.com..,~^A\\.example\\.com$", &w)
	want := []string{"www.example.com", "*.apps.example.com", `~^A\.example\.com$`}
	if !slices.Equal(got, want) {
		t.Errorf("externalDomains = %q, want %q", got, want)
	}
	if len(w) != 3 {
		t.Errorf("warnings %q, want 3: \".\", \"*.\" and the name with two final dots", w)
	}
}

// TestInNamespace: the zone of -domain is compared as names are, whatever
// the case or final dot it was given with, and an empty -domain still has
// its svc zone.
func TestInNamespace(t *testing.T) {
	for _, tc := range []struct {
		domain string
		in     []string
		want   []string
	}{
		{"Cluster.Local.", []string{"web.good.svc.cluster.local", "x.evil.svc.cluster.local"}, []string{"x.evil.svc.cluster.local"}},
		{"", []string{"web.good.svc", "web.evil.svc", "web.good.svc.cluster.local"}, []string{"web.evil.svc", "web.good.svc.cluster.local"}},
		{"cluster.local", []string{"~^web\\.good\\.svc\\.cluster\\.local$", "*.svc.cluster.local", "*.good.svc.cluster.local"}, []string{"~^web\\.good\\.svc\\.cluster\\.local$", "*.svc.cluster.local"}},
	} {
		var w warnings
		if got := inNamespace("evil/x", "evil", tc.domain, tc.in, &w); !slices.Equal(got, tc.want) {
			t.Errorf("-domain %q: %q, want %q", tc.domain, got, tc.want)
		}
		if len(w) != len(tc.in)-len(tc.want) {
			t.Errorf("-domain %q: warnings %q, want one per entry dropped", tc.domain, w)
		}
	}
}
