package render

import (
	"fmt"
	"testing"
)

// claimGet returns the one port that claims c, if it is in claims.
func (x *index) claimGet(c claimKey) (portRef, bool) {
	if r, ok := x.claims.byHash[claimHash(&x.claims, c)]; ok && x.is(r, c) {
		return portRef{r.e, int(r.i)}, true
	}
	ref, ok := x.claims.exact[c]
	return ref, ok
}

// checkIndex checks the index against the entries it was built from:
// every holder where its port says, at the position its meta says; the
// counts, the contended claims and each port's count right. It returns
// how many claims are in the claims' exact map.
func checkIndex(t *testing.T, st *modelState) (exact int) {
	t.Helper()
	x := &st.index
	n, claims := 0, 0
	for k, l := range x.listeners {
		if len(l.holders) == 0 {
			t.Fatalf("empty listener %v", k)
		}
		for p, h := range l.holders {
			n++
			m := &h.e.meta[h.i]
			if h.e.gone {
				t.Fatalf("gone holder")
			}
			if m.l != l || m.lpos != p || listenerOf(h.info().Port) != k {
				t.Fatalf("listener bookkeeping: l=%v lpos=%d want %d", m.l == l, m.lpos, p)
			}
			if x.portCounts[keyOf(h.info().Port)] != m.pc {
				t.Fatalf("pc mismatch")
			}
			claims += len(m.claims)
		}
	}
	if n != x.count {
		t.Fatalf("count %d holders %d", x.count, n)
	}
	singles := map[claimKey]portRef{}
	for _, r := range x.claims.byHash {
		c := x.claimOf(r.e.infos[r.i].Port, r.e.meta[r.i].claims[r.j].name)
		singles[c] = portRef{r.e, int(r.i)}
	}
	for c, h := range x.claims.exact {
		if _, ok := singles[c]; ok {
			t.Fatalf("claim %v held twice", c)
		}
		if r, ok := x.claims.byHash[claimHash(&x.claims, c)]; ok && x.is(r, c) {
			t.Fatalf("claim %v in exact and by its hash", c)
		}
		singles[c] = h
	}
	for c, h := range singles {
		m := &h.e.meta[h.i]
		i := claimIndex(m.claims, c.name)
		if i < 0 || m.claims[i].pos != 0 || x.claimOf(h.info().Port, c.name) != c {
			t.Fatalf("claim bookkeeping %v", c)
		}
		if got, ok := x.claimGet(c); !ok || got != h {
			t.Fatalf("claim %v: claimGet gives %v, %v", c, got, ok)
		}
		if _, ok := x.contended[c]; ok {
			t.Fatalf("claim %v both single and contended", c)
		}
	}
	for c, hs := range x.contended {
		if len(hs) < 2 {
			t.Fatalf("contended claim %v has %d ports", c, len(hs))
		}
		for p, h := range hs {
			m := &h.e.meta[h.i]
			i := claimIndex(m.claims, c.name)
			if i < 0 || m.claims[i].pos != p || x.claimOf(h.info().Port, c.name) != c {
				t.Fatalf("claim bookkeeping %v", c)
			}
		}
	}
	held := len(singles)
	for _, hs := range x.contended {
		held += len(hs)
	}
	if held != claims {
		t.Fatalf("the ports claim %d names, the index holds %d", claims, held)
	}
	for k, pc := range x.portCounts {
		cnt := 0
		for _, e := range st.entries {
			for i := range e.infos {
				if keyOf(e.infos[i].Port) == k {
					cnt++
				}
			}
		}
		if cnt != pc.n {
			t.Fatalf("portCount %v n=%d counted %d", k, pc.n, cnt)
		}
	}
	return len(x.claims.exact)
}

// TestIndexBookkeeping changes a random cluster a few hundred times and
// checks, after every render, that the indexes the model keeps between
// renders are what rebuilding them would give: the positions that
// removeAt moves, the keys that leave makes again from the port.
func TestIndexBookkeeping(t *testing.T) {
	t.Run("hashed", func(t *testing.T) { testIndexBookkeeping(t, false) })
	// Every claim's hash the same: all but one in the claims' exact map.
	defer func(h func(*claimSet, claimKey) uint64) { claimHash = h }(claimHash)
	claimHash = func(*claimSet, claimKey) uint64 { return 0 }
	t.Run("colliding", func(t *testing.T) { testIndexBookkeeping(t, true) })
}

func testIndexBookkeeping(t *testing.T, colliding bool) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newRandomCluster(seed, 7)
			r := newTestRenderer(t, testOptions())
			conflicts, exact := 0, 0
			for range 200 {
				for range 1 + c.rng.IntN(4) {
					c.change()
				}
				r.Model(c.snapshot())
				if r.state != nil {
					exact += checkIndex(t, r.state)
					conflicts += len(r.state.index.conflicted) + len(r.state.index.contended)
				}
			}
			if conflicts == 0 {
				t.Error("no listener or name was ever shared: the test checks too little")
			}
			if colliding && exact == 0 {
				t.Error("no claim was ever in the exact map: the hashes did not collide")
			}
		})
	}
}
