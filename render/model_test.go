package render

import (
	"context"
	"fmt"
	"log/slog"
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

	"github.com/google/go-cmp/cmp"
	"github.com/kube2lb/kube2lb/kubeapi"
)

func ptr[T any](v T) *T { return &v }

func names(nodes []Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

func TestNodes(t *testing.T) {
	notReady := readyNode("not-ready", "10.0.0.3")
	notReady.Status.Conditions[0].Status = "False"
	excluded := readyNode("excluded", "10.0.0.4")
	excluded.Metadata.Labels = kubeapi.Pairs{{Key: LabelExcludeFromLB, Value: "true"}}
	deleting := readyNode("deleting", "10.0.0.5")
	deleting.Metadata.DeletionTimestamp = ptr(time.Unix(1, 0))
	cordoned := readyNode("cordoned", "10.0.0.6")
	cordoned.Spec.Unschedulable = true
	// As Kubernetes' service controller (1.34): a false value of the
	// label includes the node, any other value excludes it.
	label := func(name, value string) *kubeapi.Node {
		n := readyNode(name, "10.0.0.7")
		n.Metadata.Labels = kubeapi.Pairs{{Key: LabelExcludeFromLB, Value: value}}
		return n
	}
	autoscaled := readyNode("autoscaled", "10.0.0.8")
	autoscaled.Spec.Taints = []kubeapi.Taint{"other", TaintToBeDeleted}
	tainted := readyNode("tainted", "10.0.0.9")
	tainted.Spec.Taints = []kubeapi.Taint{"node.kubernetes.io/unreachable"}

	tests := []struct {
		name         string
		nodes        []*kubeapi.Node
		wantAll      []string
		wantBackends []string
	}{
		{"eligibility", []*kubeapi.Node{readyNode("b", "10.0.0.2"), notReady, excluded, deleting, cordoned, readyNode("a", "10.0.0.1")},
			[]string{"a", "b", "cordoned", "deleting", "excluded", "not-ready"}, []string{"a", "b", "cordoned"}},
		// A control plane that lost its kubelets marks every node
		// NotReady: keep serving through them.
		{"none ready", []*kubeapi.Node{notReady, excluded}, []string{"excluded", "not-ready"}, []string{"not-ready"}},
		{"exclusion", []*kubeapi.Node{label("false", "false"), label("zero", "0"), label("empty", ""), label("true", "true"),
			label("maybe", "maybe"), autoscaled, tainted},
			[]string{"autoscaled", "empty", "false", "maybe", "tainted", "true", "zero"}, []string{"false", "tainted", "zero"}},
		{"none", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, _ := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Nodes: tt.nodes})
			if diff := cmp.Diff(tt.wantAll, names(info.AllNodes)); diff != "" {
				t.Errorf("AllNodes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantBackends, names(info.Nodes)); diff != "" {
				t.Errorf("Nodes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeAddress(t *testing.T) {
	node := &kubeapi.Node{
		Metadata: kubeapi.ObjectMeta{Name: "n"},
		Status: kubeapi.NodeStatus{
			Conditions: []kubeapi.NodeCondition{{Type: "Ready", Status: "True"}},
			Addresses: []kubeapi.NodeAddress{
				{Type: kubeapi.NodeHostName, Address: "N.Example.com"},
				{Type: kubeapi.NodeExternalIP, Address: "not an ip"},
				{Type: kubeapi.NodeInternalIP, Address: "fd00::1"},
				{Type: kubeapi.NodeInternalIP, Address: "10.0.0.1"},
				{Type: kubeapi.NodeExternalIP, Address: "::ffff:203.0.113.9"},
			},
		},
	}
	tests := []struct{ typ, want string }{
		{"", "fd00::1"},
		{kubeapi.NodeInternalIP, "fd00::1"},
		{kubeapi.NodeExternalIP, "203.0.113.9"},
		{kubeapi.NodeHostName, "n.example.com"},
		{kubeapi.NodeInternalDNS, "fd00::1"}, // falls back to InternalIP
	}
	for _, tt := range tests {
		opts := testOptions()
		opts.NodeAddressType = tt.typ
		info, _ := newTestRenderer(t, opts).Model(kubeapi.Snapshot{Nodes: []*kubeapi.Node{node}})
		if got := info.Nodes[0].Address; got != tt.want {
			t.Errorf("%q: Address = %q, want %q", tt.typ, got, tt.want)
		}
	}
	info, warns := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Nodes: []*kubeapi.Node{node}})
	want := NodeAddresses{
		InternalIP: "fd00::1", ExternalIP: "203.0.113.9", Hostname: "n.example.com",
		All: []NodeAddress{{"Hostname", "n.example.com"}, {"InternalIP", "fd00::1"}, {"InternalIP", "10.0.0.1"}, {"ExternalIP", "203.0.113.9"}},
	}
	if diff := cmp.Diff(want, info.Nodes[0].Addresses); diff != "" {
		t.Errorf("Addresses (-want +got):\n%s", diff)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "not an IP") {
		t.Errorf("warnings = %q, want one about the invalid address", warns)
	}
	opts := testOptions()
	opts.NodeAddressType = "Bogus"
	if _, err := NewRenderer(opts); err == nil {
		t.Error("NewRenderer accepted node address type Bogus")
	}
}

func TestEndpointsAndBackends(t *testing.T) {
	svc := service("ns", "svc", nil,
		kubeapi.ServicePort{Name: "web", Port: 80, NodePort: 30080, TargetPort: kubeapi.IntOrString{IsString: true, StrVal: "http"}},
		kubeapi.ServicePort{Name: "dns", Port: 53, Protocol: "UDP", NodePort: 30053, TargetPort: kubeapi.IntOrString{IntVal: 5353}},
	)
	svc.Spec.ExternalTrafficPolicy = "Local"
	slice := func(name, addrType string, ports []kubeapi.EndpointPort, eps ...kubeapi.Endpoint) *kubeapi.EndpointSlice {
		return &kubeapi.EndpointSlice{
			Metadata:    kubeapi.ObjectMeta{Name: name, Namespace: "ns", Labels: kubeapi.Pairs{{Key: kubeapi.LabelServiceName, Value: "svc"}}},
			AddressType: addrType, Ports: ports, Endpoints: eps,
		}
	}
	ep := func(ip, node string, ready, serving, terminating *bool) kubeapi.Endpoint {
		return kubeapi.Endpoint{Addresses: []string{ip}, NodeName: ptr(node), TargetRef: &kubeapi.ObjectReference{Name: "pod-" + node},
			Conditions: kubeapi.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}}
	}
	webPorts := []kubeapi.EndpointPort{{Name: ptr("web"), Port: ptr(int32(8080))}, {Name: ptr("dns"), Protocol: ptr("UDP"), Port: ptr(int32(5353))}}
	snap := kubeapi.Snapshot{
		EndpointsWatched: true,
		Nodes:            []*kubeapi.Node{readyNode("n1", "10.0.0.1"), readyNode("n2", "10.0.0.2"), readyNode("n3", "10.0.0.3")},
		Services:         []*kubeapi.Service{svc},
		EndpointSlices: []*kubeapi.EndpointSlice{
			slice("a", "IPv4", webPorts,
				ep("10.1.0.9", "n2", nil, nil, nil), // nil ready means ready
				ep("10.1.0.1", "n1", ptr(true), nil, nil),
				ep("10.1.0.3", "n3", ptr(false), ptr(true), ptr(true)), // terminating: not used while others are ready
			),
			// The same endpoint in a second slice (a slice being
			// replaced) is listed once.
			slice("b", "IPv4", webPorts, ep("10.1.0.1", "n1", ptr(true), nil, nil)),
			slice("c", "FQDN", webPorts, kubeapi.Endpoint{Addresses: []string{"example.com"}}),
			// A slice of another service in the namespace is ignored.
			{Metadata: kubeapi.ObjectMeta{Namespace: "ns", Labels: kubeapi.Pairs{{Key: kubeapi.LabelServiceName, Value: "other"}}}, AddressType: "IPv4",
				Ports: webPorts, Endpoints: []kubeapi.Endpoint{ep("10.9.9.9", "n3", nil, nil, nil)}},
		},
	}
	info, _ := newTestRenderer(t, testOptions()).Model(snap)
	got := map[string][]string{}
	backends := map[string][]string{}
	for _, s := range info.Services {
		k := s.Port.Protocol
		for _, e := range s.Endpoints {
			got[k] = append(got[k], e.String()+"@"+e.NodeName)
		}
		backends[k] = names(s.Backends)
	}
	want := map[string][]string{
		"tcp": {"10.1.0.1:8080@n1", "10.1.0.9:8080@n2"},
		"udp": {"10.1.0.1:5353@n1", "10.1.0.9:5353@n2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string][]string{"tcp": {"n1", "n2"}, "udp": {"n1", "n2"}}, backends); diff != "" {
		t.Errorf("Local backends (-want +got):\n%s", diff)
	}

	// The ports of a Local service on different pods have different
	// backends; those with the same pods share one list of them.
	multi := service("ns", "svc", nil,
		kubeapi.ServicePort{Name: "web", Port: 80, NodePort: 30080, TargetPort: kubeapi.IntOrString{IntVal: 8080}},
		kubeapi.ServicePort{Name: "admin", Port: 81, NodePort: 30081, TargetPort: kubeapi.IntOrString{IntVal: 9000}},
		kubeapi.ServicePort{Name: "web2", Port: 82, NodePort: 30082, TargetPort: kubeapi.IntOrString{IntVal: 8081}},
	)
	multi.Spec.ExternalTrafficPolicy = "Local"
	multiSnap := kubeapi.Snapshot{EndpointsWatched: true, Nodes: snap.Nodes, Services: []*kubeapi.Service{multi},
		EndpointSlices: []*kubeapi.EndpointSlice{
			slice("w", "IPv4", []kubeapi.EndpointPort{{Name: ptr("web"), Port: ptr(int32(8080))}, {Name: ptr("web2"), Port: ptr(int32(8081))}},
				ep("10.1.0.1", "n1", nil, nil, nil), ep("10.1.0.3", "n3", nil, nil, nil)),
			slice("a", "IPv4", []kubeapi.EndpointPort{{Name: ptr("admin"), Port: ptr(int32(9000))}},
				ep("10.1.0.2", "n2", nil, nil, nil)),
		}}
	r := newTestRenderer(t, testOptions())
	for step, snap := range []kubeapi.Snapshot{multiSnap, withNodes(multiSnap, append(slices.Clone(multiSnap.Nodes), readyNode("n4", "10.0.0.4")))} {
		info, _ := r.Model(snap)
		byPort := map[int32]*ServiceInformation{}
		for _, s := range info.Services {
			byPort[s.Port.Port] = s
		}
		got := map[int32][]string{80: names(byPort[80].Backends), 81: names(byPort[81].Backends), 82: names(byPort[82].Backends)}
		if diff := cmp.Diff(map[int32][]string{80: {"n1", "n3"}, 81: {"n2"}, 82: {"n1", "n3"}}, got); diff != "" {
			t.Errorf("step %d: Local backends by port (-want +got):\n%s", step, diff)
		}
		if !sameSlice(byPort[80].Backends, byPort[82].Backends) {
			t.Errorf("step %d: ports 80 and 82 have the same pods and do not share their backends", step)
		}
	}

	// No ready endpoint: serving-but-terminating ones are used (serving
	// unset is serving, as the API says and kube-proxy reads it), and a
	// Local service has no backend (its health check fails on every node).
	snap.EndpointSlices = []*kubeapi.EndpointSlice{slice("a", "IPv4", webPorts,
		ep("10.1.0.3", "n3", ptr(false), ptr(true), ptr(true)),
		ep("10.1.0.4", "n2", ptr(false), ptr(false), ptr(true)),
		ep("10.1.0.5", "n1", ptr(false), nil, nil),
		ep("10.1.0.6", "n1", ptr(false), nil, ptr(true)),
	)}
	info, _ = newTestRenderer(t, testOptions()).Model(snap)
	s := info.Services[1] // 80/tcp
	if len(s.Endpoints) != 2 || s.Endpoints[0].IP != "10.1.0.3" || s.Endpoints[1].IP != "10.1.0.6" || s.Endpoints[0].Ready || s.Endpoints[1].Ready {
		t.Errorf("terminating fallback: endpoints = %+v", s.Endpoints)
	}
	if len(s.Backends) != 0 {
		t.Errorf("Local backends without ready endpoints = %v", names(s.Backends))
	}

	// Endpoints not watched: a Local service uses every node.
	snap.EndpointsWatched, snap.EndpointSlices = false, nil
	info, _ = newTestRenderer(t, testOptions()).Model(snap)
	if got := names(info.Services[0].Backends); len(got) != 3 {
		t.Errorf("Local backends without endpoint slices = %v, want all nodes", got)
	}
}

// TestBackendsByIPFamily checks that a service's backends are reached
// at their addresses of its primary IP family, where kube-proxy serves its
// node port, and that the nodes without one are left out with a warning
// while a service of that family exists.
func TestBackendsByIPFamily(t *testing.T) {
	node := func(name string, addrs ...string) *kubeapi.Node {
		n := readyNode(name, "")
		n.Status.Addresses = nil
		for _, a := range addrs {
			typ, addr, _ := strings.Cut(a, "=")
			n.Status.Addresses = append(n.Status.Addresses, kubeapi.NodeAddress{Type: typ, Address: addr})
		}
		return n
	}
	nodes := []*kubeapi.Node{
		node("a-v4first", "InternalIP=10.0.0.1", "InternalIP=fd00::1"),
		node("b-v6first", "InternalIP=fd00::2", "InternalIP=10.0.0.2"),
		node("c-v4", "InternalIP=10.0.0.3"),
		node("d-v6", "InternalIP=fd00::4"),
		node("e-v6external", "InternalIP=10.0.0.5", "ExternalIP=2001:db8::5"),
		node("f-name", "Hostname=f.example.com"),
	}
	svc := func(name string, families ...string) *kubeapi.Service {
		s := service("ns", name, nil, kubeapi.ServicePort{Port: 80, NodePort: 30080})
		s.Spec.IPFamilies = families
		return s
	}
	addrs := func(s *ServiceInformation) []string {
		var out []string
		for _, n := range s.Backends {
			out = append(out, n.Name+"="+n.BracketedAddress)
		}
		return out
	}
	all := []string{"a-v4first=10.0.0.1", "b-v6first=[fd00::2]", "c-v4=10.0.0.3", "d-v6=[fd00::4]", "e-v6external=10.0.0.5", "f-name=f.example.com"}
	want := map[string][]string{
		"none": all, // an API server that does not set ipFamilies
		"v4":   {"a-v4first=10.0.0.1", "b-v6first=10.0.0.2", "c-v4=10.0.0.3", "e-v6external=10.0.0.5", "f-name=f.example.com"},
		"v6":   {"a-v4first=[fd00::1]", "b-v6first=[fd00::2]", "d-v6=[fd00::4]", "e-v6external=[2001:db8::5]", "f-name=f.example.com"},
		"dual": all, // kube-proxy serves it on both families
	}
	warnV4 := "node d-v6 has no IPv4 address: not a backend of IPv4 services"
	warnV6 := "node c-v4 has no IPv6 address: not a backend of IPv6 services"
	warnName := "node f-name has no InternalIP address: using its Hostname f.example.com"
	r := newTestRenderer(t, testOptions())
	for _, step := range []struct {
		services []*kubeapi.Service
		warnings []string
	}{
		{[]*kubeapi.Service{svc("none")}, []string{warnName}},
		{[]*kubeapi.Service{svc("none"), svc("v4", "IPv4")}, []string{warnV4, warnName}},
		{[]*kubeapi.Service{svc("dual", "IPv6", "IPv4"), svc("none"), svc("v4", "IPv4"), svc("v6", "IPv6")}, []string{warnV6, warnV4, warnName}},
		{[]*kubeapi.Service{svc("v6", "IPv6")}, []string{warnV6, warnName}},
	} {
		for _, r := range []*Renderer{r, newTestRenderer(t, testOptions())} {
			info, warns := r.Model(kubeapi.Snapshot{Nodes: nodes, Services: step.services})
			for _, s := range info.Services {
				if diff := cmp.Diff(want[s.Name], addrs(s)); diff != "" {
					t.Errorf("%s: backends (-want +got):\n%s", s.Name, diff)
				}
			}
			if diff := cmp.Diff(step.warnings, warns); diff != "" {
				t.Errorf("%d services: warnings (-want +got):\n%s", len(step.services), diff)
			}
			if diff := cmp.Diff(all, addrs(&ServiceInformation{Backends: info.Nodes})); diff != "" {
				t.Errorf(".Nodes (-want +got):\n%s", diff)
			}
		}
	}

	// A single-stack cluster: no node has an address of the family, and
	// none is left out.
	v4 := []*kubeapi.Node{readyNode("n1", "10.0.0.1"), readyNode("n2", "10.0.0.2")}
	info, warns := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Nodes: v4, Services: []*kubeapi.Service{svc("v6", "IPv6")}})
	if got := addrs(info.Services[0]); len(got) != 2 || len(warns) != 0 {
		t.Errorf("single-stack nodes: backends %v, warnings %q", got, warns)
	}
}

