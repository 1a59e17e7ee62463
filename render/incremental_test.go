package render

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/kube2lb/kube2lb/kubeapi"
)

// modelOptions compare models by value, unexported fields by what they
// mean.
var modelOptions = gocmp.Options{
	gocmp.AllowUnexported(ServiceInformation{}, serviceValues{}, ServiceEndpoint{}),
	gocmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	gocmp.Comparer(func(a, b *nameSet) bool {
		if a == nil || b == nil {
			return a == b
		}
		return a.src.domain == b.src.domain && a.done == b.done && slices.Equal(a.names, b.names) &&
			fmt.Sprint(a.err) == fmt.Sprint(b.err) && equalMaps(a.lost, b.lost)
	}),
}

// model is everything a template can see of a ClusterInformation, and what
// Render reports of it.
type model struct {
	Services        []*ServiceInformation
	Ports           []PortSpec
	Nodes, AllNodes []Node
	Domain          string
	PortServices    map[string][]*ServiceInformation
	HostRules       map[string][]HostRule
	Warnings, Notes []string
	Conflicts       int
}

// sameModel reports whether a and b are the same, values compared; cheaper
// than go-cmp, which explains the differences.
func sameModel(a, b model) bool {
	return reflect.DeepEqual(a.normalized(), b.normalized())
}

// normalized returns m with nameSets that compare with reflect.DeepEqual,
// without the Renderer's templates, and IPs in their 16-byte form (the
// model before it was incremental used 4 bytes for a loadBalancerIP equal
// to the -default-lb-ip).
func (m model) normalized() model {
	names := func(s ServiceInformation) ServiceInformation {
		if s.names != nil {
			n := *s.names
			if n.src != nil {
				n.src = &nameSource{domain: n.src.domain}
			}
			s.names = &n
		}
		s.Port.IP = s.Port.IP.To16()
		s.fp = 0 // differs between renderers by design
		return s
	}
	ports := make([]PortSpec, len(m.Ports))
	for i, p := range m.Ports {
		p.IP = p.IP.To16()
		ports[i] = p
	}
	if m.Ports != nil {
		m.Ports = ports
	}
	all := func(list []*ServiceInformation) []*ServiceInformation {
		if list == nil {
			return nil
		}
		out := make([]*ServiceInformation, len(list))
		for i, s := range list {
			n := names(*s)
			out[i] = &n
		}
		return out
	}
	m.Services = all(m.Services)
	ps := map[string][]*ServiceInformation{}
	for k, v := range m.PortServices {
		ps[k] = all(v)
	}
	m.PortServices = ps
	hr := map[string][]HostRule{}
	for k, v := range m.HostRules {
		rules := make([]HostRule, len(v))
		for i, r := range v {
			s := names(*r.Service)
			rules[i] = HostRule{Service: &s, Name: r.Name}
		}
		hr[k] = rules
	}
	m.HostRules = hr
	return m
}

func modelOf(info *ClusterInformation, b *builder) model {
	m := model{
		Services: info.Services, Ports: info.Ports, Nodes: info.Nodes, AllNodes: info.AllNodes, Domain: info.Domain,
		PortServices: map[string][]*ServiceInformation{}, HostRules: map[string][]HostRule{},
		Warnings: b.w, Notes: b.notes, Conflicts: b.conflicts,
	}
	ports := slices.Clone(info.Ports)
	for _, s := range info.Services {
		// Also a listener the model dropped: PortServices must be nil.
		ports = append(ports, s.Port, PortSpec{IP: s.Port.IP, Port: s.Port.Port, Protocol: s.Port.Protocol, Mode: "nope"})
	}
	for _, p := range ports {
		if s := info.PortServices(p); s != nil {
			m.PortServices[p.String()] = s
		}
		rules, err := info.HostRules(p)
		if err != nil {
			panic(err) // the server name templates cannot fail here
		}
		if rules != nil {
			m.HostRules[p.String()] = rules
		}
	}
	return m
}

// checkModel compares r's model of snap with a new Renderer's and with the
// model as built before it was incremental, and checks that every server
// name is computed before the template runs.
func checkModel(t *testing.T, r *Renderer, snap kubeapi.Snapshot) model {
	t.Helper()
	return checkModelKeeping(t, r, snap, true)
}

// checkModelKeeping is checkModel for a template that names .Endpoints
// (keep) or does not.
func checkModelKeeping(t *testing.T, r *Renderer, snap kubeapi.Snapshot, keep bool) model {
	t.Helper()
	info, b := r.model(snap, keep)
	for _, s := range info.Services {
		if s.names == nil || !s.names.done || s.names.src.domain != info.Domain {
			t.Fatalf("%s: server names not computed: %+v", s, s.names)
		}
	}
	got := modelOf(info, b)
	fresh, err := NewRenderer(r.opts)
	if err != nil {
		t.Fatal(err)
	}
	fresh.host = r.host
	want := modelOf(fresh.model(snap, keep))
	if !sameModel(want, got) {
		t.Fatalf("incremental model differs from a new Renderer's (-want +got):\n%s", gocmp.Diff(want, got, modelOptions))
	}
	// Keeping the ports' endpoints or not, the backends are the same.
	other, err := NewRenderer(r.opts)
	if err != nil {
		t.Fatal(err)
	}
	other.host = r.host
	otherInfo, _ := other.model(snap, !keep)
	if diff := gocmp.Diff(backendNames(info.Services), backendNames(otherInfo.Services)); diff != "" {
		t.Fatalf("backends differ with keepEndpoints %v and %v (-%[1]v +%[2]v):\n%s", keep, !keep, diff)
	}
	legacy := modelOf(legacyModel(r, snap, keep))
	if !sameModel(legacy, got) {
		t.Fatalf("incremental model differs from the legacy model (-want +got):\n%s", gocmp.Diff(legacy, got, modelOptions))
	}
	return got
}

