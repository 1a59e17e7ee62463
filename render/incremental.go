package render

import (
	"cmp"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/kube2lb/kube2lb/kubeapi"
)

// The model is built incrementally. A Renderer keeps, between renders,
// each Service's built ports (a svcEntry) with the inputs they came from:
// the Service, its EndpointSlices, the node set and what the model keeps
// of the endpoints (endpointUse). A render rebuilds only the entries whose
// inputs changed; the passes over all services (one mode per listener,
// host name ownership, the distinct ports) work from indexes that entries
// join and leave (ownership.go), so that a change costs about what it
// touches.
//
// Everything handed to a template is immutable once published: slices,
// maps, net.IPs and nameSets are never written after the render that
// built them. A render that needs another value (a service losing a name,
// new backends) builds a new one. Templates still executing, and the
// template cache, which compares values by identity, see what they were
// given; and an unchanged service port hands the template the very same
// slices, maps and pointers at every render.

// svcKey identifies a Service.
type svcKey struct{ ns, name string }

func compareKeys(a, b svcKey) int {
	return cmp.Or(strings.Compare(a.ns, b.ns), strings.Compare(a.name, b.name))
}

func metaKey(m *kubeapi.ObjectMeta) svcKey { return svcKey{m.Namespace, m.Name} }

// sameObject reports whether a and b are the same version of an object:
// the same pointer (the cache replaces the pointer at every update and
// never writes to an object), or the same namespace, name and
// resourceVersion (a relist hands out new pointers for unchanged objects;
// a resourceVersion is an etcd revision, which no other version of any
// object has).
func sameObject(a, b *kubeapi.ObjectMeta) bool {
	return a == b || a.ResourceVersion != "" && a.ResourceVersion == b.ResourceVersion &&
		a.Namespace == b.Namespace && a.Name == b.Name
}

// endpointUse is what the model keeps of the endpoints.
type endpointUse uint8

const (
	// noEndpoints: EndpointSlices are not watched. Ports have no
	// endpoints, and all nodes as backends.
	noEndpoints endpointUse = iota
	// backendsOnly: the template reads .Backends, not .Endpoints. The
	// endpoints of a port of policy Local choose its backends and are
	// dropped; the other ports' are not made. 60,000 endpoints at make
	// bench's scale were 3.4 MB for templates that never read one, and a
	// pod that comes or goes no longer changes a Cluster port.
	backendsOnly
	// allEndpoints: every port keeps its endpoints.
	allEndpoints
)

func sameSlices(a, b []*kubeapi.EndpointSlice) bool {
	return slices.EqualFunc(a, b, func(x, y *kubeapi.EndpointSlice) bool { return sameObject(&x.Metadata, &y.Metadata) })
}

// modelState is what a Renderer keeps between renders. It belongs to one
// render at a time (Renderer.modelMu).
type modelState struct {
	seq    uint64  // renders built with this state
	sanity *sanity // what the sanity checks read; a change starts a new state

	nodesIn      []*kubeapi.Node // the last snapshot's, copied
	nodesBuilt   bool
	allNodes     []Node
	backends     []Node
	byFamily     [2][]Node // backends as IPv4 and IPv6 services reach them (familyBackends)
	nodeWarnings []string
	// familyWarnings name the nodes byFamily leaves out: warned while a
	// service of that family is there.
	familyWarnings [2]warnings
	nodesGen       uint64 // incremented when allNodes, backends or their warnings change

	slicesIn     []*kubeapi.EndpointSlice // the last snapshot's, copied
	slicesSorted bool                     // slicesIn is strictly sorted by namespace, name
	groups       map[svcKey][]*kubeapi.EndpointSlice
	endpoints    endpointUse

	entries  []*svcEntry        // by namespace, name
	svcs     []*kubeapi.Service // of entries
	ips      map[netip.Addr]net.IP
	ipsMu    sync.Mutex            // ips, for builds on several goroutines
	changed  bool                  // an entry joined, left or was rebased in this render
	services []*ServiceInformation // the last render's
	// pcs are the portCounts of services' ports, in step with it (nil
	// when services were sorted after assemble): the views are filled
	// from them without reading every ServiceInformation.
	pcs []*portCount

	index

	warnings, notes []string // of every entry, sorted
	messagesDirty   bool

	filler *viewFiller // the last render's
}