func TestServerNames(t *testing.T) {
	opts := testOptions()
	opts.ServerNameTemplates = []string{"{{ .Service.Name }}.example.com", DefaultServerNameTemplate, "{{ .Service.Name }}.example.com", "{{ ToUpper .Service.Name }}.example.net"}
	r := newTestRenderer(t, opts)
	svc := service("ns", "web", map[string]string{AnnotationExternalDomains: " b.example.com, web.example.com ,~^a\\.example\\.com$,b.example.com,,"},
		kubeapi.ServicePort{Port: 80, NodePort: 30080})
	info, _ := r.Model(kubeapi.Snapshot{Services: []*kubeapi.Service{svc}})
	got, err := serverNames(*info.Services[0], info.Domain)
	if err != nil {
		t.Fatal(err)
	}
	want := []ServerName{"web.example.com", "web.ns.svc.cluster.local", "WEB.example.net", "b.example.com", `~^a\.example\.com$`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ServerNames (-want +got):\n%s", diff)
	}
	other, _ := serverNames(*info.Services[0], "other.domain")
	if other[1] != "web.ns.svc.other.domain" {
		t.Errorf("ServerNames with another domain = %v", other)
	}
	if !got[4].IsRegexp() || got[4].Regexp() != `^a\.example\.com$` || got[0].IsRegexp() {
		t.Error("IsRegexp/Regexp")
	}

	for _, bad := range []string{"{{ .Service.Nope }}", "{{ ServerNames .Service .Domain }}", "{{ range .Service.Endpoints }}{{ end }}x", "{{ .Service.Name"} {
		opts.ServerNameTemplates = []string{bad}
		if _, err := NewRenderer(opts); err == nil {
			t.Errorf("NewRenderer accepted server name template %q", bad)
		}
	}
}