// clusterAt is the snapshot of a cluster as the cache hands it out:
// sorted.
func clusterAt(services []*kubeapi.Service, slices_ []*kubeapi.EndpointSlice, nodes []*kubeapi.Node) kubeapi.Snapshot {
	snap := kubeapi.Snapshot{
		Services:         slices.Clone(services),
		EndpointSlices:   slices.Clone(slices_),
		Nodes:            slices.Clone(nodes),
		EndpointsWatched: true,
	}
	return sortedLikeCache(snap)
}

func epSlice(svc *kubeapi.Service, name string, ready bool, ips ...string) *kubeapi.EndpointSlice {
	s := &kubeapi.EndpointSlice{
		Metadata:    kubeapi.ObjectMeta{Namespace: svc.Metadata.Namespace, Name: name, Labels: kubeapi.Pairs{{Key: kubeapi.LabelServiceName, Value: svc.Metadata.Name}}},
		AddressType: "IPv4",
	}
	for _, p := range svc.Spec.Ports {
		s.Ports = append(s.Ports, kubeapi.EndpointPort{Name: ptr(p.Name), Port: ptr(int32(8080))})
	}
	for i, ip := range ips {
		s.Endpoints = append(s.Endpoints, kubeapi.Endpoint{
			Addresses: []string{ip}, NodeName: ptr(fmt.Sprintf("n%d", i%2+1)),
			Conditions: kubeapi.EndpointConditions{Ready: ptr(ready)},
		})
	}
	return s
}

// with returns a copy of svc changed by f: the cache never writes to an
// object, it replaces it.
func with[T any](v *T, f func(*T)) *T {
	c := *v
	f(&c)
	return &c
}

func annotated(svc *kubeapi.Service, k, v string) *kubeapi.Service {
	return with(svc, func(s *kubeapi.Service) {
		s.Metadata.Annotations = withPair(s.Metadata.Annotations, k, v)
	})
}

// checkShared checks that a and b, the same port in two renders, share
// every slice, map and pointer.
func checkShared(t *testing.T, a, b ServiceInformation) {
	t.Helper()
	for _, c := range []struct {
		field string
		same  bool
	}{
		{"Port.IP", sameSlice(a.Port.IP, b.Port.IP)},
		{"Endpoints", sameSlice(a.Endpoints, b.Endpoints)},
		{"External", sameSlice(a.External, b.External)},
		{"ExternalIPs", sameSlice(a.ExternalIPs, b.ExternalIPs)},
		{"Backends", sameSlice(a.Backends, b.Backends)},
		{"serviceValues", a.serviceValues == b.serviceValues},
		{"labels", sameSlice(a.labels, b.labels)},
		{"annotations", sameSlice(a.annotations, b.annotations)},
		{"names", a.names == b.names},
	} {
		if !c.same {
			t.Errorf("%s: %s not shared with the previous render", a, c.field)
		}
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("%s: differs from the previous render", a)
	}
}

