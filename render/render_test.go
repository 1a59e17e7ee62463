package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kube2lb/kube2lb/kubeapi"
)

// shuffled returns a deep-enough copy of snap with every order that does
// not carry meaning shuffled: objects, slice endpoints, node addresses of
// different types stay in their relative order per type.
func shuffled(t *testing.T, snap kubeapi.Snapshot, rng *rand.Rand) kubeapi.Snapshot {
	t.Helper()
	out := snap
	out.Services = slices.Clone(snap.Services)
	out.Nodes = slices.Clone(snap.Nodes)
	out.EndpointSlices = nil
	for _, s := range snap.EndpointSlices {
		c := *s
		c.Endpoints = slices.Clone(s.Endpoints)
		c.Ports = slices.Clone(s.Ports)
		rng.Shuffle(len(c.Endpoints), func(i, j int) { c.Endpoints[i], c.Endpoints[j] = c.Endpoints[j], c.Endpoints[i] })
		rng.Shuffle(len(c.Ports), func(i, j int) { c.Ports[i], c.Ports[j] = c.Ports[j], c.Ports[i] })
		out.EndpointSlices = append(out.EndpointSlices, &c)
	}
	for i, s := range out.Services {
		c := *s
		c.Spec.Ports = slices.Clone(s.Spec.Ports)
		rng.Shuffle(len(c.Spec.Ports), func(i, j int) { c.Spec.Ports[i], c.Spec.Ports[j] = c.Spec.Ports[j], c.Spec.Ports[i] })
		out.Services[i] = &c
	}
	rng.Shuffle(len(out.Services), func(i, j int) { out.Services[i], out.Services[j] = out.Services[j], out.Services[i] })
	rng.Shuffle(len(out.Nodes), func(i, j int) { out.Nodes[i], out.Nodes[j] = out.Nodes[j], out.Nodes[i] })
	rng.Shuffle(len(out.EndpointSlices), func(i, j int) {
		out.EndpointSlices[i], out.EndpointSlices[j] = out.EndpointSlices[j], out.EndpointSlices[i]
	})
	return out
}

func TestDeterminism(t *testing.T) {
	snap := loadSnapshot(t, "testdata/cluster.json")
	templates := []string{"testdata/original.tmpl", "testdata/modern.tmpl"}
	for _, ex := range examples {
		templates = append(templates, ex.template)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, path := range templates {
		t.Run(filepath.Base(path), func(t *testing.T) {
			tmpl, err := ParseTemplate(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := newTestRenderer(t, testOptions()).Render(tmpl, snap)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				got, err := newTestRenderer(t, testOptions()).Render(tmpl, shuffled(t, snap, rng))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(want.Output.Bytes(), got.Output.Bytes()) {
					t.Fatalf("shuffle %d: output differs:\n%s", i, cmp.Diff(want.Output.String(), got.Output.String()))
				}
				if diff := cmp.Diff(want.Warnings, got.Warnings); diff != "" {
					t.Fatalf("shuffle %d: warnings differ:\n%s", i, diff)
				}
			}
		})
	}
}

func service(ns, name string, annotations map[string]string, ports ...kubeapi.ServicePort) *kubeapi.Service {
	return &kubeapi.Service{
		Metadata: kubeapi.ObjectMeta{Name: name, Namespace: ns, Annotations: kubeapi.PairsOf(annotations)},
		Spec:     kubeapi.ServiceSpec{Type: kubeapi.ServiceTypeNodePort, Ports: ports},
	}
}

func readyNode(name, ip string) *kubeapi.Node {
	return &kubeapi.Node{
		Metadata: kubeapi.ObjectMeta{Name: name},
		Status: kubeapi.NodeStatus{
			Addresses:  []kubeapi.NodeAddress{{Type: kubeapi.NodeInternalIP, Address: ip}},
			Conditions: []kubeapi.NodeCondition{{Type: "Ready", Status: "True"}},
		},
	}
}

// hostile are annotation values that must never reach a config file.
var hostile = []string{
	"evil.com\n    server x 6.6.6.6:80",
	"evil.com}\nserver { listen 1; }",
	"evil.com; return 200",
	"evil.com # comment",
	`evil.com"quoted"`,
	"~^a{1}$",
	"~^a;b$",
	"~^a#b$",
	"~^a b$",
	"~^(unclosed$",
	"~^a\nb$",
	"~^\"x\"$",
	"\xff\xfe.example.com",
	"~^\xff$",
	"exa mple.com",
	"*.*.example.com",
	"foo.*.example.com",
	strings.Repeat("a", 300) + ".com",
	strings.Repeat("b", 64) + ".example.com",
	strings.Repeat("x.", 200_000),
}

func jsonString(t *testing.T, v string) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInjection(t *testing.T) {
	markers := []string{"evil", "6.6.6.6", "unclosed", "return 200", "quoted", "\xff", "exa mple", "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbb", "x.x.x.x", "a{1}", "a;b", "a#b", "a b", `"x"`, "*.*", "foo.*"}
	templates := []string{"testdata/modern.tmpl", "testdata/original.tmpl"}
	for _, ex := range examples {
		templates = append(templates, ex.template)
	}
	for i, value := range hostile {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			snap := kubeapi.Snapshot{
				Nodes: []*kubeapi.Node{readyNode("node-1", "10.0.0.1")},
				Services: []*kubeapi.Service{service("ns", "svc", map[string]string{
					AnnotationExternalDomains: "good.example.com," + value,
					AnnotationPortMode:        `{"http": ` + jsonString(t, value) + `}`,
					AnnotationBackendTimeout:  `{"http": ` + jsonString(t, value) + `}`,
				}, kubeapi.ServicePort{Name: "http", Port: 80, NodePort: 30080})},
			}
			for _, path := range templates {
				res := renderFile(t, newTestRenderer(t, testOptions()), path, snap)
				if !strings.Contains(res.Output.String(), "good.example.com") {
					t.Errorf("%s: the valid entry is missing", path)
				}
				for _, m := range markers {
					if bytes.Contains(res.Output.Bytes(), []byte(m)) {
						t.Errorf("%s: output holds %q:\n%s", path, m, res.Output.Bytes())
					}
				}
				checkWarnings(t, res.Warnings)
			}
		})
	}
}