func TestFuncs(t *testing.T) {
	tmpl, err := parseTemplate("funcs", `{{ EscapeNode "a.b:c" }} {{ range $i, $v := IntRange 3 10 5 }}{{ $i }}={{ $v }} {{ end }}{{ len (IntRange 0 1 1) }}
{{ Add 1 2 3 }} {{ range .Services }}{{ Add .NodePort .Port.Port 1 }} {{ JoinHostPort .Port.IP .Port.Port }}{{ end }}
{{ JoinHostPort "fd00::1" 80 }} {{ JoinHostPort "10.0.0.1" "http" }} {{ range .Nodes }}{{ JoinHostPort . 30000 }} {{ EscapeNode . }} {{ ToUpper . }} {{ end }}
{{ range .Services }}{{ range ServerNames . $.Domain }}{{ ToUpper . }} {{ end }}{{ end }}{{ ToLower "ABC" }}`)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.DefaultLBIP = net.ParseIP("fd00::10")
	snap := kubeapi.Snapshot{
		Nodes:    []*kubeapi.Node{readyNode("n.1", "fd00::1")},
		Services: []*kubeapi.Service{service("ns", "web", nil, kubeapi.ServicePort{Port: 80, NodePort: 30080})},
	}
	res, err := newTestRenderer(t, opts).Render(tmpl, snap)
	if err != nil {
		t.Fatal(err)
	}
	want := `a_b_c 0=10 1=15 2=20 0
6 30161 [fd00::10]:80
[fd00::1]:80 10.0.0.1:http [fd00::1]:30000 n_1 N.1 
WEB.NS.SVC.CLUSTER.LOCAL abc`
	if diff := cmp.Diff(want, res.Output.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := (PortSpec{IP: net.ParseIP("fd00::10"), Port: 443, Protocol: "tcp", Mode: "tcp"}).String(); got != "fd000000000000000000000000000010_443_tcp_tcp" {
		t.Errorf("IPv6 PortSpec = %s", got)
	}
	if _, err := intRange(maxIntRange+1, 0, 1); err == nil {
		t.Error("IntRange accepted a huge n")
	}
}

func TestParseTemplate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct{ name, text, want string }{
		{"syntax", "ok\n{{ range .Services }}\n{{ end\n", "syntax.tmpl:3"},
		{"function", "ok\n\n{{ Nope }}\n", `syntax.tmpl:3: function "Nope" not defined`},
		{"field", "{{ range .Services }}\n{{ .Nmae }}{{ end }}", "field.tmpl:2:3"},
		{"empty", " \n\t\n", "empty.tmpl is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(tt.name+".tmpl", tt.text)
			want := strings.Replace(tt.want, "syntax.tmpl", tt.name+".tmpl", 1)
			_, err := ParseTemplate(p)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), filepath.Join(dir, want)) {
				t.Errorf("error %v, want it to name %s", err, filepath.Join(dir, want))
			}
		})
	}
	if _, err := ParseTemplate(filepath.Join(dir, "missing")); err == nil {
		t.Error("no error for a missing file")
	}
}