// TestIncrementalReuse checks that a service port whose inputs did not
// change hands the template the very same slices, maps and pointers, and
// so do PortServices, HostRules, .Ports and .Nodes.
func TestIncrementalReuse(t *testing.T) {
	web := aged(service("a", "web", map[string]string{AnnotationExternalDomains: "web.example.com", "team": "x"},
		kubeapi.ServicePort{Name: "http", Port: 80, NodePort: 30080}), 1)
	web.Metadata.Labels = kubeapi.Pairs{{Key: "app", Value: "web"}}
	web.Spec.ExternalIPs = []string{"198.51.100.1"}
	db := aged(service("b", "db", map[string]string{AnnotationPortMode: `{"db": "tcp"}`},
		kubeapi.ServicePort{Name: "db", Port: 3306, NodePort: 30306}), 2)
	db.Spec.Type, db.Spec.LoadBalancerIP = kubeapi.ServiceTypeLoadBalancer, "192.0.2.10"
	local := aged(service("c", "local", map[string]string{AnnotationExternalDomains: "local.example.com"},
		kubeapi.ServicePort{Name: "http", Port: 80, NodePort: 30081}), 3)
	local.Spec.ExternalTrafficPolicy = "Local"
	nodes := []*kubeapi.Node{readyNode("n1", "10.0.0.1"), readyNode("n2", "10.0.0.2")}
	eps := []*kubeapi.EndpointSlice{
		epSlice(web, "web-1", true, "10.1.0.1", "10.1.0.2"),
		epSlice(db, "db-1", true, "10.1.0.3"),
		epSlice(local, "local-1", true, "10.1.0.4"),
	}
	r := newTestRenderer(t, testOptions())
	snap := clusterAt([]*kubeapi.Service{web, db, local}, eps, nodes)
	first := checkModel(t, r, snap)
	byName := func(m model) map[string]ServiceInformation {
		out := map[string]ServiceInformation{}
		for _, s := range m.Services {
			out[s.Name] = *s
		}
		return out
	}

	// local changes (a new name): web and db are shared whole, local's
	// endpoints, labels and backends too.
	changed := annotated(local, AnnotationExternalDomains, "local.example.com,new.example.com")
	second := checkModel(t, r, clusterAt([]*kubeapi.Service{web, db, changed}, eps, nodes))
	a, b := byName(first), byName(second)
	checkShared(t, a["web"], b["web"])
	checkShared(t, a["db"], b["db"])
	if !sameSlice(a["local"].Endpoints, b["local"].Endpoints) || !sameSlice(a["local"].Backends, b["local"].Backends) ||
		!sameSlice(a["local"].annotations, b["local"].annotations) {
		t.Error("local: the unchanged endpoints, backends or annotations were not shared")
	}
	if a["local"].names == b["local"].names {
		t.Error("local: the server names of the previous render were kept")
	}
	if !sameSlice(first.Ports, second.Ports) || !sameSlice(first.Nodes, second.Nodes) || !sameSlice(first.AllNodes, second.AllNodes) {
		t.Error(".Ports, .Nodes or .AllNodes not shared")
	}
	dbPort := a["db"].Port.String()
	if !sameSlice(first.PortServices[dbPort], second.PortServices[dbPort]) || !sameSlice(first.HostRules[dbPort], second.HostRules[dbPort]) {
		t.Error("PortServices or HostRules of an unchanged port not shared")
	}
	webPort := a["web"].Port.String()
	if sameSlice(first.PortServices[webPort], second.PortServices[webPort]) {
		t.Error("PortServices of a changed port shared")
	}

	// A relist (new pointers, same resourceVersions) and heartbeats of
	// nodes (new objects, same Node) change nothing.
	relist := func(snap kubeapi.Snapshot) kubeapi.Snapshot {
		out := snap
		out.Services, out.Nodes, out.EndpointSlices = nil, nil, nil
		for i, s := range snap.Services {
			out.Services = append(out.Services, with(s, func(s *kubeapi.Service) { s.Metadata.ResourceVersion = fmt.Sprint(i + 1) }))
		}
		for i, n := range snap.Nodes {
			out.Nodes = append(out.Nodes, with(n, func(n *kubeapi.Node) { n.Metadata.ResourceVersion = fmt.Sprint(100 + i) }))
		}
		for i, s := range snap.EndpointSlices {
			out.EndpointSlices = append(out.EndpointSlices, with(s, func(s *kubeapi.EndpointSlice) { s.Metadata.ResourceVersion = fmt.Sprint(200 + i) }))
		}
		return out
	}
	before := relist(clusterAt([]*kubeapi.Service{web, db, changed}, eps, nodes))
	third := checkModel(t, r, before)
	fourth := checkModel(t, r, relist(before))
	if !sameSlice(third.Services, fourth.Services) {
		t.Error("a relist changed .Services")
	}
	for i := range third.Services {
		checkShared(t, *third.Services[i], *fourth.Services[i])
	}
	heartbeat := fourth
	snap = before
	snap.Nodes = []*kubeapi.Node{with(nodes[0], func(*kubeapi.Node) {}), with(nodes[1], func(*kubeapi.Node) {})}
	fifth := checkModel(t, r, snap)
	if !sameSlice(heartbeat.Services, fifth.Services) || !sameSlice(heartbeat.Nodes, fifth.Nodes) {
		t.Error("node heartbeats changed the model")
	}

	// Only local's endpoints change: its ports keep the service's values
	// and their server names from the last render.
	moved := snap
	moved.EndpointSlices = []*kubeapi.EndpointSlice{snap.EndpointSlices[0], snap.EndpointSlices[1], epSlice(changed, "local-1", true, "10.1.0.9")}
	sixth := checkModel(t, r, moved)
	f, g := byName(fifth), byName(sixth)
	if f["local"].serviceValues != g["local"].serviceValues || f["local"].names != g["local"].names {
		t.Error("local: the values or server names of a service whose endpoints alone changed were not shared")
	}
	if sameSlice(f["local"].Endpoints, g["local"].Endpoints) {
		t.Error("local: the changed endpoints were shared")
	}
}