// checkWarnings checks that each kube2lb annotation produced a warning
// naming the service and the annotation, and that no warning carries the
// raw value.
func checkWarnings(t *testing.T, warnings []string) {
	t.Helper()
	for _, ann := range []string{AnnotationExternalDomains, AnnotationPortMode, AnnotationBackendTimeout} {
		found := false
		for _, w := range warnings {
			if strings.Contains(w, "ns/svc") && strings.Contains(w, ann) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning for %s; warnings: %q", ann, warnings)
		}
	}
	for _, w := range warnings {
		if strings.ContainsAny(w, "\n\r") || !strings.HasPrefix(w, "service ns/svc") || len(w) > 600 {
			t.Errorf("unsafe warning %q", w)
		}
	}
}

// TestServicesOrder checks that Result.Services come in the order of
// CompareServicePorts, which the daemon's diff relies on, for names that
// sort otherwise as strings (web, web-api; ports 80 and 443), and that
// LoadBalancers hold each service once, by namespace and name.
func TestServicesOrder(t *testing.T) {
	port := func(p int32, proto string) kubeapi.ServicePort {
		return kubeapi.ServicePort{Port: p, Protocol: proto, NodePort: 30000 + p%1000}
	}
	var snap kubeapi.Snapshot
	for _, ns := range []string{"a", "a-b", "ab", "b"} {
		for _, name := range []string{"web", "web-api", "web1", "x"} {
			s := service(ns, name, nil, port(80, "TCP"), port(443, "TCP"), port(9000, "TCP"), port(53, "UDP"), port(53, "TCP"))
			if name != "x" {
				s.Spec.Type = kubeapi.ServiceTypeLoadBalancer
			}
			snap.Services = append(snap.Services, s)
		}
	}
	snap.Nodes = []*kubeapi.Node{readyNode("n1", "10.0.0.1")}
	res, err := newTestRenderer(t, testOptions()).Render(mustParse(t, ""), snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Services) != 16*5 {
		t.Fatalf("%d services, want %d", len(res.Services), 16*5)
	}
	if !slices.IsSortedFunc(res.Services, CompareServicePorts) {
		t.Errorf("Services not in CompareServicePorts order: %q", servicePortNames(res))
	}
	for i := 1; i < len(res.Services); i++ {
		if CompareServicePorts(res.Services[i-1], res.Services[i]) >= 0 {
			t.Errorf("%s before %s", ServicePortName(res.Services[i-1]), ServicePortName(res.Services[i]))
		}
	}
	want := []string{"a/web", "a/web-api", "a/web1", "a-b/web", "a-b/web-api", "a-b/web1", "ab/web", "ab/web-api", "ab/web1", "b/web", "b/web-api", "b/web1"}
	if diff := cmp.Diff(want, res.LoadBalancers()); diff != "" {
		t.Errorf("LoadBalancers (-want +got):\n%s", diff)
	}
	parse := func(name string) *ServiceInformation { // "ns/name:port/proto"
		ns, rest, _ := strings.Cut(name, "/")
		name, rest, _ = strings.Cut(rest, ":")
		num, proto, _ := strings.Cut(rest, "/")
		n, _ := strconv.Atoi(num)
		return &ServiceInformation{serviceValues: &serviceValues{Namespace: ns, Name: name}, Port: PortSpec{Port: int32(n), Protocol: proto}}
	}
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"a/web:80/tcp", "a/web:443/tcp", -1},
		{"a/web:53/tcp", "a/web:53/udp", -1},
		{"a/web:9000/tcp", "a/web-api:80/tcp", -1},
		{"a/web-api:80/tcp", "a-b/web:80/tcp", -1},
		{"a/x:80/tcp", "a/x:80/tcp", 0},
		{"b/x:1/tcp", "a/x:2/tcp", 1},
	} {
		if got := CompareServicePorts(parse(c.a), parse(c.b)); got != c.want {
			t.Errorf("CompareServicePorts(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestResultAfterChange checks a Result's service ports and load
// balancers after a change against a fresh Renderer's: the daemon logs
// the difference of the service ports, the status publisher the load
// balancers.
func TestResultAfterChange(t *testing.T) {
	snap := bigSnapshot(100, 3)
	r := newTestRenderer(t, testOptions())
	tmpl := mustParse(t, "")
	first, err := r.Render(tmpl, snap)
	if err != nil {
		t.Fatal(err)
	}
	changed := snap
	changed.Services = slices.Clone(snap.Services)
	svc := *changed.Services[50]
	svc.Spec.Type = kubeapi.ServiceTypeLoadBalancer
	svc.Spec.Ports = slices.Clone(svc.Spec.Ports)
	svc.Spec.Ports[0].Port = 8443
	changed.Services[50] = &svc
	changed.Services = slices.Delete(changed.Services, 10, 12)
	second, err := r.Render(tmpl, changed)
	if err != nil {
		t.Fatal(err)
	}
	want, err := newTestRenderer(t, testOptions()).Render(tmpl, changed)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(servicePortNames(want), servicePortNames(second)); diff != "" {
		t.Errorf("Services (-fresh +reused):\n%s", diff)
	}
	if diff := cmp.Diff(want.LoadBalancers(), second.LoadBalancers()); diff != "" {
		t.Errorf("LoadBalancers (-fresh +reused):\n%s", diff)
	}
	if diff := cmp.Diff(servicePortNames(first), servicePortNames(second)); diff == "" {
		t.Error("the change renamed, removed and added service ports; the Results name the same")
	}
}

// withPair returns a copy of p with k set to v: a cached object's
// annotations are never written.
func withPair(p kubeapi.Pairs, k, v string) kubeapi.Pairs {
	m := p.Map()
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return kubeapi.PairsOf(m)
}

// appendToPair returns a copy of p with suffix appended to k's value.
func appendToPair(p kubeapi.Pairs, k, suffix string) kubeapi.Pairs {
	v, _ := p.Get(k)
	return withPair(p, k, v+suffix)
}

// TestBackendsOnlyNeedLocalSlices: for a template that reads .Backends and
// not .Endpoints, the EndpointSlices of the services of policy Cluster
// change nothing; the daemon has the cache keep only those of policy
// Local (kubeapi's Options.LocalSlicesOnly). The endpoints template, which
// reads them all, tells the two snapshots apart.
func TestBackendsOnlyNeedLocalSlices(t *testing.T) {
	full := withEndpoints(bigSnapshot(30, 6), 3)
	local := map[string]bool{}
	for i, svc := range full.Services {
		if i%3 == 0 {
			s := *svc
			s.Spec.ExternalTrafficPolicy = "Local"
			full.Services[i] = &s
			local[s.Metadata.Namespace+"/"+s.Metadata.Name] = true
		}
	}
	// Endpoints on nodes, some not on any: Local backends are the nodes
	// that hold a ready endpoint.
	for i, sl := range full.EndpointSlices {
		c := *sl
		c.Endpoints = slices.Clone(sl.Endpoints)
		for j := range c.Endpoints {
			if j < 2 {
				c.Endpoints[j].NodeName = &full.Nodes[(i+j)%len(full.Nodes)].Metadata.Name
			}
		}
		full.EndpointSlices[i] = &c
	}
	filtered := full
	filtered.EndpointSlices = nil
	for _, sl := range full.EndpointSlices {
		if local[sl.Metadata.Namespace+"/"+sl.ServiceName()] {
			filtered.EndpointSlices = append(filtered.EndpointSlices, sl)
		}
	}
	render := func(path string, snap kubeapi.Snapshot) string {
		t.Helper()
		tmpl, err := ParseTemplate(path)
		if err != nil {
			t.Fatal(err)
		}
		res, err := newTestRenderer(t, testOptions()).Render(tmpl, snap)
		if err != nil {
			t.Fatal(err)
		}
		return res.Output.String()
	}
	tmpl, err := ParseTemplate("../examples/haproxy/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	if !tmpl.UsesEndpoints() || tmpl.KeepsEndpoints() {
		t.Fatal("haproxy.cfg.tmpl does not read .Backends alone")
	}
	if a, b := render("../examples/haproxy/haproxy.cfg.tmpl", full), render("../examples/haproxy/haproxy.cfg.tmpl", filtered); a != b {
		t.Error("the slices of the services of policy Cluster changed the configuration of haproxy.cfg.tmpl")
	} else if !strings.Contains(a, "node-0001") {
		t.Error("no backend in the configuration")
	}
	if a, b := render("../examples/haproxy/haproxy-endpoints.cfg.tmpl", full), render("../examples/haproxy/haproxy-endpoints.cfg.tmpl", filtered); a == b {
		t.Error("the endpoints template renders the same without the slices of policy Cluster: the test shows nothing")
	}
}