func TestUsesEndpoints(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"{{ range .Services }}{{ .Name }} {{ .NodePort }}{{ end }}", false},
		{"{{ range .Nodes }}{{ . }}{{ end }}{{ .Domain }}", false},
		{"{{ range .Services }}{{ range .Endpoints }}{{ . }}{{ end }}{{ end }}", true},
		{"{{ range $s := .Services }}{{ len $s.Endpoints }}{{ end }}", true},
		{"{{ range .Services }}{{ with .Backends }}{{ . }}{{ end }}{{ end }}", true},
		{"{{ range .Services }}{{ if true }}{{ else }}{{ (index .Endpoints 0).IP }}{{ end }}{{ end }}", true},
		{`{{ define "x" }}{{ range .Endpoints }}{{ end }}{{ end }}{{ range .Services }}{{ template "x" . }}{{ end }}`, true},
		{"{{ range .Services }}{{ (.).Endpoints }}{{ end }}", true},
	}
	for _, tt := range tests {
		tmpl, err := parseTemplate("t", tt.text)
		if err != nil {
			t.Fatalf("%s: %v", tt.text, err)
		}
		if got := tmpl.UsesEndpoints(); got != tt.want {
			t.Errorf("%s: UsesEndpoints = %v, want %v", tt.text, got, tt.want)
		}
	}
	for _, ex := range examples {
		tmpl, err := ParseTemplate(ex.template)
		if err != nil {
			t.Fatal(err)
		}
		// Backends depend on endpoints for Local services.
		if !tmpl.UsesEndpoints() {
			t.Errorf("%s: UsesEndpoints = false", ex.template)
		}
	}
	tmpl, err := ParseTemplate("testdata/readme-examples.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.UsesEndpoints() {
		t.Error("readme-examples.tmpl: UsesEndpoints = true")
	}
}

// recorder is a slog.Handler keeping the messages' warning attribute.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "warning" {
			r.msgs = append(r.msgs, a.Value.String())
		}
		return true
	})
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func TestWarningsLoggedOnce(t *testing.T) {
	rec := &recorder{}
	opts := testOptions()
	opts.Logger = slog.New(rec)
	r := newTestRenderer(t, opts)
	tmpl, err := parseTemplate("t", "{{ range .Services }}{{ .Name }}{{ end }}")
	if err != nil {
		t.Fatal(err)
	}
	bad := func(v string) kubeapi.Snapshot {
		return kubeapi.Snapshot{Services: []*kubeapi.Service{service("ns", "svc", map[string]string{AnnotationBackendTimeout: v}, kubeapi.ServicePort{Port: 80})}}
	}
	steps := []struct {
		snap kubeapi.Snapshot
		want []string // newly logged
	}{
		{bad("{"), []string{`service ns/svc: annotation kube2lb/backend-timeout: "{" ignored, using defaults: not a JSON object`}},
		{bad("{"), nil},
		{bad("{"), nil},
		{bad(`{"http": -1}`), []string{`service ns/svc: annotation kube2lb/backend-timeout: entry "http": "-1" dropped: not a positive number of milliseconds up to 2147483647`}},
		{kubeapi.Snapshot{}, nil},
		{bad("{"), []string{`service ns/svc: annotation kube2lb/backend-timeout: "{" ignored, using defaults: not a JSON object`}},
	}
	for i, st := range steps {
		rec.msgs = nil
		res, err := r.Render(tmpl, st.snap)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st.want, rec.msgs); diff != "" {
			t.Errorf("step %d: logged (-want +got):\n%s", i, diff)
		}
		if len(res.Warnings) == 0 != (len(st.snap.Services) == 0) {
			t.Errorf("step %d: Result.Warnings = %q", i, res.Warnings)
		}
	}
}

func TestAnnotationValues(t *testing.T) {
	tests := []struct {
		name, mode, timeout string
		wantMode            string
		wantTimeout         int
		wantWarnings        int
	}{
		{"defaults", "", "", "http", 0, 0},
		{"valid", `{"p": "TCP"}`, `{"p": 1500}`, "tcp", 1500, 0},
		{"other port", `{"q": "tcp"}`, `{"q": 1500}`, "http", 0, 2}, // a warning each: no port q
		{"bad json", `{"p": "tcp"`, `[1]`, "http", 0, 2},
		{"bad values", `{"p": 1}`, `{"p": "1500"}`, "http", 0, 2},
		{"zero", `{"p": "http2"}`, `{"p": 0}`, "http2", 0, 1},
		{"float", `{"p": "tcp"}`, `{"p": 1.5}`, "tcp", 0, 1},
		{"huge", `{"p": "tcp"}`, `{"p": 99999999999}`, "tcp", 0, 1},
		{"unsafe mode", `{"p": "tcp;"}`, `{}`, "http", 0, 1},
		// a key written twice: the last value, and a warning each
		{"repeated", `{"p": "udp", "p": "tcp"}`, `{"p": 1, "p": 2000}`, "tcp", 2000, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := service("ns", "svc", map[string]string{AnnotationPortMode: tt.mode, AnnotationBackendTimeout: tt.timeout}, kubeapi.ServicePort{Name: "p", Port: 80})
			info, warns := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Services: []*kubeapi.Service{svc}})
			s := info.Services[0]
			if s.Port.Mode != tt.wantMode || s.Timeout != tt.wantTimeout || len(warns) != tt.wantWarnings {
				t.Errorf("mode %q timeout %d warnings %q; want %q %d and %d warnings", s.Port.Mode, s.Timeout, warns, tt.wantMode, tt.wantTimeout, tt.wantWarnings)
			}
		})
	}
}