// TestIncrementalInvalidation changes one input after another and checks
// each model against a new Renderer's.
func TestIncrementalInvalidation(t *testing.T) {
	p80 := kubeapi.ServicePort{Name: "http", Port: 80, NodePort: 30080}
	web := aged(service("a", "web", map[string]string{AnnotationExternalDomains: "shop.example.com"}, p80), 2)
	api := aged(service("b", "api", nil, p80, kubeapi.ServicePort{Name: "grpc", Port: 9000, NodePort: 30900}), 3)
	local := aged(service("c", "local", nil, p80), 4)
	local.Spec.ExternalTrafficPolicy = "Local"
	older := aged(service("z", "older", map[string]string{AnnotationExternalDomains: "SHOP.example.com"}, p80), 1)
	tcp := aged(service("y", "tcp", map[string]string{AnnotationPortMode: `{"http": "tcp"}`}, p80), 0)
	// On another listener, whose names the wildcard listener's services
	// lose all the same.
	lb := aged(service("x", "lb", map[string]string{AnnotationExternalDomains: "shop.example.com"}, p80), 0)
	lb.Spec.Type, lb.Spec.LoadBalancerIP = kubeapi.ServiceTypeLoadBalancer, "192.0.2.1"
	n1, n2, n3 := readyNode("n1", "10.0.0.1"), readyNode("n2", "10.0.0.2"), readyNode("n3", "10.0.0.3")
	webEps, apiEps, localEps := epSlice(web, "web-1", true, "10.1.0.1"), epSlice(api, "api-1", true, "10.1.0.2"), epSlice(local, "local-1", true, "10.1.0.3", "10.1.0.4")

	services := []*kubeapi.Service{web, api, local}
	eps := []*kubeapi.EndpointSlice{webEps, apiEps, localEps}
	nodes := []*kubeapi.Node{n1, n2}
	watched := true
	replace := func(list []*kubeapi.Service, old, new *kubeapi.Service) []*kubeapi.Service {
		out := slices.Clone(list)
		out[slices.Index(out, old)] = new
		return out
	}
	without := func(list []*kubeapi.Service, s *kubeapi.Service) []*kubeapi.Service {
		return slices.DeleteFunc(slices.Clone(list), func(x *kubeapi.Service) bool { return x == s })
	}
	steps := []struct {
		name   string
		change func()
		check  func(m model) string
	}{
		{"start", func() {}, nil},
		{"service changed", func() {
			services = replace(services, web, annotated(web, AnnotationBackendTimeout, `{"http": 1000}`))
		}, nil},
		{"second port of a service changed", func() {
			// Its two ports have the same server names: the second one's
			// new node port must not go unseen.
			services = replace(services, api, with(api, func(s *kubeapi.Service) {
				s.Spec.Ports = slices.Clone(s.Spec.Ports)
				s.Spec.Ports[1].NodePort = 30901
			}))
			api = services[1]
		}, nil},
		{"endpoint slice changed", func() {
			eps = []*kubeapi.EndpointSlice{webEps, epSlice(api, "api-1", true, "10.1.0.9"), localEps}
		}, nil},
		{"endpoint slice added", func() {
			eps = append(slices.Clone(eps), epSlice(local, "local-2", true, "10.1.0.5"))
		}, nil},
		{"endpoint slice removed", func() { eps = eps[:len(eps)-1] }, nil},
		{"endpoint not ready", func() {
			eps = []*kubeapi.EndpointSlice{webEps, apiEps, epSlice(local, "local-1", false, "10.1.0.3", "10.1.0.4")}
		}, nil},
		{"node added", func() { nodes = []*kubeapi.Node{n1, n2, n3} }, nil},
		{"node not ready", func() {
			nodes = []*kubeapi.Node{n1, with(n2, func(n *kubeapi.Node) {
				n.Status.Conditions = []kubeapi.NodeCondition{{Type: "Ready", Status: "False"}}
			}), n3}
		}, nil},
		{"node heartbeat", func() {
			nodes = []*kubeapi.Node{n1, nodes[1], with(n3, func(*kubeapi.Node) {})}
		}, nil},
		{"name conflict appears", func() { services = append(slices.Clone(services), older) }, func(m model) string {
			if m.Conflicts != 1 {
				return fmt.Sprintf("%d conflicts, want 1", m.Conflicts)
			}
			return ""
		}},
		{"name conflict disappears", func() { services = without(services, older) }, func(m model) string {
			if m.Conflicts != 0 {
				return fmt.Sprintf("%d conflicts, want 0", m.Conflicts)
			}
			return ""
		}},
		{"name conflict again", func() { services = append(slices.Clone(services), older) }, nil},
		{"owner changes, keeps the name", func() {
			services = replace(services, older, annotated(older, "x", "y"))
		}, nil},
		{"name conflict from another listener", func() { services = append(slices.Clone(services), lb) }, func(m model) string {
			if m.Conflicts != 2 {
				return fmt.Sprintf("%d conflicts, want 2", m.Conflicts)
			}
			return ""
		}},
		{"gone", func() { services = without(services, lb) }, nil},
		{"mode conflict appears", func() { services = append(slices.Clone(services), tcp) }, func(m model) string {
			for _, s := range m.Services {
				if s.Port.Port == 80 && s.Name != "tcp" {
					return fmt.Sprintf("%s not dropped", s)
				}
			}
			return ""
		}},
		{"mode conflict disappears", func() { services = without(services, tcp) }, nil},
		{"service deleted", func() { services = without(services, services[0]) }, nil},
		// Not from a cache, whose objects have distinct names.
		{"two services of one name", func() {
			services = append(slices.Clone(services), aged(service("b", "api", nil, kubeapi.ServicePort{Name: "x", Port: 81}), 5))
		}, nil},
		{"one again", func() { services = services[:len(services)-1] }, nil},
		{"endpoints not watched", func() { watched = false }, nil},
		{"endpoints watched", func() { watched = true }, nil},
		{"everything deleted", func() { services, eps, nodes = nil, nil, nil }, func(m model) string {
			if m.Services != nil || m.Ports != nil || m.Nodes != nil {
				return "empty model not nil"
			}
			return ""
		}},
		{"back", func() {
			services, eps, nodes = []*kubeapi.Service{web, api, local, older, tcp}, []*kubeapi.EndpointSlice{webEps, apiEps, localEps}, []*kubeapi.Node{n1, n2}
		}, nil},
	}
	r := newTestRenderer(t, testOptions())
	for _, st := range steps {
		st.change()
		snap := clusterAt(services, eps, nodes)
		if !watched {
			snap.EndpointSlices, snap.EndpointsWatched = nil, false
		}
		m := checkModel(t, r, snap)
		if st.check != nil {
			if msg := st.check(m); msg != "" {
				t.Errorf("%s: %s", st.name, msg)
			}
		}
	}
}

// TestIncrementalSanity checks that a change of what the sanity checks
// read starts over.
func TestIncrementalSanity(t *testing.T) {
	proc := t.TempDir()
	write := func(name, v string) {
		p := filepath.Join(proc, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("net/ipv4/ip_local_port_range", "32768 60999")
	write("net/ipv4/ip_nonlocal_bind", "0")
	local := net.ParseIP("192.0.2.1")
	addrs := func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: local, Mask: net.CIDRMask(24, 32)}}, nil
	}
	lb := service("ns", "lb", nil, kubeapi.ServicePort{Port: 80}, kubeapi.ServicePort{Port: 40000})
	lb.Spec.Type, lb.Spec.LoadBalancerIP = kubeapi.ServiceTypeLoadBalancer, "198.51.100.1"
	opts := testOptions()
	opts.SanityChecks = true
	r := newTestRenderer(t, opts)
	r.host = hostSeams{procSys: proc, interfaceAddrs: addrs}
	snap := clusterAt([]*kubeapi.Service{lb}, nil, nil)
	count := func(want int) {
		t.Helper()
		if m := checkModel(t, r, snap); len(m.Services) != want {
			t.Errorf("%d service ports, want %d", len(m.Services), want)
		}
	}
	count(0) // not bindable
	write("net/ipv4/ip_nonlocal_bind", "1")
	count(1) // 40000 is ephemeral
	write("net/ipv4/ip_local_port_range", "50000 60999")
	count(2)
	write("net/ipv4/ip_nonlocal_bind", "0")
	count(0)
	local = net.ParseIP("198.51.100.1")
	count(2)
}