// svcEntry is one Service's part of the model and the inputs it was built
// from. Only infos (and what they reach) is published; the rest is the
// state's.
type svcEntry struct {
	key      svcKey
	svc      *kubeapi.Service
	slices   []*kubeapi.EndpointSlice
	nodesGen uint64

	infos []ServiceInformation // sorted by port, protocol, port name
	meta  []portMeta           // per port
	msgs  *entryMessages       // nil: none (most services)

	pos       int    // index in modelState.entries when built: orders services of one name
	mark      uint64 // the last render in which a port was dropped or lost names
	touched   uint64 // the last render that joined, left or rebased it
	endpoints endpointUse
	gone      bool // left the indexes
}

// entryMessages are the warnings and notes of building an entry.
type entryMessages struct {
	warnings, notes []string
	// names are the warnings of the names -server-name-templates made
	// that were dropped (also in warnings), by port: a port whose names
	// are reused from the entry replaced takes its own from there.
	names [][]string
}

// warnings returns the warnings of building e.
func (e *svcEntry) warnings() []string {
	if e.msgs == nil {
		return nil
	}
	return e.msgs.warnings
}

// notes returns the notes of building e.
func (e *svcEntry) notes() []string {
	if e.msgs == nil {
		return nil
	}
	return e.msgs.notes
}

// created is e's service's creationTimestamp, which orders name
// ownership.
func (e *svcEntry) created() time.Time { return e.svc.Metadata.CreationTimestamp }

// portMeta is what the indexes need of one port of an entry: one per
// service port, so kept small (80 bytes). Its listener, port count and
// claims are found from the port's own PortSpec (e.infos[i].Port), which
// does not change while the entry is in the indexes.
type portMeta struct {
	l      *listener  // the port's listener, set by join
	pc     *portCount // the port's count, set by join
	lpos   int        // index in the listener's holders
	claims []claim    // distinct server names; none when they failed
	pub    published  // what the last render published for the port
	last   *variant   // the last variant built, reused while it loses the same names
	// dropped is the warning of the last render that dropped the port:
	// the same owner of the listener, the same warning (a conflicted
	// listener of a large cluster drops thousands).
	dropped *dropNote
}

// claim is a server name (nameKey) a port claims, and its index in the
// claim's holders.
type claim struct {
	name string
	pos  int
}

// dropNote is the warning of a dropped port, and the port that owned the
// listener then.
type dropNote struct {
	owner portRef
	msg   string
}

// published is what a render published for a port other than the entry's
// own ServiceInformation: nothing (dropped), or a variant without the names
// an older service owns.
type published struct {
	dropped bool
	v       *variant
}

// variant is a port that lost names to older services, kept while it
// loses the same ones.
type variant struct {
	lost map[string]bool // nameKey
	info ServiceInformation
}

func newModelState(s *sanity) *modelState {
	return &modelState{
		sanity: s,
		ips:    make(map[netip.Addr]net.IP),
		index:  newIndex(),
	}
}

// sortedServices returns services sorted by namespace and name, and
// whether no two have the same ones. prev are the last render's, sorted.
func sortedServices(services, prev []*kubeapi.Service) ([]*kubeapi.Service, bool) {
	meta := func(s *kubeapi.Service) *kubeapi.ObjectMeta { return &s.Metadata }
	if inOrder(services, prev, meta) {
		return services, true
	}
	services = slices.Clone(services)
	stableSortFunc(services, func(a, b **kubeapi.Service) int { return compareMeta(&(*a).Metadata, &(*b).Metadata) })
	for i := 1; i < len(services); i++ {
		if compareMeta(&services[i-1].Metadata, &services[i].Metadata) == 0 {
			return services, false
		}
	}
	return services, true
}

func compareMeta(a, b *kubeapi.ObjectMeta) int { return compareKeys(metaKey(a), metaKey(b)) }

// inOrder reports whether objects are strictly sorted by namespace and
// name. A cache's snapshot is: where objects follow each other in prev
// (sorted) as well, their order is known without reading them.
func inOrder[T any](objects, prev []*T, meta func(*T) *kubeapi.ObjectMeta) bool {
	cmpMeta := func(a, b *T) int { return compareMeta(meta(a), meta(b)) }
	j := -1 // index in prev of the object before, or -1
	for i, o := range objects {
		if j >= 0 && j+1 < len(prev) && prev[j+1] == o {
			j++
			continue
		}
		if i > 0 && cmpMeta(objects[i-1], o) >= 0 {
			return false
		}
		j = -1
		if k, ok := slices.BinarySearchFunc(prev, o, cmpMeta); ok && prev[k] == o {
			j = k
		}
	}
	return true
}