func TestSafeValues(t *testing.T) {
	in := kubeapi.PairsOf(map[string]string{
		"ok": "a-b_c.d/e:f=g,h", "empty": "", "space": "a b", "newline": "a\nb", "brace": "a}", "semicolon": "a;",
		"hash": "a#", "quote": `a"`, "dollar": "$host", "backslash": `a\b`, "utf8": "é", "invalid": "\xff", "long": strings.Repeat("a", 2000),
		"a b": "key with a space", "k}": "brace in the key",
	})
	want := kubeapi.Pairs{{Key: "empty", Value: ""}, {Key: "ok", Value: "a-b_c.d/e:f=g,h"}}
	if diff := cmp.Diff(want, safePairs(in, "")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Entries that lose nothing are shared; those that lose an entry are
	// copied, never written: they are the cache's.
	safe := kubeapi.Pairs{{Key: "team", Value: "x"}, {Key: "tier", Value: "web"}}
	if got := safePairs(safe, "kube2lb/"); !sameSlice(got, safe) {
		t.Error("safe entries were copied")
	}
	own := kubeapi.Pairs{{Key: AnnotationPortMode, Value: "tcp"}, {Key: "team", Value: "x"}}
	if diff := cmp.Diff(kubeapi.Pairs{{Key: "team", Value: "x"}}, safePairs(own, "kube2lb/")); diff != "" {
		t.Errorf("kube2lb/ dropped (-want +got):\n%s", diff)
	}
	if own[0].Key != AnnotationPortMode || len(own) != 2 {
		t.Errorf("safePairs wrote to its argument: %v", own)
	}
	// Nothing kept is nil, as no entries are.
	if got := safePairs(kubeapi.Pairs{{Key: AnnotationPortMode, Value: "tcp"}}, "kube2lb/"); got != nil {
		t.Errorf("only kube2lb/ entries: %#v, want nil", got)
	}
}

func TestSanityChecks(t *testing.T) {
	proc := t.TempDir()
	writeProc := func(name, v string) {
		p := filepath.Join(proc, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeProc("net/ipv4/ip_local_port_range", "32768\t60999")
	writeProc("net/ipv4/ip_local_reserved_ports", "40000,45000-45001")
	writeProc("net/ipv4/ip_nonlocal_bind", "0")
	lb := func(name, ip string, ports ...int32) *kubeapi.Service {
		s := service("ns", name, nil)
		s.Spec.Type = kubeapi.ServiceTypeLoadBalancer
		s.Spec.LoadBalancerIP = ip
		for _, p := range ports {
			s.Spec.Ports = append(s.Spec.Ports, kubeapi.ServicePort{Port: p, NodePort: 30000})
		}
		return s
	}
	snap := kubeapi.Snapshot{Services: []*kubeapi.Service{
		lb("ports", "", 80, 32768, 40000, 45001, 50000, 60999, 61000),
		lb("local", "192.0.2.1", 80),
		lb("remote", "198.51.100.1", 80),
		lb("garbage", "300.1.1.1", 80),
	}}
	render := func(opts Options) []string {
		r := newTestRenderer(t, opts)
		r.host = hostSeams{procSys: proc, interfaceAddrs: func() ([]net.Addr, error) {
			return []net.Addr{&net.IPNet{IP: net.ParseIP("192.0.2.1"), Mask: net.CIDRMask(24, 32)}}, nil
		}}
		res, err := r.Render(mustParse(t, ""), snap)
		if err != nil {
			t.Fatal(err)
		}
		return append(servicePortNames(res), res.Warnings...)
	}
	opts := testOptions()
	opts.SanityChecks = true
	want := []string{
		"ns/local:80/tcp", "ns/ports:80/tcp", "ns/ports:40000/tcp", "ns/ports:45001/tcp", "ns/ports:61000/tcp",
		`service ns/garbage skipped: spec.loadBalancerIP "300.1.1.1" is not an IP`,
		"service ns/ports: port 32768/tcp skipped: in the host's ephemeral port range 32768-60999",
		"service ns/ports: port 50000/tcp skipped: in the host's ephemeral port range 32768-60999",
		"service ns/ports: port 60999/tcp skipped: in the host's ephemeral port range 32768-60999",
		"service ns/remote skipped: spec.loadBalancerIP 198.51.100.1 cannot be bound: not an address of this host and net.ipv4.ip_nonlocal_bind is 0",
	}
	if diff := cmp.Diff(want, render(opts)); diff != "" {
		t.Errorf("checks on (-want +got):\n%s", diff)
	}
	writeProc("net/ipv4/ip_nonlocal_bind", "1")
	got := render(opts)
	if !slices.Contains(got, "ns/remote:80/tcp") {
		t.Errorf("ip_nonlocal_bind=1: remote skipped: %q", got)
	}
	opts.SanityChecks = false
	got = render(opts)
	if len(got) != 10 || !strings.Contains(got[9], "garbage") || !slices.Contains(got, "ns/remote:80/tcp") {
		t.Errorf("checks off: %q", got)
	}
}

func mustParse(t *testing.T, text string) *Template {
	t.Helper()
	tmpl, err := parseTemplate("t", text)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// TestSharedPortNamesServices checks that the warning about a shared
// port names its services: the first five by name, in whatever order they
// come, the others counted, and not the ports dropped from it.
func TestSharedPortNamesServices(t *testing.T) {
	svc := func(name, mode string) *kubeapi.Service {
		return service("ns", name, map[string]string{AnnotationPortMode: `{"p": "` + mode + `"}`}, kubeapi.ServicePort{Name: "p", Port: 3306, NodePort: 30000})
	}
	var services []*kubeapi.Service
	for _, name := range []string{"g", "c", "f", "a", "e", "b", "d"} {
		services = append(services, svc(name, "tcp"))
	}
	services = append(services, svc("z-http", "http")) // dropped: the listener is in mode tcp
	want := []string{
		"port 3306/tcp on 0.0.0.0 (00000000_3306_tcp_tcp) is shared by 7 services in mode tcp, which cannot route by host name: ns/a, ns/b, ns/c, ns/d, ns/e and 2 more",
		"service ns/z-http: port 3306/tcp on 0.0.0.0 dropped: mode http, but the listener is in mode tcp, set by the older service ns/a",
	}
	for _, snap := range [][]*kubeapi.Service{services, reversed(services)} {
		_, warns := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Services: snap})
		if diff := cmp.Diff(want, warns); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}

	// By namespace, then name, as .Services: a/z before a-b/x.
	in := func(ns, name string) *kubeapi.Service {
		return service(ns, name, map[string]string{AnnotationPortMode: `{"p": "tcp"}`}, kubeapi.ServicePort{Name: "p", Port: 3306, NodePort: 30000})
	}
	_, warns := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Services: []*kubeapi.Service{in("a", "z"), in("a-b", "x")}})
	if want := "port 3306/tcp on 0.0.0.0 (00000000_3306_tcp_tcp) is shared by 2 services in mode tcp, which cannot route by host name: a/z, a-b/x"; !slices.Contains(warns, want) {
		t.Errorf("warnings %q, want %q", warns, want)
	}
}

func reversed[E any](s []E) []E {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// TestHostRulesBounded checks that one service's external domains times
// its ports stay under maxHostRules: one namespace's annotation on a
// service of many ports made a configuration the load balancer could not
// check in time, for every namespace.
func TestHostRulesBounded(t *testing.T) {
	var names []string
	for i := range 3000 {
		names = append(names, fmt.Sprintf("h%d.example.com", i))
	}
	var ports []kubeapi.ServicePort
	for i := range 4 {
		ports = append(ports, kubeapi.ServicePort{Port: int32(8000 + i), NodePort: int32(30000 + i)})
	}
	svc := service("evil", "many", map[string]string{AnnotationExternalDomains: strings.Join(names, ",")}, ports...)
	info, warns := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Services: []*kubeapi.Service{svc}})
	if diff := cmp.Diff([]string{"service evil/many: kube2lb/external-domains: 3000 entries × 4 ports > 10000 host rules: first 2500 used"}, warns); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	for _, s := range info.Services {
		if len(s.External) != 2500 || s.External[2499] != "h2499.example.com" {
			t.Errorf("%s: %d external domains, the last %s", s, len(s.External), s.External[len(s.External)-1])
		}
	}
}