// randomCluster changes a small cluster at random, as a busy one changes,
// with many conflicts: shared names, modes and addresses.
type randomCluster struct {
	rng      *rand.Rand
	services map[string]*kubeapi.Service
	slices   map[string]*kubeapi.EndpointSlice
	nodes    map[string]*kubeapi.Node
	watched  bool
	keep     bool // the model keeps the ports' endpoints (see endpointUse)
	rv       int
}

// newRandomCluster is an empty cluster whose changes follow the seed.
func newRandomCluster(seed, stream uint64) *randomCluster {
	return &randomCluster{
		rng:      rand.New(rand.NewPCG(seed, stream)),
		services: map[string]*kubeapi.Service{},
		slices:   map[string]*kubeapi.EndpointSlice{},
		nodes:    map[string]*kubeapi.Node{},
		watched:  true,
		keep:     true,
	}
}

func (c *randomCluster) pick(s ...string) string { return s[c.rng.IntN(len(s))] }

// version returns a new resourceVersion, or none (the object is then only
// known by its pointer).
func (c *randomCluster) version() string {
	if c.rng.IntN(4) == 0 {
		return ""
	}
	c.rv++
	return fmt.Sprint(c.rv)
}

func (c *randomCluster) service(ns, name string, created time.Time) *kubeapi.Service {
	r := c.rng
	svc := &kubeapi.Service{Metadata: kubeapi.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: c.version(), CreationTimestamp: created}}
	ann := map[string]string{}
	if r.IntN(2) == 0 {
		ann[AnnotationExternalDomains] = c.pick("shop.example.com", "Shop.Example.com,*.example.com", `~^x\.example\.com$`, "api.example.org,shop.example.com", "bad domain,x.example.net",
			"svc-1.a.svc.cluster.local", "svc-2.b.svc.cluster.local,shop.example.com") // the last two: other services' own names
	}
	if r.IntN(4) == 0 {
		ann[AnnotationPortMode] = c.pick(`{"db": "tcp"}`, `{"http": "tcp"}`, `{"https": "tcp", "db": "tcp"}`)
	}
	if r.IntN(5) == 0 {
		ann[AnnotationBackendTimeout] = c.pick(`{"http": 5000}`, `{"db": -1}`)
	}
	if r.IntN(6) == 0 {
		ann["example.com/team"] = c.pick("x", "y")
	}
	if r.IntN(6) == 0 {
		ann[AnnotationSourceRanges] = c.pick("192.0.2.0/24", "10.0.0.0/8, bad", "bad")
	}
	if len(ann) > 0 {
		svc.Metadata.Annotations = kubeapi.PairsOf(ann)
	}
	if r.IntN(3) == 0 {
		svc.Metadata.Labels = kubeapi.Pairs{{Key: "app", Value: c.pick("a", "b")}}
	}
	svc.Spec.Type = kubeapi.ServiceTypeNodePort
	switch r.IntN(6) {
	case 0, 1, 2:
		svc.Spec.Type = kubeapi.ServiceTypeLoadBalancer
		svc.Spec.LoadBalancerIP = c.pick("", "", "192.0.2.1", "192.0.2.2", "0.0.0.0", "fd00::1", "::ffff:192.0.2.1")
	case 3:
		svc.Spec.Type = kubeapi.ServiceTypeLoadBalancer
		svc.Spec.LoadBalancerClass = ptr("other")
	case 4:
		svc.Spec.Type = kubeapi.ServiceTypeClusterIP
	}
	if r.IntN(3) == 0 {
		svc.Spec.ExternalTrafficPolicy = "Local"
	}
	if r.IntN(6) == 0 {
		svc.Spec.ExternalIPs = []string{"198.51.100.1"}
	}
	svc.Spec.IPFamilies = [][]string{nil, {"IPv4"}, {"IPv6"}, {"IPv4", "IPv6"}}[r.IntN(4)]
	svc.Spec.LoadBalancerSourceRanges = [][]string{nil, nil, {"10.0.0.0/8"}, {"10.1.2.3/16", "bad"}, {"bad"}}[r.IntN(5)]
	pool := []kubeapi.ServicePort{
		{Name: "http", Port: 80}, {Name: "https", Port: 443}, {Name: "db", Port: 3306},
		{Port: 8080}, {Name: "dns", Port: 53, Protocol: "UDP"}, {Name: "alt", Port: 80},
	}
	for _, i := range r.Perm(len(pool))[:1+r.IntN(3)] {
		p := pool[i]
		p.NodePort = int32(30000 + r.IntN(100))
		svc.Spec.Ports = append(svc.Spec.Ports, p)
	}
	return svc
}

func (c *randomCluster) slice(svc *kubeapi.Service, name string) *kubeapi.EndpointSlice {
	r := c.rng
	s := &kubeapi.EndpointSlice{
		Metadata: kubeapi.ObjectMeta{Namespace: svc.Metadata.Namespace, Name: name, ResourceVersion: c.version(),
			Labels: kubeapi.Pairs{{Key: kubeapi.LabelServiceName, Value: svc.Metadata.Name}}},
		AddressType: "IPv4",
	}
	for _, p := range svc.Spec.Ports {
		ep := kubeapi.EndpointPort{Name: ptr(p.Name), Port: ptr(int32(8000 + r.IntN(2)))}
		if p.Protocol != "" {
			ep.Protocol = ptr(p.Protocol)
		}
		s.Ports = append(s.Ports, ep)
	}
	for range r.IntN(4) {
		s.Endpoints = append(s.Endpoints, kubeapi.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.1.0.%d", r.IntN(6))},
			NodeName:   ptr(fmt.Sprintf("n%d", r.IntN(5))),
			Conditions: kubeapi.EndpointConditions{Ready: ptr(r.IntN(4) != 0), Serving: []*bool{nil, ptr(false)}[r.IntN(2)], Terminating: ptr(r.IntN(2) == 0)},
		})
	}
	return s
}