// build returns the model of snap. services are snap's, sorted; unique
// tells that no two have the same namespace and name (else the state is
// used for this render only).
func (st *modelState) build(b *builder, snap kubeapi.Snapshot, services []*kubeapi.Service, unique bool) *ClusterInformation {
	st.seq++
	st.changed = false
	st.index.begin(st.seq)
	b.ips = st.ips
	if len(st.ips) > 2*len(st.entries)+64 {
		// Addresses of services long gone; the entries keep theirs.
		clear(st.ips)
	}
	nodesGen := st.nodesGen
	st.updateNodes(b.r, snap.Nodes)
	affected, all := st.updateSlices(snap.EndpointSlices, b.endpoints)
	// The services whose EndpointSlices changed, found without reading
	// the others.
	var touched map[*kubeapi.Service]bool
	if len(affected) > 0 {
		touched = make(map[*kubeapi.Service]bool)
		for k := range affected {
			if i, ok := slices.BinarySearchFunc(services, k, func(s *kubeapi.Service, k svcKey) int {
				return compareKeys(metaKey(&s.Metadata), k)
			}); ok {
				touched[services[i]] = true
			}
		}
	}
	quiet := !all && nodesGen == st.nodesGen // only a changed Service needs a look

	old, oldSvcs := st.entries, st.svcs
	var fresh []*svcEntry // built in parallel when every entry is new
	if len(old) == 0 && len(services) >= parallelBuildMin {
		fresh = st.buildAll(b, services)
	}
	entries := make([]*svcEntry, 0, len(services))
	j := 0
	for i, svc := range services {
		if fresh != nil {
			e := fresh[i]
			e.pos = len(entries)
			st.join(e)
			entries = append(entries, e)
			continue
		}
		if j < len(oldSvcs) && oldSvcs[j] == svc {
			e := old[j]
			j++
			if quiet && !touched[svc] {
				entries = append(entries, e)
				continue
			}
			entries = append(entries, st.entry(b, e, svc, metaKey(&svc.Metadata), all || touched[svc], len(entries)))
			continue
		}
		k := metaKey(&svc.Metadata)
		var prev *svcEntry
		for j < len(old) {
			e := old[j]
			c := compareKeys(e.key, k)
			if c > 0 {
				break
			}
			j++
			if c == 0 {
				prev = e
				break
			}
			st.leave(e)
		}
		entries = append(entries, st.entry(b, prev, svc, k, true, len(entries)))
	}
	for _, e := range old[j:] {
		st.leave(e)
	}
	st.entries, st.svcs = entries, slices.Clone(services)
	st.applyPortChanges()

	info := &ClusterInformation{Domain: b.r.opts.Domain, AllNodes: st.allNodes, Nodes: st.backends}
	dropped := st.oneModePerListener(b)
	lost := st.ownNames(b, dropped)
	info.Services = st.assemble(dropped, lost)
	if !unique {
		st.pcs = nil // no longer in step
		// Services of the same name: only their ports' order is left.
		sortFunc(info.Services, func(pa, pc **ServiceInformation) int {
			return cmp.Or(CompareServicePorts(*pa, *pc), strings.Compare((*pa).PortName, (*pc).PortName))
		})
	}
	info.Ports = st.ports(b, dropped)
	st.messages(b)
	info.filler = st.views(info)
	return info
}

// updateNodes builds the nodes when they changed, keeping the previous
// slices when the result is the same (a node's heartbeat changes its
// object, not its Node).
func (st *modelState) updateNodes(r *Renderer, in []*kubeapi.Node) {
	if st.nodesBuilt && slices.EqualFunc(st.nodesIn, in, func(a, b *kubeapi.Node) bool { return sameObject(&a.Metadata, &b.Metadata) }) {
		copy(st.nodesIn, in) // let the replaced objects go
		return
	}
	nb := &builder{r: r}
	all, backends := nb.nodes(in, st.allNodes)
	st.nodesIn = slices.Clone(in)
	if st.nodesBuilt && equalNodes(all, st.allNodes) && equalNodes(backends, st.backends) && slices.Equal(nb.w, st.nodeWarnings) {
		return // byFamily and familyWarnings follow from backends
	}
	var fw [2]warnings
	byFamily := [2][]Node{nb.familyBackends(backends, false, &fw[0]), nb.familyBackends(backends, true, &fw[1])}
	st.allNodes, st.backends, st.byFamily, st.nodeWarnings, st.familyWarnings = all, backends, byFamily, nb.w, fw
	st.nodesGen++
	st.changed = true
	st.nodesBuilt = true
}