// TestLoadBalancerSourceRanges checks that a LoadBalancer service's
// loadBalancerSourceRanges, or when it has none those of the annotation
// the cloud providers read, reach templates as masked CIDRs, invalid
// entries dropped with a warning, and that a service none of whose
// entries is valid is not served (it would admit every client).
func TestLoadBalancerSourceRanges(t *testing.T) {
	svc := func(name, typ, annotation string, ranges ...string) *kubeapi.Service {
		s := service("ns", name, nil, kubeapi.ServicePort{Port: 80, NodePort: 30080})
		s.Spec.Type, s.Spec.LoadBalancerSourceRanges = typ, ranges
		if annotation != "" {
			s.Metadata.Annotations = kubeapi.Pairs{{Key: AnnotationSourceRanges, Value: annotation}}
		}
		return s
	}
	lb, np := kubeapi.ServiceTypeLoadBalancer, kubeapi.ServiceTypeNodePort
	var many []string
	for i := range maxHostRules + 1 {
		many = append(many, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
	}
	info, warns := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Services: []*kubeapi.Service{
		svc("a", lb, "", " 10.1.2.3/8", "fd00::1/64", "10.0.0.1", "fe80::1%eth0/64"),
		svc("b", lb, "", "bad"),
		svc("c", np, "", "10.0.0.0/8"),
		svc("d", lb, ""),
		svc("e", lb, " 10.1.2.3/16 ,192.0.2.0/24,, 10.9.9.9"),
		svc("f", lb, "192.0.2.0/24", "198.51.100.0/24"), // the field wins
		svc("g", lb, "bad, worse"),
		svc("h", np, "10.0.0.0/8"),
		svc("i", lb, " "), // blank: every client
		// Leading zeros, which the API server accepts as decimal, and
		// IPv4-mapped ranges, as the load balancers see IPv4 clients.
		svc("j", lb, "", "010.0.0.0/08", "127.000.0.2/32", "::ffff:127.0.0.2/128", "::ffff:0:0/96", "::ffff:0:0/80"),
		svc("k", lb, "a,b,c,d,e,f,g,h,i,j,k,l,192.0.2.1/32"), // 12 invalid entries
		svc("l", lb, "", ""), // blank entries are invalid: not served
		svc("m", lb, ","),
		svc("n", lb, "", many...), // over maxHostRules
	}})
	got := map[string][]string{}
	for _, s := range info.Services {
		got[s.Name] = s.LoadBalancerSourceRanges
	}
	if n := got["n"]; len(n) != maxHostRules || n[maxHostRules-1] != many[maxHostRules-1] {
		t.Errorf("service n: %d ranges, want the first %d", len(n), maxHostRules)
	}
	delete(got, "n")
	wantRanges := map[string][]string{
		"a": {"10.0.0.0/8", "fd00::/64"}, "c": nil, "d": nil,
		"e": {"10.1.0.0/16", "192.0.2.0/24"}, "f": {"198.51.100.0/24"}, "h": nil, "i": nil,
		"j": {"10.0.0.0/8", "127.0.0.2/32", "127.0.0.2/32", "0.0.0.0/0", "::/80"},
		"k": {"192.0.2.1/32"},
	}
	if diff := cmp.Diff(wantRanges, got); diff != "" {
		t.Errorf("ranges by service (-want +got):\n%s", diff)
	}
	const annotation = "annotation service.beta.kubernetes.io/load-balancer-source-ranges"
	want := []string{
		`service ns/a: spec.loadBalancerSourceRanges: entry "10.0.0.1" dropped: not a CIDR`,
		`service ns/a: spec.loadBalancerSourceRanges: entry "fe80::1%eth0/64" dropped: not a CIDR`,
		"service ns/b skipped: spec.loadBalancerSourceRanges has no valid entry",
		`service ns/b: spec.loadBalancerSourceRanges: entry "bad" dropped: not a CIDR`,
		`service ns/e: ` + annotation + `: entry "" dropped: not a CIDR`,
		`service ns/e: ` + annotation + `: entry "10.9.9.9" dropped: not a CIDR`,
		"service ns/g skipped: " + annotation + " has no valid entry",
		`service ns/g: ` + annotation + `: entry "bad" dropped: not a CIDR`,
		`service ns/g: ` + annotation + `: entry "worse" dropped: not a CIDR`,
		"service ns/k: " + annotation + ": 2 more invalid entries dropped",
		"service ns/l skipped: spec.loadBalancerSourceRanges has no valid entry",
		`service ns/l: spec.loadBalancerSourceRanges: entry "" dropped: not a CIDR`, // twice, said once
		"service ns/m skipped: " + annotation + " has no valid entry",
		`service ns/m: ` + annotation + `: entry "" dropped: not a CIDR`,
		"service ns/n: spec.loadBalancerSourceRanges: entries × ports over 10000 rules: first 10000 used",
	}
	for _, e := range "abcdefghij" {
		want = append(want, fmt.Sprintf("service ns/k: %s: entry %q dropped: not a CIDR", annotation, string(e)))
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, warns); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestExternalIPsAsLoadBalancerIPs checks that .ExternalIPs leaves out
// what a loadBalancerIP may not be: a template may listen on them too.
func TestExternalIPsAsLoadBalancerIPs(t *testing.T) {
	svc := service("ns", "a", nil, kubeapi.ServicePort{Port: 80, NodePort: 30080})
	svc.Spec.ExternalIPs = []string{"127.0.0.1", "198.51.100.1", "fe80::1", "::ffff:192.0.2.9", "not an ip"}
	info, _ := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Services: []*kubeapi.Service{svc}})
	if diff := cmp.Diff([]string{"198.51.100.1", "192.0.2.9"}, info.Services[0].ExternalIPs); diff != "" {
		t.Errorf("ExternalIPs (-want +got):\n%s", diff)
	}
	opts := testOptions()
	opts.LBIPRanges = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	info, _ = newTestRenderer(t, opts).Model(kubeapi.Snapshot{Services: []*kubeapi.Service{svc}})
	if diff := cmp.Diff([]string{"192.0.2.9"}, info.Services[0].ExternalIPs); diff != "" {
		t.Errorf("ExternalIPs with -lb-ip-ranges (-want +got):\n%s", diff)
	}
}