func (c *randomCluster) node(name string) *kubeapi.Node {
	n := readyNode(name, fmt.Sprintf("10.0.0.%d", c.rng.IntN(4)))
	n.Metadata.ResourceVersion = c.version()
	if c.rng.IntN(5) == 0 {
		n.Status.Conditions[0].Status = "False"
	}
	if c.rng.IntN(8) == 0 {
		n.Metadata.Labels = kubeapi.Pairs{{Key: LabelExcludeFromLB, Value: c.pick("", "true", "false")}}
	}
	if c.rng.IntN(10) == 0 {
		n.Spec.Taints = []kubeapi.Taint{TaintToBeDeleted}
	}
	// Dual-stack nodes, either family first, and IPv6 alone.
	v6 := kubeapi.NodeAddress{Type: kubeapi.NodeInternalIP, Address: fmt.Sprintf("fd00::%d", c.rng.IntN(4))}
	switch c.rng.IntN(6) {
	case 0:
		n.Status.Addresses = append(n.Status.Addresses, v6)
	case 1:
		n.Status.Addresses = append([]kubeapi.NodeAddress{v6}, n.Status.Addresses...)
	case 2:
		n.Status.Addresses = []kubeapi.NodeAddress{v6}
	}
	return n
}

func randomKey[V any](r *rand.Rand, m map[string]V) (string, bool) {
	if len(m) == 0 {
		return "", false
	}
	keys := slices.Sorted(maps.Keys(m))
	return keys[r.IntN(len(keys))], true
}

// change makes one change.
func (c *randomCluster) change() {
	r := c.rng
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	switch r.IntN(14) {
	case 0, 1, 2: // a new service, or a new version of one
		ns, name := c.pick("a", "b", "c"), fmt.Sprintf("svc-%d", r.IntN(8))
		created := base.Add(time.Duration(r.IntN(4)) * time.Minute)
		if old := c.services[ns+"/"+name]; old != nil {
			created = old.Metadata.CreationTimestamp
		}
		c.services[ns+"/"+name] = c.service(ns, name, created)
	case 3:
		if k, ok := randomKey(r, c.services); ok {
			delete(c.services, k)
		}
	case 4: // the same version again: a relist
		if k, ok := randomKey(r, c.services); ok {
			c.services[k] = with(c.services[k], func(*kubeapi.Service) {})
		}
	case 5, 6, 7:
		if k, ok := randomKey(r, c.services); ok {
			svc := c.services[k]
			name := svc.Metadata.Name + c.pick("-x", "-y")
			c.slices[svc.Metadata.Namespace+"/"+name] = c.slice(svc, name)
		}
	case 8:
		if k, ok := randomKey(r, c.slices); ok {
			delete(c.slices, k)
		}
	case 9:
		name := fmt.Sprintf("n%d", r.IntN(5))
		c.nodes[name] = c.node(name)
	case 10: // a heartbeat
		if k, ok := randomKey(r, c.nodes); ok {
			c.nodes[k] = with(c.nodes[k], func(n *kubeapi.Node) { n.Metadata.ResourceVersion = c.version() })
		}
	case 11:
		if k, ok := randomKey(r, c.nodes); ok {
			delete(c.nodes, k)
		}
	case 12:
		if r.IntN(4) == 0 {
			c.watched = !c.watched
		}
	case 13:
		if r.IntN(2) == 0 {
			c.keep = !c.keep
		}
	}
}

func (c *randomCluster) snapshot() kubeapi.Snapshot {
	snap := kubeapi.Snapshot{EndpointsWatched: c.watched}
	for _, k := range slices.Sorted(maps.Keys(c.services)) {
		snap.Services = append(snap.Services, c.services[k])
	}
	for _, k := range slices.Sorted(maps.Keys(c.nodes)) {
		snap.Nodes = append(snap.Nodes, c.nodes[k])
	}
	if c.watched {
		for _, k := range slices.Sorted(maps.Keys(c.slices)) {
			snap.EndpointSlices = append(snap.EndpointSlices, c.slices[k])
		}
	}
	if c.rng.IntN(10) == 0 { // not as the cache sorts them
		r := c.rng
		r.Shuffle(len(snap.Services), func(i, j int) { snap.Services[i], snap.Services[j] = snap.Services[j], snap.Services[i] })
		r.Shuffle(len(snap.EndpointSlices), func(i, j int) {
			snap.EndpointSlices[i], snap.EndpointSlices[j] = snap.EndpointSlices[j], snap.EndpointSlices[i]
		})
	}
	return snap
}