// updateSlices groups snap's EndpointSlices by service, and returns the
// services whose slices may have changed, or all when every one may have.
func (st *modelState) updateSlices(in []*kubeapi.EndpointSlice, use endpointUse) (affected map[svcKey]bool, all bool) {
	all = st.endpoints != use
	st.endpoints = use
	if st.groups != nil && len(in) == len(st.slicesIn) {
		same := true
		for i, s := range in {
			if st.slicesIn[i] != s {
				same = false
				break
			}
		}
		if same {
			return nil, all
		}
	}
	var prev []*kubeapi.EndpointSlice
	if st.slicesSorted {
		prev = st.slicesIn
	}
	sorted := inOrder(in, prev, func(s *kubeapi.EndpointSlice) *kubeapi.ObjectMeta { return &s.Metadata })
	if st.groups == nil || !sorted || !st.slicesSorted {
		st.groups = make(map[svcKey][]*kubeapi.EndpointSlice)
		for _, s := range in {
			if name := s.ServiceName(); name != "" {
				k := svcKey{s.Metadata.Namespace, name}
				st.groups[k] = append(st.groups[k], s)
			}
		}
		st.slicesIn, st.slicesSorted = slices.Clone(in), sorted
		return nil, true
	}
	// Both lists are sorted: walk them together.
	affected = make(map[svcKey]bool)
	removed := make(map[*kubeapi.EndpointSlice]bool)
	added := make(map[svcKey][]*kubeapi.EndpointSlice)
	gone := func(s *kubeapi.EndpointSlice) {
		if name := s.ServiceName(); name != "" {
			affected[svcKey{s.Metadata.Namespace, name}] = true
			removed[s] = true
		}
	}
	came := func(s *kubeapi.EndpointSlice) {
		if name := s.ServiceName(); name != "" {
			k := svcKey{s.Metadata.Namespace, name}
			affected[k] = true
			added[k] = append(added[k], s)
		}
	}
	old := st.slicesIn
	i, j := 0, 0
	for i < len(old) || j < len(in) {
		if i < len(old) && j < len(in) && old[i] == in[j] {
			i, j = i+1, j+1
			continue
		}
		c := 0
		switch {
		case i == len(old):
			c = 1
		case j == len(in):
			c = -1
		default:
			c = compareMeta(&old[i].Metadata, &in[j].Metadata)
		}
		switch {
		case c < 0:
			gone(old[i])
			i++
		case c > 0:
			came(in[j])
			j++
		default:
			gone(old[i])
			came(in[j])
			i, j = i+1, j+1
		}
	}
	for k := range affected {
		var g []*kubeapi.EndpointSlice
		for _, s := range st.groups[k] {
			if !removed[s] {
				g = append(g, s)
			}
		}
		g = append(g, added[k]...)
		sortFunc(g, func(a, b **kubeapi.EndpointSlice) int { return compareMeta(&(*a).Metadata, &(*b).Metadata) })
		if len(g) == 0 {
			delete(st.groups, k)
		} else {
			st.groups[k] = g
		}
	}
	st.slicesIn = slices.Clone(in)
	return affected, all
}