// TestLeadingZeros checks that addresses and ranges with the leading
// zeros the API server accepts, as decimal, are read so: a
// loadBalancerIP, externalIPs and source ranges (TestLoadBalancerSourceRanges).
func TestLeadingZeros(t *testing.T) {
	for in, want := range map[string]string{
		"010.0.0.0/08": "10.0.0.0/8", "127.000.0.2/32": "127.0.0.2/32", "0.0.0.0/0": "0.0.0.0/0",
		"000.00.0.001": "0.0.0.1", "10.0.0.1/032": "10.0.0.1/32", "::ffff:1.02.3.4": "::ffff:1.2.3.4",
		"fd00:0001::/64": "fd00:1::/64", "0123::/16": "123::/16", "0::/0": "0::/0", "": "", " 1.2.3.4/0\n": "1.2.3.4/0",
		"::ffff:010.1.2.3/128": "::ffff:10.1.2.3/128", "fd00:00001::": "fd00:1::", "0/0": "0/0",
	} {
		if got := unzero(in); got != want {
			t.Errorf("unzero(%q) = %q, want %q", in, got, want)
		}
	}
	svc := service("ns", "a", nil, kubeapi.ServicePort{Port: 80, NodePort: 30080})
	svc.Spec.Type, svc.Spec.LoadBalancerIP = kubeapi.ServiceTypeLoadBalancer, "192.000.2.010"
	svc.Spec.ExternalIPs = []string{"198.051.100.001"}
	info, warns := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Services: []*kubeapi.Service{svc}})
	if len(info.Services) != 1 || len(warns) > 0 {
		t.Fatalf("services %v, warnings %q", info.Services, warns)
	}
	s := info.Services[0]
	if s.LoadBalancerIP != "192.0.2.10" || s.Port.IP.String() != "192.0.2.10" || !slices.Equal(s.ExternalIPs, []string{"198.51.100.1"}) {
		t.Errorf("loadBalancerIP %s, listener %s, externalIPs %v", s.LoadBalancerIP, s.Port.IP, s.ExternalIPs)
	}
}

// TestSharedUDPListener checks that services sharing a udp listener are
// warned about in mode http too: only tcp routes by host name.
func TestSharedUDPListener(t *testing.T) {
	svc := func(name string) *kubeapi.Service {
		return service("ns", name, nil, kubeapi.ServicePort{Name: "dns", Port: 5300, Protocol: "UDP", NodePort: 30053})
	}
	_, warns := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Services: []*kubeapi.Service{svc("a"), svc("b")}})
	want := []string{"port 5300/udp on 0.0.0.0 (00000000_5300_udp_http) is shared by 2 services in mode http over udp, which cannot route by host name: ns/a, ns/b"}
	if diff := cmp.Diff(want, warns); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestPortConflicts(t *testing.T) {
	svc := func(name, mode string) *kubeapi.Service {
		return service("ns", name, map[string]string{AnnotationPortMode: `{"p": "` + mode + `"}`}, kubeapi.ServicePort{Name: "p", Port: 3306, NodePort: 30000})
	}
	_, warns := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Services: []*kubeapi.Service{
		svc("a", "tcp"), svc("b", "tcp"), svc("c", "http"), svc("d", "http"),
	}})
	want := []string{
		"port 3306/tcp on 0.0.0.0 (00000000_3306_tcp_tcp) is shared by 2 services in mode tcp, which cannot route by host name: ns/a, ns/b",
		"service ns/c: port 3306/tcp on 0.0.0.0 dropped: mode http, but the listener is in mode tcp, set by the older service ns/a",
		"service ns/d: port 3306/tcp on 0.0.0.0 dropped: mode http, but the listener is in mode tcp, set by the older service ns/a",
	}
	if diff := cmp.Diff(want, warns); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	info, _ := newTestRenderer(t, testOptions()).Model(kubeapi.Snapshot{Services: []*kubeapi.Service{svc("b", "tcp"), svc("a", "tcp"), svc("c", "http")}})
	if len(info.Ports) != 1 {
		t.Errorf("Ports = %v, want one listener", info.Ports)
	}
	var got []string
	for _, p := range info.Ports {
		for _, s := range info.PortServices(p) {
			got = append(got, p.String()+" "+s.Name)
		}
	}
	if diff := cmp.Diff([]string{"00000000_3306_tcp_tcp a", "00000000_3306_tcp_tcp b"}, got); diff != "" {
		t.Errorf("PortServices (-want +got):\n%s", diff)
	}
}

// TestPortServicesReadAsValues checks that the pointers PortServices
// returns read, print and pass to functions as the ServiceInformation
// values of .Services do.
func TestPortServicesReadAsValues(t *testing.T) {
	const body = `{{.}}|{{.Name}}|{{.Port}}|{{printf "%v" .}}|{{ServerNames . $.Domain}}|{{with .Endpoints}}{{index . 0}}{{end}};`
	byPort := mustParse(t, `{{range $p := .Ports}}{{$p}}:{{range $.PortServices $p}}`+body+`{{end}}
{{end}}`)
	byFilter := mustParse(t, `{{range $p := .Ports}}{{$p}}:{{range $.Services}}{{if eq .Port.String $p.String}}`+body+`{{end}}{{end}}
{{end}}`)
	snap := loadSnapshot(t, "testdata/cluster.json")
	r := newTestRenderer(t, testOptions())
	got, err := r.Render(byPort, snap)
	if err != nil {
		t.Fatal(err)
	}
	want, err := r.Render(byFilter, snap)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want.Output.Bytes()), string(got.Output.Bytes())); diff != "" {
		t.Errorf("(-values +PortServices):\n%s", diff)
	}
	if !strings.Contains(string(got.Output.Bytes()), "svc.") {
		t.Errorf("output without server names:\n%s", got.Output.Bytes())
	}
}

