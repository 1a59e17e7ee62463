package render

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestNameValidators checks the hand-written validators against the
// regular expressions they replace, on strings built from the bytes that
// matter, at and around every length limit.
func TestNameValidators(t *testing.T) {
	for _, c := range []struct {
		name string
		re   *regexp.Regexp
		f    func(string) bool
		max  int
	}{
		{"isObjectName", regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`), isObjectName, 253},
		{"isDNSLabel", regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$`), isDNSLabel, 63},
		{"isMode", regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`), isMode, 32},
	} {
		const alphabet = "az09.-_A\x00é/ "
		rng := rand.New(rand.NewPCG(1, 2))
		check := func(s string) {
			if got, want := c.f(s), c.re.MatchString(s); got != want {
				t.Errorf("%s(%q) = %v, the regexp says %v", c.name, s, got, want)
			}
		}
		check("")
		for i := range 20000 {
			n := 1 + rng.IntN(4)
			if i%4 == 0 {
				n = c.max - 1 + rng.IntN(3) // the limit, one under, one over
			}
			var b strings.Builder
			for range n {
				if rng.IntN(3) == 0 {
					b.WriteByte(alphabet[rng.IntN(len(alphabet))])
				} else {
					b.WriteByte("az09"[rng.IntN(4)])
				}
			}
			check(b.String())
		}
		accepted := 0
		for _, s := range []string{"a", "0", "a-b", "a.b", "a_b", strings.Repeat("a", c.max), strings.Repeat("a", c.max+1)} {
			check(s)
			if c.f(s) {
				accepted++
			}
		}
		if accepted < 2 {
			t.Errorf("%s accepts %d of the plain names", c.name, accepted)
		}
	}
}