// TestIncrementalRandom makes random changes to a cluster full of
// conflicts and checks every model against a new Renderer's and the
// legacy one's, and every output against a new Renderer's. At the end it
// checks that no published model was written to by a later render.
func TestIncrementalRandom(t *testing.T) {
	steps := 200
	if testing.Short() {
		steps = 50
	}
	templates := []*Template{mustParse(t, routesTemplate), mustParse(t, `{{- range $p := .Ports }}{{ range $.HostRules $p }}
{{ $p }} {{ .Service.Namespace }}/{{ .Service.Name }} {{ .Name }} {{ range .Service.Backends }}{{ . }} {{ end }}
{{- end }}{{ range $.PortServices $p }} {{ .Name }}{{ .Endpoints }}{{ end }}{{ end }}
`)}
	for _, ex := range examples {
		tmpl, err := ParseTemplate(ex.template)
		if err != nil {
			t.Fatal(err)
		}
		templates = append(templates, tmpl)
	}
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newRandomCluster(seed, 42)
			r := newTestRenderer(t, testOptions())
			type published struct {
				got  model
				want model
			}
			var history []published
			type heldOutput struct {
				out   *Output
				bytes []byte
			}
			var outputs []heldOutput
			for i := range steps {
				for range 1 + c.rng.IntN(3) {
					c.change()
				}
				snap := c.snapshot()
				got := checkModelKeeping(t, r, snap, c.keep)
				want := modelOf(newTestRenderer(t, testOptions()).model(snap, c.keep))
				history = append(history, published{got, want})
				tmpl := templates[i%len(templates)]
				res, err := r.Render(tmpl, snap)
				if err != nil {
					t.Fatal(err)
				}
				fresh, err := newTestRenderer(t, testOptions()).Render(tmpl, snap)
				if err != nil {
					t.Fatal(err)
				}
				// The same bytes, whatever pieces hold them.
				outputs = append(outputs, heldOutput{res.Output, bytes.Clone(res.Output.Bytes())})
				fresh.Output, res.Output = NewOutput(fresh.Output.Bytes()), NewOutput(res.Output.Bytes())
				// The same service ports, whatever values (and fingerprints) the models made.
				if diff := gocmp.Diff(servicePortNames(fresh), servicePortNames(res)); diff != "" {
					t.Fatalf("step %d: service ports differ from a new Renderer's (-want +got):\n%s", i, diff)
				}
				fresh.Services, res.Services = nil, nil
				if !reflect.DeepEqual(fresh, res) {
					t.Fatalf("step %d: result differs from a new Renderer's (-want +got):\n%s", i, gocmp.Diff(fresh, res))
				}
			}
			// A notifier may hold an Output while later renders run.
			for i, h := range outputs {
				if !bytes.Equal(h.out.Bytes(), h.bytes) {
					t.Fatalf("the output of step %d changed after it was published", i)
				}
			}
			for i, h := range history {
				if !sameModel(h.want, h.got) {
					t.Fatalf("the model of step %d changed after it was published (-want +got):\n%s", i, gocmp.Diff(h.want, h.got, modelOptions))
				}
			}
		})
	}
}

