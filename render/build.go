package render

import (
	"cmp"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/kube2lb/kube2lb/kubeapi"
)

// LabelExcludeFromLB marks nodes that must not be load-balancer backends.
const LabelExcludeFromLB = "node.kubernetes.io/exclude-from-external-load-balancers"

// TaintToBeDeleted marks the nodes the cluster autoscaler is about to
// delete: not load-balancer backends either.
const TaintToBeDeleted = "ToBeDeletedByClusterAutoscaler"

// isObjectName reports whether s is a namespace, service or node name as
// the API validates them, `^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`;
// anything else is skipped rather than rendered. By hand: the regexp was
// a tenth of the start-up's CPU at 10,000 services (TestNameValidators
// checks that both agree). Not inlined: the binary's size (issue 9).
//
//go:noinline
func isObjectName(s string) bool {
	return token(s, 253, isLowerAlnum, func(c byte) bool { return isLowerAlnum(c) || c == '.' || c == '-' }, isLowerAlnum)
}

// token reports whether s is 1 to max bytes long, first, middle and last
// telling the bytes allowed at each place (a single byte is both first and
// last).
func token(s string, max int, first, middle, last func(byte) bool) bool {
	n := len(s)
	if n == 0 || n > max || !first(s[0]) || !last(s[n-1]) {
		return false
	}
	for i := 1; i < n-1; i++ {
		if !middle(s[i]) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// builder collects the warnings and notes of one render, and builds the
// parts of the model (nodes, one service's ports) that modelState keeps
// between renders.
type builder struct {
	r         *Renderer
	w         warnings
	notes     warnings // logged at level Debug: services left alone on purpose
	sanity    *sanity  // nil when the checks are off
	conflicts int      // server names dropped by ownership

	// ips interns load balancer IPs, so that every PortSpec of one
	// address shares one net.IP across services and renders; nil: none.
	ips   map[netip.Addr]net.IP
	ipsMu *sync.Mutex // guards ips when not nil

	endpoints endpointUse // of the render
}

// byAgeOf returns the indexes of services from the oldest service to the
// newest: creationTimestamp, then namespace, then name, the order in which
// services claim listeners and server names (see compareAge).
func byAgeOf(services []*ServiceInformation) []int {
	return ageOrder(len(services), func(i int) *ServiceInformation { return services[i] })
}

func ageOrder(n int, at func(int) *ServiceInformation) []int {
	// When the services come in namespace and name order, as .Services
	// and the listener views do, a stable sort by creationTimestamp alone
	// is the order: the index keeps it stable. A listener of a large
	// cluster has thousands of services, sorted again whenever one of
	// them changes, so the common case (whole seconds, as the API server
	// writes them) is a radix sort of the seconds and the index packed in
	// one integer.
	keys := make([]ageKey, n)
	inOrder, wholeSeconds := true, true
	var least, most int64
	for i := range keys {
		s := at(i)
		keys[i] = ageKey{sec: s.created.Unix(), nsec: int32(s.created.Nanosecond()), i: int32(i)}
		wholeSeconds = wholeSeconds && keys[i].nsec == 0
		if i == 0 {
			least, most = keys[i].sec, keys[i].sec
		}
		least, most = min(least, keys[i].sec), max(most, keys[i].sec)
		if i > 0 && inOrder {
			p := at(i - 1)
			inOrder = cmp.Or(strings.Compare(p.Namespace, s.Namespace), strings.Compare(p.Name, s.Name)) <= 0
		}
	}
	order := make([]int, n)
	if idxBits := bits.Len(uint(n)); inOrder && wholeSeconds && bits.Len64(uint64(most-least))+idxBits <= 64 {
		packed := make([]uint64, n)
		for i, k := range keys {
			packed[i] = uint64(k.sec-least)<<idxBits | uint64(i)
		}
		radixSort(packed, bits.Len64(uint64(most-least))+idxBits)
		mask := uint64(1)<<idxBits - 1
		for j, k := range packed {
			order[j] = int(k & mask)
		}
		return order
	}
	if inOrder {
		sortFunc(keys, func(a, b *ageKey) int {
			return cmp.Or(cmp.Compare(a.sec, b.sec), cmp.Compare(a.nsec, b.nsec), cmp.Compare(a.i, b.i))
		})
	} else {
		sortFunc(keys, func(a, b *ageKey) int {
			x, y := at(int(a.i)), at(int(b.i))
			return cmp.Or(x.created.Compare(y.created), strings.Compare(x.Namespace, y.Namespace), strings.Compare(x.Name, y.Name), cmp.Compare(a.i, b.i))
		})
	}
	for j, k := range keys {
		order[j] = int(k.i)
	}
	return order
}

// radixSort sorts keys, whose values are below 1<<width, one byte at a
// time from the lowest.
func radixSort(keys []uint64, width int) {
	tmp := make([]uint64, len(keys))
	for shift := 0; shift < width; shift += 8 {
		var count [257]int
		for _, k := range keys {
			count[(k>>shift)&0xff+1]++
		}
		for d := 1; d < len(count); d++ {
			count[d] += count[d-1]
		}
		for _, k := range keys {
			d := (k >> shift) & 0xff
			tmp[count[d]] = k
			count[d]++
		}
		keys, tmp = tmp, keys
	}
	if (width+7)/8%2 == 1 {
		copy(tmp, keys) // the sorted keys are in the scratch slice
	}
}

// ageKey is a service's creationTimestamp and index, for ageOrder.
type ageKey struct {
	sec  int64
	nsec int32
	i    int32
}

// ipsOverlap reports whether listeners on IPs a and b can receive the same
// connections: the same IP, or either one a wildcard (0.0.0.0 or ::).
func ipsOverlap(a, b net.IP) bool {
	return a.Equal(b) || a.IsUnspecified() || b.IsUnspecified()
}

// nameKey is the form in which server names are compared: host names
// lower-cased, regexps as written.
func nameKey(n ServerName) string {
	if n.IsRegexp() {
		return string(n)
	}
	return strings.ToLower(string(n))
}

// classServed reports whether kube2lb serves a LoadBalancer service of
// this spec.loadBalancerClass: with Options.LoadBalancerClass set, only
// services of that class; without, only services of no class, so that
// services meant for another implementation (MetalLB, kube-vip, a
// cloud's) are left alone.
func (b *builder) classServed(class *string) bool {
	want := b.r.opts.LoadBalancerClass
	if class == nil || *class == "" {
		return want == ""
	}
	return *class == want
}

// nodes returns all valid nodes and the backend nodes, sorted by name.
// A node keeps the map of labels of its namesake in prev (sorted by
// name), the last nodes built, when its labels are the same: nodes
// change often (their status), their labels seldom.
func (b *builder) nodes(in []*kubeapi.Node, prev []Node) (all, backends []Node) {
	var candidates []Node // not excluded, not being deleted
	for _, n := range in {
		if !isObjectName(n.Metadata.Name) {
			b.w.add("node %s skipped: invalid name", quote(n.Metadata.Name))
			continue
		}
		node := Node{
			Name:          n.Metadata.Name,
			Ready:         n.Ready(),
			Unschedulable: n.Spec.Unschedulable,
		}
		labels := safePairs(n.Metadata.Labels, "")
		// sort.Search, not slices.BinarySearchFunc: its copy for Node
		// was 1 KB of the 9 MB binary.
		if i := sort.Search(len(prev), func(i int) bool { return prev[i].Name >= node.Name }); i < len(prev) && prev[i].Name == node.Name && samePairs(labels, prev[i].Labels) {
			node.Labels = prev[i].Labels
		} else {
			node.Labels = labels.Map()
		}
		node.Addresses = b.nodeAddresses(n)
		node.Address = b.preferredAddress(node)
		node.BracketedAddress = node.Address
		if strings.Contains(node.Address, ":") {
			node.BracketedAddress = "[" + node.Address + "]"
		}
		all = append(all, node)
		if included(n) {
			candidates = append(candidates, node)
		}
	}
	sortFunc(all, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
	sortFunc(candidates, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
	all, candidates = sameNameOnce(all), sameNameOnce(candidates)
	for _, n := range candidates {
		if n.Ready {
			backends = append(backends, n)
		}
	}
	// When no node is Ready the likely cause is the control plane losing
	// touch with the kubelets, not every node failing at once: keep them
	// all rather than turn a control-plane outage into a traffic outage.
	// The load balancer's own health checks still apply.
	if len(backends) == 0 && len(candidates) > 0 {
		b.w.add("no node is Ready: using all %d nodes that are not excluded as backends", len(candidates))
		backends = candidates
	}
	return all, backends
}

// included reports whether a node may be a backend, as Kubernetes' service
// controller decides for cloud load balancers: not being deleted, not
// labelled LabelExcludeFromLB with a value other than a false one
// (strconv.ParseBool's: an empty or unparsable value excludes), not
// tainted TaintToBeDeleted.
func included(n *kubeapi.Node) bool {
	if v, ok := n.Metadata.Labels.Get(LabelExcludeFromLB); ok {
		if exclude, err := strconv.ParseBool(v); err != nil || exclude {
			return false
		}
	}
	for _, t := range n.Spec.Taints {
		if t == TaintToBeDeleted {
			return false
		}
	}
	return n.Metadata.DeletionTimestamp == nil
}

// sameNameOnce keeps the first of the nodes of one name, which sorting
// by name made adjacent. (slices.CompactFunc, for a struct this large,
// was 2 KB of the 9 MB binary.)
func sameNameOnce(nodes []Node) []Node {
	j := 0
	for i := range nodes {
		if j == 0 || nodes[i].Name != nodes[j-1].Name {
			nodes[j] = nodes[i]
			j++
		}
	}
	clear(nodes[j:])
	return nodes[:j]
}

func (b *builder) nodeAddresses(n *kubeapi.Node) NodeAddresses {
	var a NodeAddresses
	for _, addr := range n.Status.Addresses {
		v := addr.Address
		switch addr.Type {
		case kubeapi.NodeInternalIP, kubeapi.NodeExternalIP:
			ip, err := netip.ParseAddr(v)
			if err != nil || ip.Zone() != "" {
				b.w.add("node %s: address %s %s ignored: not an IP", n.Metadata.Name, addr.Type, quote(v))
				continue
			}
			v = ip.Unmap().String()
		case kubeapi.NodeHostName, kubeapi.NodeInternalDNS, kubeapi.NodeExternalDNS:
			v = strings.ToLower(v)
			if strings.HasPrefix(v, "*") || !validDNSName(v) {
				b.w.add("node %s: address %s %s ignored: not a DNS name", n.Metadata.Name, addr.Type, quote(v))
				continue
			}
		default:
			continue
		}
		a.All = append(a.All, NodeAddress{Type: addr.Type, Address: v})
		var first *string
		switch addr.Type {
		case kubeapi.NodeInternalIP:
			first = &a.InternalIP
		case kubeapi.NodeExternalIP:
			first = &a.ExternalIP
		case kubeapi.NodeHostName:
			first = &a.Hostname
		case kubeapi.NodeInternalDNS:
			first = &a.InternalDNS
		case kubeapi.NodeExternalDNS:
			first = &a.ExternalDNS
		}
		if *first == "" {
			*first = v
		}
	}
	return a
}

// addressFallback is the order in which a node's address is chosen when it
// has none of the preferred type: IPs before names, internal before
// external.
var addressFallback = []string{kubeapi.NodeInternalIP, kubeapi.NodeExternalIP, kubeapi.NodeInternalDNS, kubeapi.NodeExternalDNS, kubeapi.NodeHostName}

func (b *builder) preferredAddress(n Node) string {
	get := func(t string) string {
		switch t {
		case kubeapi.NodeInternalIP:
			return n.Addresses.InternalIP
		case kubeapi.NodeExternalIP:
			return n.Addresses.ExternalIP
		case kubeapi.NodeHostName:
			return n.Addresses.Hostname
		case kubeapi.NodeInternalDNS:
			return n.Addresses.InternalDNS
		case kubeapi.NodeExternalDNS:
			return n.Addresses.ExternalDNS
		}
		return ""
	}
	want := b.r.opts.NodeAddressType
	if a := get(want); a != "" {
		return a
	}
	for _, t := range addressFallback {
		if a := get(t); a != "" {
			b.w.add("node %s has no %s address: using its %s %s", n.Name, want, t, a)
			return a
		}
	}
	b.w.add("node %s has no address: using its name", n.Name)
	return n.Name
}

// familyBackends returns backends as the services whose primary IP
// family is IPv6 (v6) or IPv4 reach them. kube-proxy serves a node port
// on the node's addresses of the service's families only, so a node whose
// address is of the other family is given its address of this family
// (the preferred type first, then InternalIP, ExternalIP), or is left out
// when it has none. A node known by a name stays as it is, and so does
// every node when none has an address of this family (a single-stack
// cluster). It returns backends itself when no node changes, and adds to
// w a warning for each node left out.
func (b *builder) familyBackends(backends []Node, v6 bool, w *warnings) []Node {
	want, name := 4, "IPv4"
	if v6 {
		want, name = 6, "IPv6"
	}
	// The nodes' addresses of the family, for those whose Address is of
	// the other.
	alt := make([]string, len(backends))
	served, changed := false, false // some node has an address of the family; some node's Address is of the other
	for i := range backends {
		n := &backends[i]
		for _, t := range [...]string{b.r.opts.NodeAddressType, kubeapi.NodeInternalIP, kubeapi.NodeExternalIP} {
			if alt[i] == "" {
				alt[i] = familyAddress(n, t, want)
			}
		}
		served = served || alt[i] != ""
		if f := ipFamily(n.Address); f == 0 || f == want {
			alt[i] = "" // a name, or of the family: reached as it is
			continue
		}
		changed = true
		if alt[i] == "" {
			w.add("node %s has no %s address: not a backend of %s services", n.Name, name, name)
		}
	}
	if !served || !changed {
		*w = nil
		return backends
	}
	out := make([]Node, 0, len(backends))
	for i := range backends {
		a := alt[i]
		if f := ipFamily(backends[i].Address); a == "" && f != want && f != 0 {
			continue // warned above
		}
		out = append(out, backends[i:i+1]...) // a copy by the runtime: the binary's size
		if a != "" {
			n := &out[len(out)-1]
			n.Address, n.BracketedAddress = a, a
			if v6 {
				n.BracketedAddress = "[" + a + "]"
			}
		}
	}
	return out
}

// sourceRanges returns the client CIDRs a LoadBalancer service admits,
// masked (10.0.0.0/8): its spec.loadBalancerSourceRanges or, when it has
// none, those of the annotation AnnotationSourceRanges, as the cloud
// providers' helper GetLoadBalancerSourceRanges reads them. Invalid
// entries are dropped with a warning. nil admits every client; ok is false
// when there were entries and none is valid: the service is not served,
// since it would admit every client. Not inlined: the binary's size
// (issue 9).
//
//go:noinline
func sourceRanges(key string, spec *kubeapi.ServiceSpec, ann kubeapi.Pairs, w *warnings) (out []string, ok bool) {
	if spec.Type != kubeapi.ServiceTypeLoadBalancer {
		return nil, true
	}
	ranges, field := spec.LoadBalancerSourceRanges, "spec.loadBalancerSourceRanges"
	v, _ := ann.Get(AnnotationSourceRanges)
	if v = unzero(v); len(ranges) == 0 && v != "" { // trimmed: a blank one admits every client
		ranges, field = strings.Split(v, ","), "annotation "+AnnotationSourceRanges
	}
	// Each range is a rule per port: bounded as host rules are.
	if limit := maxHostRules / max(1, len(spec.Ports)); len(ranges) > limit {
		w.add("service %s: %s: entries × ports over %d rules: first %d used", key, field, maxHostRules, limit)
		ranges = ranges[:limit]
	}
	bad := 0
	for _, s := range ranges {
		p, err := netip.ParsePrefix(unzero(s)) // refuses a zone
		if err != nil {
			if bad++; bad <= maxWarningsPerValue {
				w.add("service %s: %s: entry %s dropped: not a CIDR", key, field, quote(strings.TrimSpace(s)))
			}
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			// As the load balancers see an IPv4 client: nginx and
			// Caddy do not match one against ::ffff:a.b.c.d.
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked().String())
	}
	w.moreDropped(bad, key, field)
	if bad > 0 && out == nil {
		w.add("service %s skipped: %s has no valid entry", key, field)
		return nil, false
	}
	return out, true
}

// unzero returns s without surrounding white space and without the
// leading zeros of an IPv4 address's numbers, of a prefix length
// ("010.0.0.0/08" is "10.0.0.0/8") and of IPv6 groups (the same value,
// in hexadecimal): the API server's validation accepts them, and reads
// them as decimal, as kube-proxy and the cloud providers do; Go's parser
// refuses them. Not inlined: the binary's size (issue 9).
//
//go:noinline
func unzero(s string) string {
	s = strings.TrimSpace(s)
	b := make([]byte, 0, len(s))
	for i := range len(s) {
		if s[i] == '0' && i+1 < len(s) && '0' <= s[i+1] && s[i+1] <= '9' &&
			(len(b) == 0 || b[len(b)-1] == '.' || b[len(b)-1] == '/' || b[len(b)-1] == ':') {
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

// maxHostRules bounds a service's kube2lb/external-domains entries times
// its ports.
const maxHostRules = 10000

// lbIPRefused says why a service may not listen on ip, or "" (see
// Options.LBIPRanges). Not inlined: the binary's size (issue 9).
//
//go:noinline
func (r *Renderer) lbIPRefused(ip netip.Addr) string {
	if r.opts.LBIPRanges == nil {
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() {
			return "a loopback, link-local or multicast address"
		}
		return ""
	}
	for _, p := range r.opts.LBIPRanges {
		if p.Contains(ip) {
			return ""
		}
	}
	return "outside -lb-ip-ranges"
}

// familyAddress returns n's first address of type t and family want (4,
// 6), or "".
//
//go:noinline
func familyAddress(n *Node, t string, want int) string {
	for _, a := range n.Addresses.All {
		if a.Type == t && ipFamily(a.Address) == want {
			return a.Address
		}
	}
	return ""
}

// ipFamily returns 4 for an IPv4 address, 6 for an IPv6 one, else 0.
// Not inlined: a few calls per node when the nodes change, and each
// inlined copy costs the binary (issue 9).
//
//go:noinline
func ipFamily(a string) int {
	ip, err := netip.ParseAddr(a)
	switch {
	case err != nil:
		return 0
	case ip.Is4():
		return 4
	}
	return 6
}

// service appends the exposed ports of one service, in spec order, without
// their server names (see buildEntry).
func (b *builder) service(out []ServiceInformation, svc *kubeapi.Service, nodes []Node, epSlices []*kubeapi.EndpointSlice, use endpointUse) []ServiceInformation {
	spec := &svc.Spec
	if spec.Type != kubeapi.ServiceTypeNodePort && spec.Type != kubeapi.ServiceTypeLoadBalancer {
		return out
	}
	meta := &svc.Metadata
	key := meta.Key()
	if !isObjectName(meta.Namespace) || !isObjectName(meta.Name) {
		b.w.add("service %s skipped: invalid name", quote(key))
		return out
	}
	if spec.Type == kubeapi.ServiceTypeLoadBalancer && !b.classServed(spec.LoadBalancerClass) {
		class := "none"
		if spec.LoadBalancerClass != nil {
			class = quote(*spec.LoadBalancerClass)
		}
		want := "none"
		if b.r.opts.LoadBalancerClass != "" {
			want = quote(b.r.opts.LoadBalancerClass)
		}
		b.notes.add("service %s skipped: load balancer class %s, kube2lb serves %s", key, class, want)
		return out
	}
	ann := meta.Annotations
	v, _ := ann.Get(AnnotationExternalDomains)
	external := externalDomains(key, v, &b.w)
	if len(external) > 0 {
		external = inNamespace(key, meta.Namespace, b.r.names.domain, external, &b.w)
	}
	// Each entry is a host rule on each port: one namespace's annotation
	// (256 KiB make 8,000 names) on a service of 100 ports made a
	// configuration of 90 MB, which the load balancer's check did not
	// pass in time, for every namespace.
	if n := maxHostRules / max(1, len(spec.Ports)); len(external) > n {
		b.w.add("service %s: %s: %d entries × %d ports > %d host rules: first %d used", key, AnnotationExternalDomains, len(external), len(spec.Ports), maxHostRules, n)
		external = external[:n]
	}
	v, _ = ann.Get(AnnotationPortMode)
	modes := portModes(key, v, spec.Ports, &b.w)
	v, _ = ann.Get(AnnotationBackendTimeout)
	timeouts := backendTimeouts(key, v, spec.Ports, &b.w)

	lbIP := b.r.opts.DefaultLBIP
	lbIPText := "" // .LoadBalancerIP: the service's own, as the listener's IP
	if spec.Type == kubeapi.ServiceTypeLoadBalancer && spec.LoadBalancerIP != "" {
		ip, err := netip.ParseAddr(unzero(spec.LoadBalancerIP))
		if err != nil || ip.Zone() != "" {
			b.w.add("service %s skipped: spec.loadBalancerIP %s is not an IP", key, quote(spec.LoadBalancerIP))
			return out
		}
		ip = ip.Unmap()
		if ip.IsUnspecified() {
			// Not one address: 0.0.0.0 and :: would be two wildcard
			// listeners on one port, which overlap (a dual-stack :: takes
			// IPv4 too) and which a load balancer may not tell apart (two
			// catch-all sites in Caddy).
			b.w.add("service %s: spec.loadBalancerIP %s is not one address: served on the default listener", key, ip)
		} else if why := b.r.lbIPRefused(ip); why != "" {
			// Any namespace chooses it: the load balancer would take the
			// host's own services' addresses (Caddy's admin API on
			// 127.0.0.1:2019, an SO_REUSEPORT listener it would share).
			b.w.add("service %s skipped: spec.loadBalancerIP %s is %s", key, ip, why)
			return out
		} else {
			if b.sanity != nil {
				if why := b.sanity.bindable(ip); why != "" {
					b.w.add("service %s skipped: spec.loadBalancerIP %s cannot be bound: %s", key, ip, why)
					return out
				}
			}
			lbIP = b.ip(ip)
			lbIPText = lbIP.String()
		}
	}
	clients, ok := sourceRanges(key, spec, ann, &b.w)
	if !ok {
		return out
	}
	var externalIPs []string
	for _, s := range spec.ExternalIPs {
		// Left out as invalid ones are: those loadBalancerIP may not be,
		// since a template may listen on these too.
		if ip, err := netip.ParseAddr(unzero(s)); err == nil && ip.Zone() == "" && b.r.lbIPRefused(ip.Unmap()) == "" {
			externalIPs = append(externalIPs, ip.Unmap().String())
		}
	}
	policy := spec.ExternalTrafficPolicy
	if policy != "Local" {
		policy = "Cluster"
	}
	affinity := spec.SessionAffinity
	if affinity != "ClientIP" {
		affinity = "None"
	}
	// kube2lb's own annotations reach templates validated, as .External,
	// .Port.Mode and .Timeout, never raw.
	labels, annotations := safePairs(meta.Labels, ""), safePairs(ann, "kube2lb/")
	if out == nil {
		out = make([]ServiceInformation, 0, len(spec.Ports))
	}
	first := len(out) // this service's ports are out[first:]
	values := &serviceValues{
		Name:                     meta.Name,
		Namespace:                meta.Namespace,
		External:                 external,
		Type:                     spec.Type,
		ExternalTrafficPolicy:    policy,
		HealthCheckNodePort:      spec.HealthCheckNodePort,
		SessionAffinity:          affinity,
		LoadBalancerIP:           lbIPText,
		ExternalIPs:              externalIPs,
		IPFamilies:               spec.IPFamilies,
		LoadBalancerSourceRanges: clients,
		labels:                   labels,
		annotations:              annotations,
		created:                  meta.CreationTimestamp,
	}
	for _, port := range spec.Ports {
		proto := lowerProtocol(port.Protocol)
		if !isMode(proto) {
			continue
		}
		if b.sanity != nil && b.sanity.ephemeral(port.Port) {
			b.w.add("service %s: port %d/%s skipped: in the host's ephemeral port range %s",
				key, port.Port, proto, b.sanity.ephemeralRange())
			continue
		}
		if port.Name != "" && !isObjectName(port.Name) {
			b.w.add("service %s: port %d/%s skipped: invalid name %s", key, port.Port, proto, quote(port.Name))
			continue
		}
		mode, ok := modes[port.Name]
		if !ok {
			mode = b.r.opts.DefaultPortMode
		}
		target := port.TargetPort.String()
		if !port.TargetPort.IsString && port.TargetPort.IntVal == 0 {
			target = fmt.Sprint(port.Port) // the API's default
		} else if !isObjectName(target) {
			target = ""
		}
		appProtocol := ""
		if port.AppProtocol != nil && safeValue(*port.AppProtocol) {
			appProtocol = *port.AppProtocol
		}
		si := ServiceInformation{
			serviceValues: values,
			Port: PortSpec{
				IP:       lbIP,
				Port:     port.Port,
				Mode:     mode,
				Protocol: proto,
			},
			NodePort:    port.NodePort,
			Timeout:     timeouts[port.Name],
			PortName:    port.Name,
			TargetPort:  target,
			AppProtocol: appProtocol,
			Backends:    nodes,
			fp:          nextFingerprint(),
		}
		if use == allEndpoints {
			si.Endpoints = endpoints(epSlices, port)
		}
		if policy == "Local" && use != noEndpoints {
			eps := si.Endpoints
			if use == backendsOnly {
				eps = endpoints(epSlices, port)
			}
			si.Backends = localBackends(nodes, readyNodes(eps), out[first:])
		}
		out = append(out, si)
	}
	return out
}

// samePairs reports whether p and m hold the same entries.
func samePairs(p kubeapi.Pairs, m map[string]string) bool {
	if len(p) != len(m) {
		return false
	}
	for _, e := range p {
		if v, ok := m[e.Key]; !ok || v != e.Value {
			return false
		}
	}
	return true
}

// lowerProtocol returns a port's protocol in lower case, "tcp" for none:
// the API's three without a string made per port.
func lowerProtocol(p string) string {
	switch p {
	case "", "TCP":
		return "tcp"
	case "UDP":
		return "udp"
	case "SCTP":
		return "sctp"
	}
	return strings.ToLower(p)
}

// localBackends returns the nodes holding a ready endpoint (in ready), in
// the order of nodes: the Backends of one of ports, the service's ports
// made before, when they are the same (the ports of a service have the
// same pods, mostly).
func localBackends(nodes []Node, ready map[string]bool, ports []ServiceInformation) []Node {
	n := 0
	for _, node := range nodes {
		if ready[node.Name] {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	for _, p := range ports {
		if len(p.Backends) == n && !slices.ContainsFunc(p.Backends, func(node Node) bool { return !ready[node.Name] }) {
			return p.Backends
		}
	}
	out := make([]Node, 0, n)
	for _, node := range nodes {
		if ready[node.Name] {
			out = append(out, node)
		}
	}
	return out
}

// readyNodes returns the nodes holding a ready endpoint of eps.
func readyNodes(eps []ServiceEndpoint) map[string]bool {
	ready := make(map[string]bool)
	for _, e := range eps {
		if e.Ready && e.NodeName != "" {
			ready[e.NodeName] = true
		}
	}
	return ready
}

// endpoints returns the endpoints of a service port, sorted by IP and port.
// Ready endpoints are used; when there is none, serving-but-terminating
// ones are, as kube-proxy does.
func endpoints(epSlices []*kubeapi.EndpointSlice, port kubeapi.ServicePort) []ServiceEndpoint {
	// Collected with their parsed address, for sorting; the model keeps
	// them in a slice of their exact size without it (every endpoint of
	// a large cluster is in the model: 60,000 for `make bench`).
	type sortable struct {
		addr netip.Addr
		ep   ServiceEndpoint
	}
	// One array for them all, rather than one per doubling: 20 MB made
	// and dropped at start-up at make bench's scale (issue 9).
	n := 0
	for _, s := range epSlices {
		n += len(s.Endpoints)
	}
	if n == 0 {
		return nil
	}
	ready := make([]sortable, 0, n)
	var terminating []sortable // rare
	proto := cmp.Or(port.Protocol, "TCP")
	for _, s := range epSlices {
		if s.AddressType != "IPv4" && s.AddressType != "IPv6" {
			continue
		}
		// The slice's ports carry the service port's name, which is
		// how a named targetPort is resolved to a number per pod.
		var target int32
		for _, p := range s.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			pproto := "TCP"
			if p.Protocol != nil {
				pproto = *p.Protocol
			}
			if name == port.Name && pproto == proto && p.Port != nil {
				target = *p.Port
				break
			}
		}
		if target <= 0 || target > 65535 {
			continue
		}
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(e.Addresses[0])
			if err != nil || ip.Zone() != "" {
				continue
			}
			// An IPv4 address parses only in its canonical form: the
			// decoded string is shared rather than formatted again.
			str := e.Addresses[0]
			if !ip.Is4() {
				ip = ip.Unmap()
				str = ip.String()
			}
			ep := ServiceEndpoint{Name: str, IP: str, Port: target}
			if e.TargetRef != nil && isObjectName(e.TargetRef.Name) {
				ep.Name = e.TargetRef.Name
			}
			if e.NodeName != nil && isObjectName(*e.NodeName) {
				ep.NodeName = *e.NodeName
			}
			c := e.Conditions
			// Unset, ready and serving are true (the API's documentation,
			// and kube-proxy).
			isReady := c.Ready == nil || *c.Ready
			serving := c.Serving == nil || *c.Serving
			isTerminating := c.Terminating != nil && *c.Terminating
			switch {
			case isReady:
				ep.Ready = true
				ready = append(ready, sortable{ip, ep})
			case serving && isTerminating:
				terminating = append(terminating, sortable{ip, ep})
			}
		}
	}
	all := ready
	if len(all) == 0 {
		all = terminating
	}
	if len(all) == 0 {
		return nil
	}
	sortFunc(all, func(a, b *sortable) int {
		return cmp.Or(
			a.addr.Compare(b.addr),
			cmp.Compare(a.ep.Port, b.ep.Port),
			strings.Compare(a.ep.Name, b.ep.Name),
			strings.Compare(a.ep.NodeName, b.ep.NodeName),
		)
	})
	// An address and port once (in two slices while they are updated):
	// the first of the order above.
	dup := func(i int) bool { return i > 0 && all[i].addr == all[i-1].addr && all[i].ep.Port == all[i-1].ep.Port }
	kept := 0
	for i := range all {
		if !dup(i) {
			kept++
		}
	}
	eps := make([]ServiceEndpoint, 0, kept)
	for i := range all {
		if !dup(i) {
			eps = append(eps, all[i].ep)
		}
	}
	return eps
}

// comparePorts is the order of ClusterInformation.Ports: port, IP,
// protocol, mode.
func comparePorts(a, b PortSpec) int {
	return cmp.Or(
		cmp.Compare(a.Port, b.Port),
		slices.Compare(a.IP.To16(), b.IP.To16()),
		strings.Compare(a.Protocol, b.Protocol),
		strings.Compare(a.Mode, b.Mode),
	)
}

// ip returns ip as a net.IP: the -default-lb-ip's slice for its address,
// so that the PortSpecs of one listener are all alike, else the same slice
// for the same address while the builder's intern table holds it.
func (b *builder) ip(ip netip.Addr) net.IP {
	if d, ok := netip.AddrFromSlice(b.r.opts.DefaultLBIP); ok && d.Unmap() == ip {
		return b.r.opts.DefaultLBIP
	}
	if b.ipsMu != nil {
		b.ipsMu.Lock()
		defer b.ipsMu.Unlock()
	}
	if v, ok := b.ips[ip]; ok {
		return v
	}
	v := net.IP(ip.AsSlice())
	if b.ips != nil {
		b.ips[ip] = v
	}
	return v
}