// TestLabelsInTemplates renders the ways templates read a service's
// labels and annotations (kept as kubeapi.Pairs, given to templates as
// maps): unsafe entries and kube2lb's own are left out.
func TestLabelsInTemplates(t *testing.T) {
	svc := service("ns", "web", map[string]string{
		AnnotationExternalDomains: "web.example.com", "example.com/weight": "5", "example.com/evil": "a;b",
	}, kubeapi.ServicePort{Name: "http", Port: 80, NodePort: 30080})
	svc.Metadata.Labels = kubeapi.Pairs{{Key: "app", Value: "web"}, {Key: "bad", Value: "x y"}, {Key: "tier", Value: "front"}}
	bare := service("ns", "bare", map[string]string{AnnotationPortMode: `{"http": "tcp"}`},
		kubeapi.ServicePort{Name: "http", Port: 81, NodePort: 30081})
	path := filepath.Join(t.TempDir(), "t.tmpl")
	text := `{{range .Services}}{{.Name}}: {{index .Labels "app"}}|{{.Labels.tier}}|{{len .Labels}}|` +
		`{{range $k, $v := .Annotations}}{{$k}}={{$v}};{{end}}|{{if .Annotations}}annotated{{else}}none{{end}}|` +
		`{{with .Labels}}{{.app}}{{else}}unlabelled{{end}}|{{.Labels}}` + "\n{{end}}"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	res := renderFile(t, newTestRenderer(t, testOptions()), path, kubeapi.Snapshot{Services: []*kubeapi.Service{svc, bare}})
	want := "bare: |<no value>|0||none|unlabelled|map[]\n" +
		"web: web|front|2|example.com/weight=5;|annotated|web|map[app:web tier:front]\n"
	if diff := cmp.Diff(want, res.Output.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// withNodes returns snap with its nodes replaced.
func withNodes(snap kubeapi.Snapshot, nodes []*kubeapi.Node) kubeapi.Snapshot {
	snap.Nodes = nodes
	return snap
}

// TestNodeLabelsShared checks that a node rebuilt with the same labels
// (its status changed) keeps the map of labels of the last build.
func TestNodeLabelsShared(t *testing.T) {
	n1, n2 := readyNode("n1", "10.0.0.1"), readyNode("n2", "10.0.0.2")
	n1.Metadata.Labels = kubeapi.Pairs{{Key: "zone", Value: "a"}, {Key: "bad", Value: "a b"}}
	n2.Metadata.Labels = kubeapi.Pairs{{Key: "zone", Value: "b"}}
	b := &builder{r: newTestRenderer(t, testOptions())}
	first, _ := b.nodes([]*kubeapi.Node{n1, n2}, nil)
	// n1's status changes, n2's labels.
	n1b := with(n1, func(n *kubeapi.Node) { n.Spec.Unschedulable = true })
	n2b := with(n2, func(n *kubeapi.Node) { n.Metadata.Labels = kubeapi.Pairs{{Key: "zone", Value: "c"}} })
	second, _ := b.nodes([]*kubeapi.Node{n2b, n1b}, first)
	if diff := cmp.Diff([]map[string]string{{"zone": "a"}, {"zone": "c"}}, []map[string]string{second[0].Labels, second[1].Labels}); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if reflect.ValueOf(first[0].Labels).UnsafePointer() != reflect.ValueOf(second[0].Labels).UnsafePointer() {
		t.Error("n1's unchanged labels were built again")
	}
	if second[0].Unschedulable != true {
		t.Error("n1's change was lost")
	}
}

// TestServerNamesFast checks that the server name templates give the same
// names through the fast executor as through text/template, and that the
// fast executor runs those in its subset.
func TestServerNamesFast(t *testing.T) {
	opts := testOptions()
	opts.ServerNameTemplates = []string{DefaultServerNameTemplate, "{{ .Service.Name }}-{{ .Service.Port.Port }}.{{ .Domain }}",
		"{{ ToUpper .Service.Name }}.example.net", `{{ if eq .Service.Type "LoadBalancer" }}lb-{{ .Service.Namespace }}.{{ .Domain }}{{ end }}`}
	r := newTestRenderer(t, opts)
	if r.names.fast[0] == nil || r.names.fast[1] == nil || r.names.fast[3] == nil {
		t.Fatal("templates in the fast executor's subset were not compiled")
	}
	slow := *r.names
	slow.fast = nil
	for _, s := range sampleInfo(opts.Domain).Services {
		got, err := computeServerNames(r.names, *s, opts.Domain, nil)
		want, wantErr := computeServerNames(&slow, *s, opts.Domain, nil)
		if err != nil || wantErr != nil {
			t.Fatal(err, wantErr)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: (-text/template +fast):\n%s", s, diff)
		}
	}
	if r.names.fast[0].ran.Load() == 0 || r.names.fast[3].ran.Load() == 0 {
		t.Error("the fast executor did not run")
	}
}

// TestZeroServiceInformation checks that the zero value, which has no
// service values, reads as empty rather than panicking: where a template
// function or the cache's key meets one.
func TestZeroServiceInformation(t *testing.T) {
	var s ServiceInformation
	if got := s.String(); got != "__0__" {
		t.Errorf("String() = %q", got)
	}
	if s.Labels() != nil || s.Annotations() != nil {
		t.Error("labels or annotations of the zero value")
	}
	if names, err := serverNames(s, "example.com"); err != nil || len(names) != 0 {
		t.Errorf("serverNames = %v, %v", names, err)
	}
	x := &memoExec{set: &memoSet{types: map[reflect.Type]uint64{}}}
	if !x.keyOf(reflect.ValueOf(&s).Elem(), 0) {
		t.Error("the zero value is not keyable")
	}
}

// TestUnspecifiedLoadBalancerIP checks that a spec.loadBalancerIP of 0.0.0.0
// or :: is served on the default listener: two wildcard listeners on one
// port would overlap, and Caddy cannot tell them apart.
func TestUnspecifiedLoadBalancerIP(t *testing.T) {
	lb := func(name, ip string) *kubeapi.Service {
		s := service("ns", name, nil)
		s.Spec.Type = kubeapi.ServiceTypeLoadBalancer
		s.Spec.LoadBalancerIP = ip
		s.Spec.Ports = []kubeapi.ServicePort{{Port: 80, NodePort: 30000}}
		return s
	}
	snap := kubeapi.Snapshot{Services: []*kubeapi.Service{lb("a", ""), lb("b", "::"), lb("c", "0.0.0.0"), lb("d", "192.0.2.1"),
		lb("e", "127.0.0.1"), lb("f", "::1"), lb("g", "169.254.1.1"), lb("h", "fe80::1"), lb("i", "224.0.0.1"), lb("j", "::ffff:127.0.0.2")}}
	tmpl := mustParse(t, `{{ range .Ports }}{{ . }} {{ end }}|{{ range .Services }} {{ .Name }}={{ .LoadBalancerIP }}{{ end }}`)
	res, err := newTestRenderer(t, testOptions()).Render(tmpl, snap)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Output.String(), "00000000_80_tcp_http c0000201_80_tcp_http | a= b= c= d=192.0.2.1"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	want := []string{
		"service ns/b: spec.loadBalancerIP :: is not one address: served on the default listener",
		"service ns/c: spec.loadBalancerIP 0.0.0.0 is not one address: served on the default listener",
		"service ns/e skipped: spec.loadBalancerIP 127.0.0.1 is a loopback, link-local or multicast address",
		"service ns/f skipped: spec.loadBalancerIP ::1 is a loopback, link-local or multicast address",
		"service ns/g skipped: spec.loadBalancerIP 169.254.1.1 is a loopback, link-local or multicast address",
		"service ns/h skipped: spec.loadBalancerIP fe80::1 is a loopback, link-local or multicast address",
		"service ns/i skipped: spec.loadBalancerIP 224.0.0.1 is a loopback, link-local or multicast address",
		"service ns/j skipped: spec.loadBalancerIP 127.0.0.2 is a loopback, link-local or multicast address",
	}
	if diff := cmp.Diff(want, res.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}

	// -lb-ip-ranges: those addresses alone, loopback ones too.
	opts := testOptions()
	opts.LBIPRanges = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/31"), netip.MustParsePrefix("127.0.0.1/32")}
	snap = kubeapi.Snapshot{Services: []*kubeapi.Service{lb("a", "192.0.2.1"), lb("b", "192.0.2.2"), lb("c", "127.0.0.1"), lb("d", "")}}
	res, err = newTestRenderer(t, opts).Render(tmpl, snap)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Output.String(), "00000000_80_tcp_http 7f000001_80_tcp_http c0000201_80_tcp_http | a=192.0.2.1 c=127.0.0.1 d="; got != want {
		t.Errorf("with ranges: output %q, want %q", got, want)
	}
	if diff := cmp.Diff([]string{"service ns/b skipped: spec.loadBalancerIP 192.0.2.2 is outside -lb-ip-ranges"}, res.Warnings); diff != "" {
		t.Errorf("with ranges: warnings (-want +got):\n%s", diff)
	}
}