// entry returns the entry of svc for this render: prev when its inputs are
// the same, else a new one, which joins the indexes in prev's stead.
// slicesChanged tells that svc's EndpointSlices may differ from prev's;
// pos is its index in the entries.
func (st *modelState) entry(b *builder, prev *svcEntry, svc *kubeapi.Service, k svcKey, slicesChanged bool, pos int) *svcEntry {
	if prev != nil && sameObject(&prev.svc.Metadata, &svc.Metadata) {
		prev.svc = svc
		if len(prev.infos) == 0 {
			return prev // neither endpoints nor nodes matter
		}
		same := prev.endpoints == st.endpoints
		if same && slicesChanged && st.endpoints == backendsOnly && prev.infos[0].ExternalTrafficPolicy != "Local" {
			prev.slices = st.groups[k] // which its ports do not read
		} else if same && slicesChanged {
			g := st.groups[k]
			if same = sameSlices(prev.slices, g); same {
				prev.slices = g
			}
		}
		if same && (prev.nodesGen == st.nodesGen || st.rebase(prev)) {
			return prev
		}
	}
	e := st.buildEntry(b, svc, k, st.groups[k], prev)
	e.pos = pos
	if prev != nil && e.sameAs(prev) {
		prev.svc, prev.slices, prev.endpoints = svc, e.slices, e.endpoints
		return prev
	}
	st.join(e)
	if prev != nil {
		st.leave(prev)
	}
	return e
}

// parallelBuildMin is the number of new services from which a build
// runs on every CPU: at start-up, the model of 10,000 services took
// 0.3 s on one.
var parallelBuildMin = 512 // a variable for tests

// buildAll builds a new entry for every service, on every CPU. Building
// an entry reads the state (groups, backends, endpoints, nodesGen) and
// writes only ips, under ipsMu.
func (st *modelState) buildAll(b *builder, services []*kubeapi.Service) []*svcEntry {
	out := make([]*svcEntry, len(services))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(64)) - 64
				if i >= len(services) {
					return
				}
				for k := i; k < min(i+64, len(services)); k++ {
					key := metaKey(&services[k].Metadata)
					out[k] = st.buildEntry(b, services[k], key, st.groups[key], nil)
				}
			}
		})
	}
	wg.Wait()
	return out
}

// buildEntry builds the entry of svc, sharing with prev, the entry it
// replaces (or nil), every value that is the same.
func (st *modelState) buildEntry(b *builder, svc *kubeapi.Service, k svcKey, group []*kubeapi.EndpointSlice, prev *svcEntry) *svcEntry {
	eb := &builder{r: b.r, sanity: b.sanity, ips: st.ips, ipsMu: &st.ipsMu}
	infos := eb.service(nil, svc, st.backendsOf(svc), group, st.endpoints)
	stableSortFunc(infos, func(a, b *ServiceInformation) int { return comparePortsOfService(*a, *b) })
	e := &svcEntry{key: k, svc: svc, slices: group, endpoints: st.endpoints, nodesGen: st.nodesGen, infos: infos}
	if len(eb.w) > 0 || len(eb.notes) > 0 {
		e.msgs = &entryMessages{warnings: eb.w, notes: eb.notes}
	}
	e.meta = make([]portMeta, len(infos))
	var nameWarns [][]string // by port; nil while no name is dropped
	for i := range infos {
		s := &infos[i]
		var dropped warnings
		if prev != nil {
			// sort.Search, as in nodes.
			if j := sort.Search(len(prev.infos), func(j int) bool { return comparePortsOfService(prev.infos[j], *s) >= 0 }); j < len(prev.infos) && comparePortsOfService(prev.infos[j], *s) == 0 {
				reuse(s, &prev.infos[j], prev.nodesGen == st.nodesGen)
				if s.names != nil && prev.msgs != nil && j < len(prev.msgs.names) {
					dropped = prev.msgs.names[j] // the names reused, their warnings too
				}
			}
		}
		if s.names == nil {
			names, err := computeServerNames(b.r.names, *s, b.r.names.domain, &dropped)
			if p := prevNames(infos, i); p != nil && err == nil && p.err == nil && slices.Equal(p.names, names) {
				// The same names as the service's previous port: one copy.
				// Not the same nameSet, which tells sameAs and the template
				// cache that the port is the same.
				names = p.names
			}
			s.names = &nameSet{src: b.r.names, done: true, names: names, err: err}
		}
		if len(dropped) > 0 {
			if nameWarns == nil {
				nameWarns = make([][]string, len(infos))
			}
			nameWarns[i] = dropped
		}
		e.meta[i] = newPortMeta(s)
	}
	if nameWarns != nil {
		if e.msgs == nil {
			e.msgs = &entryMessages{}
		}
		e.msgs.names = nameWarns
		for _, l := range nameWarns {
			for _, w := range l { // the ports of a service mostly drop the same names
				if !slices.Contains(e.msgs.warnings, w) {
					e.msgs.warnings = append(e.msgs.warnings, w)
				}
			}
		}
	}
	return e
}

