package kubeapi

import (
	"slices"
	"strings"
)

// Pair is one entry of a Pairs.
type Pair struct {
	Key, Value string
}

// Pairs holds an object's labels or annotations: its entries sorted by
// key, each key once. Empty is nil. A slice takes a fifth of the memory a
// Go map takes for the few entries objects have (336 bytes for a map of
// one entry): 10,000 Services' labels and annotations were 5 MB as maps
// (issue 9). Like the rest of a cached object, read-only.
type Pairs []Pair

// PairsOf returns the entries of m as Pairs.
func PairsOf(m map[string]string) Pairs {
	var p Pairs
	for k, v := range m {
		p = append(p, Pair{k, v})
	}
	slices.SortFunc(p, func(a, b Pair) int { return strings.Compare(a.Key, b.Key) }) // a map's keys are distinct
	return p
}

// Get returns the value of key k and whether the key is there. Not
// inlined: its call sites are cold, and each inlined copy costs the
// binary (issue 9: under 9 MB).
//
//go:noinline
func (p Pairs) Get(k string) (string, bool) {
	lo, hi := 0, len(p)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p[m].Key < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(p) && p[lo].Key == k {
		return p[lo].Value, true
	}
	return "", false
}

// Map returns the entries as a new map, nil when there are none. (Not
// inlined: a map's making and filling at each caller cost the binary,
// which has a size limit, issue 9, more than the call costs a template.)
//
//go:noinline
func (p Pairs) Map() map[string]string {
	if len(p) == 0 {
		return nil
	}
	m := make(map[string]string, len(p))
	for _, e := range p {
		m[e.Key] = e.Value
	}
	return m
}

// set adds or replaces the entry of k, keeping p sorted: the decoder's
// way of building Pairs, a few entries at a time, as a map would.
func (p *Pairs) set(k, v string) {
	s := *p
	i := len(s)
	for i > 0 && s[i-1].Key > k {
		i--
	}
	if i > 0 && s[i-1].Key == k {
		s[i-1].Value = v
		return
	}
	s = append(s, Pair{})
	copy(s[i+1:], s[i:])
	s[i] = Pair{k, v}
	*p = s
}
