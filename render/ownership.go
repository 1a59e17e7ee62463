package render

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The passes over every service port (one mode per listener, host name
// ownership, the distinct ports) decide between the ports that share a
// listener or a server name. The index below keeps, between renders,
// which ports share what, updated as entries join and leave; a render then
// works only on the listeners and names that more than one port claims.

// portRef is one port of an entry.
type portRef struct {
	e *svcEntry
	i int
}

func (p portRef) info() *ServiceInformation { return &p.e.infos[p.i] }

// listenerKey is an address the load balancer listens on: a wildcard IP
// and a specific IP are different listeners.
type listenerKey struct {
	ip    string // IP.To16
	port  int32
	proto string
}

type listener struct {
	holders []portRef
	modes   []modeCount // the modes asked for, with how many ports ask
}

type modeCount struct {
	mode string
	n    int
}

func (l *listener) count(mode string, n int) {
	for i := range l.modes {
		if l.modes[i].mode == mode {
			l.modes[i].n += n
			if l.modes[i].n == 0 {
				l.modes = slices.Delete(l.modes, i, i+1)
			}
			return
		}
	}
	l.modes = append(l.modes, modeCount{mode, n})
}

// claimKey is a server name claimed on a port.
type claimKey struct {
	name  string // nameKey
	port  int32
	proto uint32 // the index's number for the protocol (protoID)
}

// portKey identifies a PortSpec as its String does.
type portKey struct {
	ip    [16]byte
	port  int32
	proto string
	mode  string
}

// keyOf is called once per port joining or leaving and per listener a
// template asks for: not inlined (ten call sites), for the binary's size.
//
//go:noinline
func keyOf(p PortSpec) portKey {
	k := portKey{port: p.Port, proto: p.Protocol, mode: p.Mode}
	copy(k.ip[:], p.IP.To16())
	return k
}

// portCount is a distinct PortSpec and the number of ports on it.
type portCount struct {
	spec PortSpec
	n    int
	born uint64 // the render that added it
}

type index struct {
	seq   uint64
	count int // ports joined

	listeners  map[listenerKey]*listener
	conflicted map[*listener]bool // asked for in more than one mode
	// A server name claimed by one port is in claims, by more than one
	// in contended, with all its ports: most names are claimed once
	// (30,000 of a large cluster's), and a port is smaller than a list.
	claims     claimSet
	contended  map[claimKey][]portRef
	protos     map[string]uint32 // see protoID
	portCounts map[portKey]*portCount
	shared     map[*portCount]bool // more than one port, not http over tcp

	sorted      []PortSpec // of portCounts, by comparePorts
	adds, drops []*portCount
	lastFrom    []PortSpec // sorted when lastPorts was filtered from it
	lastGone    []*portCount
	lastPorts   []PortSpec

	affected []portRef        // ports the last render dropped or published without some names
	touched  map[portKey]bool // ports whose PortServices differ from the last render's
}

func newIndex() index {
	return index{
		listeners:  make(map[listenerKey]*listener),
		conflicted: make(map[*listener]bool),
		claims:     newClaimSet(),
		contended:  make(map[claimKey][]portRef),
		protos:     make(map[string]uint32),
		portCounts: make(map[portKey]*portCount),
		shared:     make(map[*portCount]bool),
	}
}

func (x *index) begin(seq uint64) {
	x.seq = seq
	x.touched = make(map[portKey]bool)
}

func newPortMeta(s *ServiceInformation) portMeta {
	var m portMeta
	if s.names.err == nil { // a port whose names fail claims none
		for _, n := range s.names.names {
			if k := nameKey(n); claimIndex(m.claims, k) < 0 {
				m.claims = append(m.claims, claim{name: k})
			}
		}
		m.claims = slices.Clip(m.claims)
	}
	return m
}

// claimIndex is the index of name in claims, or -1.
func claimIndex(claims []claim, name string) int {
	return slices.IndexFunc(claims, func(c claim) bool { return c.name == name })
}

func listenerOf(p PortSpec) listenerKey {
	return listenerKey{string(p.IP.To16()), p.Port, p.Protocol}
}

func (x *index) claimOf(p PortSpec, name string) claimKey {
	return claimKey{name, p.Port, x.protoID(p.Protocol)}
}

// claimSet holds the server names that one port each claims, by a seeded
// 64-bit hash of their claimKey: an entry is 24 bytes, not 40, in a map
// of an entry per server name of the cluster (30,000 at make bench's
// scale: 1.6 MB less). The port an entry points to, and which of its
// claims, make the key again, so that a hash is checked; a key whose hash
// another key holds is in exact (the seed is random, and never leaves the
// process: annotations cannot aim at a collision).
type claimSet struct {
	seed   maphash.Seed
	byHash map[uint64]claimRef
	exact  map[claimKey]portRef
}

// claimRef is claim j of port i of e.
type claimRef struct {
	e    *svcEntry
	i, j uint32
}

func newClaimSet() claimSet {
	return claimSet{seed: maphash.MakeSeed(), byHash: make(map[uint64]claimRef), exact: make(map[claimKey]portRef)}
}

// claimHash is the hash of c in s (a variable: tests make every key
// collide).
var claimHash = func(s *claimSet, c claimKey) uint64 {
	return maphash.String(s.seed, c.name) ^ (uint64(uint32(c.port))<<32 | uint64(c.proto))
}

// is reports whether r is the claim c.
func (x *index) is(r claimRef, c claimKey) bool {
	return r.e.meta[r.i].claims[r.j].name == c.name && x.claimOf(r.e.infos[r.i].Port, c.name) == c
}

// claimTake removes c from claims and returns the port that claimed it.
func (x *index) claimTake(c claimKey) (portRef, bool) {
	h := claimHash(&x.claims, c)
	if r, ok := x.claims.byHash[h]; ok && x.is(r, c) {
		delete(x.claims.byHash, h)
		return portRef{r.e, int(r.i)}, true
	}
	ref, ok := x.claims.exact[c]
	delete(x.claims.exact, c)
	return ref, ok
}

// claimPut records ref, whose claim j is c, as the one port that claims c.
func (x *index) claimPut(c claimKey, ref portRef, j int) {
	h := claimHash(&x.claims, c)
	if _, taken := x.claims.byHash[h]; taken {
		x.claims.exact[c] = ref
		return
	}
	x.claims.byHash[h] = claimRef{ref.e, uint32(ref.i), uint32(j)}
}

// protoID numbers protocols, in the order met: a claim's key is then 24
// bytes, not 40, in a map of a key per server name of the cluster
// (30,000 at make bench's scale, 1 MB saved). The API server accepts
// three protocols; the numbers are never reused.
func (x *index) protoID(proto string) uint32 {
	id, ok := x.protos[proto]
	if !ok {
		id = uint32(len(x.protos))
		x.protos[proto] = id
	}
	return id
}

func (x *index) join(e *svcEntry) {
	for i := range e.infos {
		ref, m, s := portRef{e, i}, &e.meta[i], &e.infos[i]
		lk := listenerOf(s.Port)
		l := x.listeners[lk]
		if l == nil {
			l = &listener{}
			x.listeners[lk] = l
		}
		m.l = l
		m.lpos = len(l.holders)
		l.holders = append(l.holders, ref)
		l.count(s.Port.Mode, 1)
		if len(l.modes) > 1 {
			x.conflicted[l] = true
		}
		for j := range m.claims {
			c := x.claimOf(s.Port, m.claims[j].name)
			if h, ok := x.contended[c]; ok {
				m.claims[j].pos = len(h)
				x.contended[c] = append(h, ref)
			} else if first, ok := x.claimTake(c); ok {
				x.contended[c] = []portRef{first, ref} // first stays at 0
				m.claims[j].pos = 1
			} else {
				x.claimPut(c, ref, j)
				m.claims[j].pos = 0
			}
		}
		k := keyOf(s.Port)
		pc := x.portCounts[k]
		if pc == nil {
			pc = &portCount{spec: s.Port, born: x.seq}
			x.portCounts[k] = pc
			x.adds = append(x.adds, pc)
		}
		pc.n++
		m.pc = pc
		x.share(pc)
		x.count++
	}
}

func (x *index) leave(e *svcEntry) {
	for i := range e.infos {
		m, s := &e.meta[i], &e.infos[i]
		l := m.l
		l.holders = removeAt(l.holders, m.lpos, func(moved portRef, at int) { moved.e.meta[moved.i].lpos = at })
		l.count(s.Port.Mode, -1)
		if len(l.modes) < 2 {
			delete(x.conflicted, l)
		}
		if len(l.holders) == 0 {
			delete(x.listeners, listenerOf(s.Port))
		}
		for j := range m.claims {
			name := m.claims[j].name
			c := x.claimOf(s.Port, name)
			h, ok := x.contended[c]
			if !ok {
				x.claimTake(c)
				continue
			}
			h = removeAt(h, m.claims[j].pos, func(moved portRef, at int) {
				mm := &moved.e.meta[moved.i]
				mm.claims[claimIndex(mm.claims, name)].pos = at
			})
			if len(h) == 1 { // at 0, where removeAt put it
				delete(x.contended, c)
				x.claimPut(c, h[0], claimIndex(h[0].e.meta[h[0].i].claims, name))
			} else {
				x.contended[c] = h
			}
		}
		pc := m.pc
		pc.n--
		if pc.n == 0 {
			delete(x.portCounts, keyOf(s.Port))
			if pc.born != x.seq {
				x.drops = append(x.drops, pc)
			}
		}
		x.share(pc)
		x.count--
	}
}

// removeAt removes h[at] by moving the last holder there, and tells moved.
func removeAt(h []portRef, at int, moved func(portRef, int)) []portRef {
	last := len(h) - 1
	if at != last {
		h[at] = h[last]
		moved(h[at], at)
	}
	h[last] = portRef{}
	return h[:last]
}

func (x *index) share(pc *portCount) {
	if pc.n > 1 && (pc.spec.Mode != "http" || pc.spec.Protocol != "tcp") {
		x.shared[pc] = true
	} else {
		delete(x.shared, pc)
	}
}

// applyPortChanges brings sorted up to date with the ports joined and left.
func (x *index) applyPortChanges() {
	var adds []*portCount
	for _, pc := range x.adds {
		if pc.n > 0 {
			adds = append(adds, pc)
		}
	}
	drops := x.drops
	x.adds, x.drops = nil, nil
	if len(adds) == 0 && len(drops) == 0 {
		return
	}
	var out []PortSpec
	if len(adds)+len(drops) > 64 {
		out = make([]PortSpec, 0, len(x.portCounts))
		for _, pc := range x.portCounts {
			out = append(out, pc.spec)
		}
		sortFunc(out, func(a, b *PortSpec) int { return comparePorts(*a, *b) })
	} else {
		// sort.Search and copies: slices.BinarySearchFunc and Insert
		// for PortSpec were 1.8 KB of the 9 MB binary.
		out = slices.Clone(x.sorted)
		find := func(p PortSpec) int {
			return sort.Search(len(out), func(i int) bool { return comparePorts(out[i], p) >= 0 })
		}
		for _, pc := range drops {
			if i := find(pc.spec); i < len(out) && comparePorts(out[i], pc.spec) == 0 {
				out = slices.Delete(out, i, i+1)
			}
		}
		for _, pc := range adds {
			i := find(pc.spec)
			out = append(out, PortSpec{})
			copy(out[i+1:], out[i:])
			out[i] = pc.spec
		}
	}
	if len(out) == 0 {
		out = nil
	}
	x.sorted = out
}

// compareAge orders ports from the oldest service to the newest
// (creationTimestamp, then namespace, then name), then in
// ClusterInformation.Services order: the order in which services claim
// listeners and server names.
func compareAge(a, b portRef) int {
	e, f := a.e, b.e
	return cmp.Or(
		e.created().Compare(f.created()),
		strings.Compare(e.key.ns, f.key.ns),
		strings.Compare(e.key.name, f.key.name),
		cmp.Compare(e.pos, f.pos),
		cmp.Compare(a.i, b.i),
	)
}

// oneModePerListener keeps one mode per listener (IP, port, protocol): the
// oldest service on it (creationTimestamp, then namespace/name) sets the
// mode, and the ports of other services that ask for another mode there
// are dropped, with a warning each. A load balancer cannot serve two modes
// on one address: HAProxy would bind two frontends to it and the kernel
// would split the connections between them, and nginx would fail every
// reload with EADDRINUSE. A wildcard IP (0.0.0.0) and a specific IP on the
// same port are different listeners here. It returns the dropped ports.
func (x *index) oneModePerListener(b *builder) map[portRef]bool {
	var dropped map[portRef]bool
	for l := range x.conflicted {
		owner := slices.MinFunc(l.holders, compareAge)
		o := owner.info()
		for _, h := range l.holders {
			s := h.info()
			if s.Port.Mode == o.Port.Mode {
				continue
			}
			if dropped == nil {
				dropped = make(map[portRef]bool)
			}
			dropped[h] = true
			h.e.mark = x.seq
			// The message reads only the two ports, which do not change
			// while their entries are the same.
			m := &h.e.meta[h.i]
			if m.dropped == nil || m.dropped.owner != owner {
				m.dropped = &dropNote{owner: owner}
				m.dropped.msg = fmt.Sprintf("service %s/%s: port %d/%s on %s dropped: mode %s, but the listener is in mode %s, set by the older service %s/%s",
					s.Namespace, s.Name, s.Port.Port, s.Port.Protocol, s.Port.IP, s.Port.Mode, o.Port.Mode, o.Namespace, o.Name)
			}
			b.w = append(b.w, m.dropped.msg)
		}
	}
	return dropped
}

// ownNames enforces hostname ownership: when several services claim one
// server name (a ServerNames entry, from -server-name-templates or
// kube2lb/external-domains) on overlapping listeners, the oldest service
// (creationTimestamp, then namespace/name) keeps it and the others lose it
// from their ServerNames and .External, with a warning each. Otherwise a
// user of one namespace could take over another's host name with an
// annotation, and which service got the traffic would depend on the
// template. Listeners overlap when they have the same port and protocol
// and the same IP, or one of them is a wildcard IP (0.0.0.0 or ::), which
// receives the traffic of every address: a load balancer hands a
// connection to a specific address's listener rather than the wildcard's,
// so a newer service's claim on a specific IP would take the name over for
// that IP. Names compare as host names (case-insensitively); regexps
// compare as literal strings. Dropped ports claim nothing. It returns the
// names (nameKey) each port loses, and counts them in b.conflicts.
func (x *index) ownNames(b *builder, dropped map[portRef]bool) map[portRef]map[string]bool {
	type holder struct {
		ip  net.IP
		ref portRef
	}
	var lost map[portRef]map[string]bool
	var claimants []portRef
	var owners []holder
	for c, holders := range x.contended {
		claimants = claimants[:0]
		for _, h := range holders {
			if !dropped[h] {
				claimants = append(claimants, h)
			}
		}
		if len(claimants) < 2 {
			continue
		}
		sortFunc(claimants, func(a, b *portRef) int { return compareAge(*a, *b) })
		owners = owners[:0]
		for _, h := range claimants {
			s := h.info()
			var owner *ServiceInformation
			mine := false
			for _, o := range owners {
				if !ipsOverlap(o.ip, s.Port.IP) {
					continue
				}
				if prior := o.ref.info(); prior.Namespace == s.Namespace && prior.Name == s.Name {
					mine = true
				} else {
					owner = prior
					break
				}
			}
			if owner == nil {
				if !mine {
					owners = append(owners, holder{s.Port.IP, h})
				}
				continue
			}
			if lost == nil {
				lost = make(map[portRef]map[string]bool)
			}
			if lost[h] == nil {
				lost[h] = make(map[string]bool)
			}
			lost[h][c.name] = true
			h.e.mark = x.seq
			port := s.Port.described()
			where := ""
			if owner.Port.String() != s.Port.String() {
				where = ", at " + owner.Port.described()
			}
			for _, n := range s.names.names {
				if nameKey(n) == c.name {
					b.conflicts++
					b.w.add("service %s/%s: port %s: server name %s dropped: it belongs to the older service %s/%s%s",
						s.Namespace, s.Name, port, n, owner.Namespace, owner.Name, where)
				}
			}
		}
	}
	return lost
}

// sharedNamed is how many of the services sharing a port its warning
// names; the others are counted.
const sharedNamed = 5

// sharers names the n services (namespace/name) whose ports share pc: the
// first sharedNamed by namespace and name, and how many more. A shared
// listener of a large cluster has thousands, at every render: they are
// picked in one pass, not sorted, and only those picked are named.
// A port count is dropped whole or not at all (the ports of a listener
// that are dropped are those in another mode than its owner's), so the
// ports of a count still shared are all kept.
func (x *index) sharers(pc *portCount, n int) string {
	var first [sharedNamed]*ServiceInformation
	k := 0
	if l := x.listeners[listenerOf(pc.spec)]; l != nil {
		for _, ref := range l.holders {
			if ref.e.meta[ref.i].pc != pc {
				continue
			}
			// Insertion into the first k, by namespace and name.
			s := ref.info()
			i := k
			for i > 0 && (s.Namespace < first[i-1].Namespace || s.Namespace == first[i-1].Namespace && s.Name < first[i-1].Name) {
				i--
			}
			if i == sharedNamed {
				continue
			}
			k = min(k+1, sharedNamed)
			copy(first[i+1:k], first[i:k-1])
			first[i] = s
		}
	}
	list := ""
	for i, s := range first[:k] {
		if i > 0 {
			list += ", "
		}
		list += s.Namespace + "/" + s.Name
	}
	if n > k {
		list += " and " + strconv.Itoa(n-k) + " more"
	}
	return list
}

// ports returns the distinct PortSpecs of the ports not dropped, sorted by
// port, IP, protocol and mode, and warns about services that share a
// listener in a mode that cannot route by host name.
func (x *index) ports(b *builder, dropped map[portRef]bool) []PortSpec {
	var less map[*portCount]int
	for ref := range dropped {
		if less == nil {
			less = make(map[*portCount]int)
		}
		less[ref.e.meta[ref.i].pc]++
	}
	for pc := range x.shared {
		if n := pc.n - less[pc]; n > 1 {
			how := pc.spec.Mode
			if pc.spec.Protocol != "tcp" {
				how += " over " + pc.spec.Protocol
			}
			b.w.add("port %s is shared by %d services in mode %s, which cannot route by host name: %s", pc.spec.described(), n, how, x.sharers(pc, n))
		}
	}
	var gone []*portCount
	for pc, n := range less {
		if n == pc.n {
			gone = append(gone, pc)
		}
	}
	if len(gone) == 0 {
		return x.sorted
	}
	sortFunc(gone, func(a, b **portCount) int { return comparePorts((*a).spec, (*b).spec) })
	if sameSlice(x.lastFrom, x.sorted) && slices.Equal(x.lastGone, gone) {
		return x.lastPorts
	}
	var out []PortSpec
	g := 0
	for _, p := range x.sorted {
		if g < len(gone) && comparePorts(p, gone[g].spec) == 0 {
			g++
			continue
		}
		out = append(out, p)
	}
	x.lastFrom, x.lastGone, x.lastPorts = x.sorted, gone, out
	return out
}