// prevNames is the nameSet of the port before infos[i], if it is one the
// model made (done, nothing lost): its names may be shared.
func prevNames(infos []ServiceInformation, i int) *nameSet {
	if i == 0 {
		return nil
	}
	if p := infos[i-1].names; p != nil && p.done && p.lost == nil {
		return p
	}
	return nil
}

// comparePortsOfService is the order of one service's ports in
// ClusterInformation.Services.
func comparePortsOfService(a, b ServiceInformation) int {
	return cmp.Or(
		cmp.Compare(a.Port.Port, b.Port.Port),
		strings.Compare(a.Port.Protocol, b.Port.Protocol),
		strings.Compare(a.PortName, b.PortName),
	)
}

// sameAs reports whether e, just built, is prev over again: every port the
// same, by identity, and the same warnings and notes.
func (e *svcEntry) sameAs(prev *svcEntry) bool {
	if prev.nodesGen != e.nodesGen || len(e.infos) != len(prev.infos) ||
		!slices.Equal(e.warnings(), prev.warnings()) || !slices.Equal(e.notes(), prev.notes()) {
		return false
	}
	for i := range e.infos {
		a, c := &e.infos[i], &prev.infos[i]
		if a.names != c.names || !sameSlice(a.Endpoints, c.Endpoints) || !sameSlice(a.Backends, c.Backends) {
			return false
		}
	}
	return true
}

// reuse makes s share o's values where they are equal; o is the same port
// of the previous version of the service. sameNodes tells that o was
// built from the same nodes as s (a node's Address still depends on the
// service's IP family). When every value but Endpoints and
// Backends is then shared, s shares o's server names too: the name
// templates cannot read those two.
func reuse(s, o *ServiceInformation, sameNodes bool) {
	same := shareValues(s, o) && s.Port.Port == o.Port.Port &&
		s.Port.Mode == o.Port.Mode && s.Port.Protocol == o.Port.Protocol && s.NodePort == o.NodePort &&
		s.Timeout == o.Timeout && s.PortName == o.PortName && s.TargetPort == o.TargetPort &&
		s.AppProtocol == o.AppProtocol
	if equalNil(s.Port.IP, o.Port.IP) && s.Port.IP.Equal(o.Port.IP) && len(s.Port.IP) == len(o.Port.IP) {
		s.Port.IP = o.Port.IP
	} else {
		same = false
	}
	if equalNil(s.Endpoints, o.Endpoints) && slices.Equal(s.Endpoints, o.Endpoints) {
		s.Endpoints = o.Endpoints
	}
	if sameNodes && equalNil(s.Backends, o.Backends) &&
		slices.EqualFunc(s.Backends, o.Backends, func(a, b Node) bool { return a.Name == b.Name && a.Address == b.Address }) {
		s.Backends = o.Backends
	}
	if same {
		s.names = o.names
	}
}

// shareValues makes s hold o's service values when they are equal, and
// reports whether they are. Else s's own values share o's slices that
// are equal: s's are the new entry's, which no earlier render holds.
func shareValues(s, o *ServiceInformation) bool {
	v, w := s.serviceValues, o.serviceValues
	if v == w {
		return true
	}
	same := v.Name == w.Name && v.Namespace == w.Namespace && v.Type == w.Type &&
		v.ExternalTrafficPolicy == w.ExternalTrafficPolicy && v.HealthCheckNodePort == w.HealthCheckNodePort &&
		v.SessionAffinity == w.SessionAffinity && v.LoadBalancerIP == w.LoadBalancerIP && v.created.Equal(w.created)
	// Each equal list is shared, whatever the others.
	external := shareStrings(&v.External, w.External)
	externalIPs := shareStrings(&v.ExternalIPs, w.ExternalIPs)
	families := shareStrings(&v.IPFamilies, w.IPFamilies)
	ranges := shareStrings(&v.LoadBalancerSourceRanges, w.LoadBalancerSourceRanges)
	same = same && external && externalIPs && families && ranges
	if slices.Equal(v.labels, w.labels) {
		v.labels = w.labels
	} else {
		same = false
	}
	if slices.Equal(v.annotations, w.annotations) {
		v.annotations = w.annotations
	} else {
		same = false
	}
	if same {
		s.serviceValues = w
	}
	return same
}