// TestConcurrentRenders renders two cluster states in turn from several
// goroutines: with -race, it fails if a render writes to what another
// render's template reads.
func TestConcurrentRenders(t *testing.T) {
	tmpl, err := ParseTemplate("../examples/haproxy/haproxy-endpoints.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	a := loadSnapshot(t, "testdata/cluster.json")
	b := a
	b.Services = slices.Clone(a.Services)
	b.Services[0] = annotated(b.Services[0], AnnotationExternalDomains, "www.example.com")
	b.Services[1] = annotated(b.Services[1], AnnotationExternalDomains, "www.example.com")
	snaps := []kubeapi.Snapshot{a, b}
	var want [2][]byte
	for i, snap := range snaps {
		res, err := newTestRenderer(t, testOptions()).Render(tmpl, snap)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res.Output.Bytes()
	}
	r := newTestRenderer(t, testOptions())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				k := (g + i) % 2
				res, err := r.Render(tmpl, snaps[k])
				if err != nil {
					t.Error(err)
					return
				}
				if res.Output.String() != string(want[k]) {
					t.Errorf("goroutine %d, render %d: output differs", g, i)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestReuseKnowsEveryField fails when ServiceInformation gains a field:
// reuse and sameAs (incremental.go) must then learn it, or an entry would
// keep the server names computed from another value of it.
func TestReuseKnowsEveryField(t *testing.T) {
	fields := func(v any) []string {
		var out []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			out = append(out, typ.Field(i).Name)
		}
		return out
	}
	want := []string{"serviceValues", "Port", "NodePort", "Endpoints", "Timeout", "PortName",
		"TargetPort", "AppProtocol", "Backends", "names", "fp"}
	if diff := gocmp.Diff(want, fields(ServiceInformation{})); diff != "" {
		t.Errorf("ServiceInformation's fields changed: update reuse and sameAs, then this test (-old +new):\n%s", diff)
	}
	want = []string{"Name", "Namespace", "External", "Type", "ExternalTrafficPolicy", "HealthCheckNodePort",
		"SessionAffinity", "LoadBalancerIP", "ExternalIPs", "IPFamilies", "LoadBalancerSourceRanges", "labels", "annotations", "created"}
	if diff := gocmp.Diff(want, fields(serviceValues{})); diff != "" {
		t.Errorf("serviceValues' fields changed: update shareValues, then this test (-old +new):\n%s", diff)
	}
	if diff := gocmp.Diff([]string{"IP", "Port", "Mode", "Protocol"}, fields(PortSpec{})); diff != "" {
		t.Errorf("PortSpec's fields changed: update reuse, then this test (-old +new):\n%s", diff)
	}
}

// TestParallelBuild builds every first model on all CPUs (the start-up
// path of a large cluster), over random clusters, and requires the model
// the legacy whole build makes. Run it with -race: the entries are built
// concurrently.
func TestParallelBuild(t *testing.T) {
	defer func(n int) { parallelBuildMin = n }(parallelBuildMin)
	parallelBuildMin = 1
	for seed := range uint64(3) {
		c := newRandomCluster(seed, 7)
		for range 40 {
			for range 1 + c.rng.IntN(3) {
				c.change()
			}
			snap := c.snapshot()
			r := newTestRenderer(t, testOptions())
			got := modelOf(r.model(snap, true))
			legacy := modelOf(legacyModel(r, snap, true))
			if !sameModel(legacy, got) {
				t.Fatalf("seed %d: parallel model differs from the legacy model (-want +got):\n%s", seed, gocmp.Diff(legacy, got, modelOptions))
			}
		}
	}
}

// TestBackendsWithoutEndpoints renders a template that reads .Backends
// and not .Endpoints: the ports keep no endpoints, a service of policy
// Local still gets the nodes of its ready endpoints as backends, through
// node and EndpointSlice changes, and a Cluster port is the very same
// value when only its endpoints change.
func TestBackendsWithoutEndpoints(t *testing.T) {
	web := aged(service("a", "web", nil, kubeapi.ServicePort{Name: "http", Port: 80, NodePort: 30080}), 1)
	local := aged(service("c", "local", nil, kubeapi.ServicePort{Name: "http", Port: 81, NodePort: 30081}), 2)
	local.Spec.ExternalTrafficPolicy = "Local"
	nodes := []*kubeapi.Node{readyNode("n1", "10.0.0.1"), readyNode("n2", "10.0.0.2")}
	eps := []*kubeapi.EndpointSlice{
		epSlice(web, "web-1", true, "10.1.0.1", "10.1.0.2"),
		epSlice(local, "local-1", true, "10.1.0.4"), // on n1
	}
	tmpl := mustParse(t, `{{ range .Services }}{{ .Name }}:{{ range .Backends }} {{ . }}{{ end }}
{{ end }}`)
	if tmpl.keepsEndpoints || !tmpl.UsesEndpoints() {
		t.Fatalf("keepsEndpoints = %v, UsesEndpoints = %v: want false, true", tmpl.keepsEndpoints, tmpl.UsesEndpoints())
	}
	r := newTestRenderer(t, testOptions())
	step := func(name string, snap kubeapi.Snapshot, want string) model {
		t.Helper()
		m := checkModelKeeping(t, r, snap, false)
		for _, s := range m.Services {
			if s.Endpoints != nil {
				t.Errorf("%s: %s keeps endpoints %v", name, s, s.Endpoints)
			}
		}
		res, err := r.Render(tmpl, snap)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Output.String(); got != want {
			t.Errorf("%s: got\n%swant\n%s", name, got, want)
		}
		return m
	}
	step("first", clusterAt([]*kubeapi.Service{web, local}, eps, nodes), "web: n1 n2\nlocal: n1\n")
	nodes = append(nodes, readyNode("n3", "10.0.0.3"))
	before := step("a node more", clusterAt([]*kubeapi.Service{web, local}, eps, nodes), "web: n1 n2 n3\nlocal: n1\n")
	eps = []*kubeapi.EndpointSlice{
		epSlice(web, "web-1", true, "10.1.0.1"),                 // a pod less
		epSlice(local, "local-1", true, "10.1.0.4", "10.1.0.5"), // on n1 and n2
	}
	after := step("endpoints moved", clusterAt([]*kubeapi.Service{web, local}, eps, nodes), "web: n1 n2 n3\nlocal: n1 n2\n")
	if before.Services[0] != after.Services[0] {
		t.Error("web's port changed with its endpoints, which the template does not read")
	}
}

// backendNames lists each service port's backends by name.
func backendNames(services []*ServiceInformation) []string {
	var out []string
	for _, s := range services {
		line := ServicePortName(s) + ":"
		for _, n := range s.Backends {
			line += " " + n.Name
		}
		out = append(out, line)
	}
	return out
}

// TestGeneratedNameWarningsKept: the warning of a name a server name
// template made and kube2lb dropped stays while the name is dropped, also
// once the entry is rebuilt (its endpoints changed) with its names reused.
func TestGeneratedNameWarningsKept(t *testing.T) {
	opts := testOptions()
	opts.ServerNameTemplates = []string{DefaultServerNameTemplate, `{{ index .Service.Annotations "example.com/host" }}`}
	r := newTestRenderer(t, opts)
	svc := service("ns", "web", map[string]string{"example.com/host": "~(x"},
		kubeapi.ServicePort{Name: "http", Port: 80, NodePort: 30080}, kubeapi.ServicePort{Name: "https", Port: 443, NodePort: 30443})
	const want = `service ns/web: server name "~(x" from -server-name-templates dropped: regexp does not compile`
	for i, ips := range [][]string{{"10.0.0.1"}, {"10.0.0.2"}} {
		info, warns := r.Model(kubeapi.Snapshot{Services: []*kubeapi.Service{svc}, EndpointSlices: []*kubeapi.EndpointSlice{epSlice(svc, "web-1", true, ips...)}, EndpointsWatched: true})
		if n := strings.Count(strings.Join(warns, "\n"), want); n != 1 {
			t.Errorf("render %d: the warning %d times in %q, want once", i, n, warns)
		}
		for _, s := range info.Services {
			names, err := serverNamesOf(s, opts.Domain)
			if err != nil || len(names) != 1 || names[0] != "web.ns.svc.cluster.local" {
				t.Errorf("render %d: %s: names %v %v, want the default name only", i, s, names, err)
			}
		}
	}

	// A name per port: a port gone takes its warning with it, although
	// the other port's names (and warning) are reused.
	opts.ServerNameTemplates = []string{"{{ .Service.Name }}.p{{ .Service.Port.Port }}.other.svc.{{ .Domain }}"}
	r = newTestRenderer(t, opts)
	ports := []kubeapi.ServicePort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "https", Port: 443, NodePort: 30443}}
	warned := func(port string) string {
		return `service ns/web: server name "web.p` + port + `.other.svc.cluster.local" from -server-name-templates dropped: under other.svc.cluster.local, the names of namespace other's services`
	}
	for i, n := range []int{2, 1} {
		svc := service("ns", "web", nil, ports[:n]...)
		_, warns := r.Model(kubeapi.Snapshot{Services: []*kubeapi.Service{svc}})
		if got := slices.Contains(warns, warned("443")); got != (n == 2) {
			t.Errorf("render %d (%d ports): the port 443 name's warning %v in %q", i, n, got, warns)
		}
		if !slices.Contains(warns, warned("80")) {
			t.Errorf("render %d: no warning for the port 80 name in %q", i, warns)
		}
	}
}