// primaryFamily returns 0 for a single-stack IPv4 service, 1 for IPv6,
// else -1: none said, or dual-stack, whose node port kube-proxy serves on
// the nodes' addresses of both families.
func primaryFamily(svc *kubeapi.Service) int {
	if f := svc.Spec.IPFamilies; len(f) == 1 {
		switch f[0] {
		case "IPv4":
			return 0
		case "IPv6":
			return 1
		}
	}
	return -1
}

// backendsOf returns the backends of svc: those of its IP family when it
// is single-stack.
func (st *modelState) backendsOf(svc *kubeapi.Service) []Node {
	if f := primaryFamily(svc); f >= 0 {
		return st.byFamily[f]
	}
	return st.backends
}

// shareStrings makes *a the very slice b when they hold the same strings
// (both nil or both not), and reports whether they do.
//
//go:noinline
func shareStrings(a *[]string, b []string) bool {
	if equalNil(*a, b) && slices.Equal(*a, b) {
		*a = b
		return true
	}
	return false
}

// rebase gives e's ports the new nodes as backends. It returns false,
// changing nothing, for a service of policy Local whose ports did not
// keep their endpoints (backendsOnly): a new entry is built from its
// EndpointSlices.
func (st *modelState) rebase(e *svcEntry) bool {
	local := len(e.infos) > 0 && e.infos[0].ExternalTrafficPolicy == "Local"
	if local && e.endpoints == backendsOnly {
		return false
	}
	infos := slices.Clone(e.infos)
	backends := st.backendsOf(e.svc)
	for i := range infos {
		s := &infos[i]
		s.fp = nextFingerprint()
		s.Backends = backends
		if local && e.endpoints == allEndpoints {
			s.Backends = localBackends(backends, readyNodes(s.Endpoints), infos[:i])
		}
		e.meta[i].pub, e.meta[i].last = published{}, nil
	}
	e.infos, e.nodesGen = infos, st.nodesGen
	st.touch(e)
	return true
}

// assemble returns the services of this render: every entry's ports but
// the dropped ones, those that lost names in a variant without them.
func (st *modelState) assemble(dropped map[portRef]bool, lost map[portRef]map[string]bool) []*ServiceInformation {
	if !st.changed && st.seq > 1 && !st.published(dropped, lost) {
		return st.services
	}
	var out []*ServiceInformation
	var pcs []*portCount
	if n := st.index.count - len(dropped); n > 0 {
		out = make([]*ServiceInformation, 0, n)
		pcs = make([]*portCount, 0, n)
	}
	var now []portRef
	for _, e := range st.entries {
		if e.mark != st.seq {
			for i := range e.infos {
				out = append(out, &e.infos[i])
				pcs = append(pcs, e.meta[i].pc)
			}
			continue
		}
		for i := range e.infos {
			ref := portRef{e, i}
			if dropped[ref] {
				now = append(now, ref)
				continue
			}
			if l := lost[ref]; l != nil {
				out = append(out, &e.variant(i, l).info)
				pcs = append(pcs, e.meta[i].pc)
				now = append(now, ref)
				continue
			}
			out = append(out, &e.infos[i])
			pcs = append(pcs, e.meta[i].pc)
		}
	}
	// A port published differently from the last render changes the
	// views of its listener.
	for _, ref := range slices.Concat(st.index.affected, now) {
		e, m := ref.e, &ref.e.meta[ref.i]
		if e.gone {
			continue // leave touched its ports
		}
		var p published
		if dropped[ref] {
			p.dropped = true
		} else if lost[ref] != nil {
			p.v = m.last
		}
		if p != m.pub && e.touched != st.seq {
			st.index.touched[keyOf(e.infos[ref.i].Port)] = true
		}
		m.pub = p
	}
	st.index.affected = now
	st.services, st.pcs = out, pcs
	return out
}

// variant returns port i without the lost names, the one of the last
// render when it lost the same names.
func (e *svcEntry) variant(i int, lost map[string]bool) *variant {
	m := &e.meta[i]
	if v := m.last; v != nil && equalMaps(v.lost, lost) {
		return v
	}
	base := &e.infos[i]
	names := *base.names
	names.lost = lost
	names.names = names.keep(base.names.names)
	v := &variant{lost: lost, info: *base}
	v.info.fp = nextFingerprint()
	v.info.names = &names
	values := *base.serviceValues // the port's own: its service's other ports keep theirs
	values.External = nil
	for _, x := range base.External {
		if !lost[nameKey(ServerName(x))] {
			values.External = append(values.External, x)
		}
	}
	v.info.serviceValues = &values
	m.last = v
	return v
}

// messages adds the entries' warnings and notes to b's, both sorted.
func (st *modelState) messages(b *builder) {
	if st.messagesDirty {
		st.warnings, st.notes = nil, nil
		for _, e := range st.entries {
			st.warnings = append(st.warnings, e.warnings()...)
			st.notes = append(st.notes, e.notes()...)
		}
		slices.Sort(st.warnings)
		slices.Sort(st.notes)
		st.messagesDirty = false
	}
	b.w = append(b.w, st.nodeWarnings...)
	for f, w := range st.familyWarnings {
		if len(w) == 0 {
			continue // most clusters: no pass over the services at each render
		}
		for _, s := range st.svcs {
			if primaryFamily(s) == f {
				b.w = append(b.w, w...)
				break
			}
		}
	}
	b.w = mergeSorted(b.w, st.warnings)
	b.notes = mergeSorted(b.notes, st.notes)
}

// mergeSorted sorts a and returns a new slice holding a and b (sorted).
func mergeSorted(a, b []string) []string {
	slices.Sort(a)
	if len(a)+len(b) == 0 {
		return nil
	}
	out := make([]string, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0] <= b[0] {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// views returns the port views of this render's services: those of the
// last render that no change touched, when that render's template used
// them, and the others built on first use.
func (st *modelState) views(info *ClusterInformation) *viewFiller {
	f := &viewFiller{services: info.Services}
	if prev := st.filler; prev != nil && prev.done.Load() {
		f.carried = prev.carried.with(prev.keys, prev.views)
		f.keys = st.index.touched
		if len(f.keys) <= fewKeys && st.pcs != nil && len(st.pcs) == len(info.Services) {
			// The portCounts of the touched ports, resolved now: the
			// index moves on with the next render.
			f.pcs = st.pcs
			for k := range f.keys {
				f.want = append(f.want, wantedPort{k, st.index.portCounts[k]})
			}
		}
	}
	st.filler = f
	return f
}

// published reports whether a port is to be published otherwise than in
// the last render; it is only asked when no entry changed.
func (st *modelState) published(dropped map[portRef]bool, lost map[portRef]map[string]bool) bool {
	if len(st.index.affected) != len(dropped)+len(lost) {
		return true
	}
	for _, ref := range st.index.affected {
		m := &ref.e.meta[ref.i]
		switch {
		case dropped[ref]:
			if !m.pub.dropped {
				return true
			}
		case lost[ref] != nil:
			if m.pub.v == nil || !equalMaps(m.pub.v.lost, lost[ref]) {
				return true
			}
		default:
			return true
		}
	}
	return false
}

func (st *modelState) touch(e *svcEntry) {
	if len(e.infos) > 0 {
		st.changed = true
	}
	e.touched = st.seq
	for i := range e.meta {
		st.index.touched[keyOf(e.infos[i].Port)] = true
	}
}

// join adds e to the indexes.
func (st *modelState) join(e *svcEntry) {
	st.index.join(e)
	st.touch(e)
	if e.msgs != nil {
		st.messagesDirty = true
	}
}

// leave removes e from the indexes.
func (st *modelState) leave(e *svcEntry) {
	e.gone = true
	st.index.leave(e)
	st.touch(e)
	if e.msgs != nil {
		st.messagesDirty = true
	}
}

// sameSlice reports whether a and b are the same slice: the same array
// and length.
func sameSlice[E any](a, b []E) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// equalNil reports whether a and b are both nil or both not: a template
// can tell them apart (printf "%#v").
func equalNil[E any](a, b []E) bool { return (a == nil) == (b == nil) }

// equalMaps reports whether a and b hold the same entries and are both
// nil or both not.
func equalMaps[K, V comparable](a, b map[K]V) bool {
	return (a == nil) == (b == nil) && maps.Equal(a, b)
}

// equalNodes reports whether a and b hold the same nodes, values compared
// (nil and empty told apart: a template can tell them). reflect.DeepEqual
// rather than a comparison of each field: nodes are compared when one of
// them changed, and the field by field code was 2 KB of the binary.
func equalNodes(a, b []Node) bool { return reflect.DeepEqual(a, b) }
