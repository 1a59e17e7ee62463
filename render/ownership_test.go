package render

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kube2lb/kube2lb/kubeapi"
)

// routes is a template that prints, per listener, which service each
// server name routes to, in .Services order, and each entry's .External.
const routesTemplate = `{{- range $s := .Services }}
{{ $s.Namespace }}/{{ $s.Name }} {{ $s.Port }}:{{ range ServerNames $s $.Domain }} {{ . }}{{ end }} | external:{{ range $s.External }} {{ . }}{{ end }}
{{- end }}
`

func aged(s *kubeapi.Service, age int) *kubeapi.Service {
	s.Metadata.CreationTimestamp = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(age) * time.Minute)
	return s
}

func TestHostnameOwnership(t *testing.T) {
	ext := func(v string) map[string]string { return map[string]string{AnnotationExternalDomains: v} }
	p80 := kubeapi.ServicePort{Port: 80, NodePort: 30080}
	p81 := kubeapi.ServicePort{Port: 81, NodePort: 30081}
	lbIP := func(s *kubeapi.Service, ip string) *kubeapi.Service {
		s.Spec.Type, s.Spec.LoadBalancerIP = kubeapi.ServiceTypeLoadBalancer, ip
		return s
	}
	tests := []struct {
		name        string
		templates   []string
		defaultLBIP string
		services    []*kubeapi.Service
		want        string // output of routesTemplate
		warnings    []string
		conflicts   int
	}{
		{
			name:      "the older service keeps a templated name, whatever the namespace order",
			templates: []string{"{{ .Service.Name }}.example.com"},
			services: []*kubeapi.Service{
				aged(service("team-a", "web", nil, p80), 2),
				aged(service("team-b", "web", nil, p80), 1),
			},
			want: `
team-a/web 00000000_80_tcp_http: | external:
team-b/web 00000000_80_tcp_http: web.example.com | external:
`,
			warnings:  []string{"service team-a/web: port 80/tcp on 0.0.0.0 (00000000_80_tcp_http): server name web.example.com dropped: it belongs to the older service team-b/web"},
			conflicts: 1,
		},
		{
			name: "no annotation takes a name under another namespace's svc domain, however old",
			services: []*kubeapi.Service{
				aged(service("good", "web", nil, p80), 5),
				aged(service("evil", "x", ext("web.good.svc.cluster.local,WEB.Good.Svc.Cluster.Local.,*.good.svc.cluster.local,good.svc.cluster.local,*.svc.cluster.local,x.evil.svc.cluster.local,*.evil.svc.cluster.local,mysvc.cluster.local,other.example.com"), p80), 1),
			},
			want: `
evil/x 00000000_80_tcp_http: x.evil.svc.cluster.local *.svc.cluster.local *.evil.svc.cluster.local mysvc.cluster.local other.example.com | external: *.svc.cluster.local x.evil.svc.cluster.local *.evil.svc.cluster.local mysvc.cluster.local other.example.com
good/web 00000000_80_tcp_http: web.good.svc.cluster.local | external:
`,
			warnings: []string{
				`service evil/x: annotation kube2lb/external-domains: entry "*.good.svc.cluster.local" dropped: under good.svc.cluster.local, the names of namespace good's services`,
				`service evil/x: annotation kube2lb/external-domains: entry "good.svc.cluster.local" dropped: under good.svc.cluster.local, the names of namespace good's services`,
				`service evil/x: annotation kube2lb/external-domains: entry "web.good.svc.cluster.local" dropped: under good.svc.cluster.local, the names of namespace good's services`,
			},
		},
		{
			name: "a newer service cannot take over a name by annotation",
			services: []*kubeapi.Service{
				aged(service("attacker", "steal", ext("shop.example.com,mine.example.com"), p80), 5),
				aged(service("shop", "front", ext("shop.example.com"), p80), 1),
			},
			want: `
attacker/steal 00000000_80_tcp_http: steal.attacker.svc.cluster.local mine.example.com | external: mine.example.com
shop/front 00000000_80_tcp_http: front.shop.svc.cluster.local shop.example.com | external: shop.example.com
`,
			warnings:  []string{"service attacker/steal: port 80/tcp on 0.0.0.0 (00000000_80_tcp_http): server name shop.example.com dropped: it belongs to the older service shop/front"},
			conflicts: 1,
		},
		{
			name: "same creationTimestamp: namespace, then name, decides",
			services: []*kubeapi.Service{
				aged(service("b", "x", ext("h.example.com"), p80), 1),
				aged(service("a", "y", ext("h.example.com"), p80), 1),
				aged(service("a", "x", ext("h.example.com"), p80), 1),
			},
			want: `
a/x 00000000_80_tcp_http: x.a.svc.cluster.local h.example.com | external: h.example.com
a/y 00000000_80_tcp_http: y.a.svc.cluster.local | external:
b/x 00000000_80_tcp_http: x.b.svc.cluster.local | external:
`,
			warnings: []string{
				"service a/y: port 80/tcp on 0.0.0.0 (00000000_80_tcp_http): server name h.example.com dropped: it belongs to the older service a/x",
				"service b/x: port 80/tcp on 0.0.0.0 (00000000_80_tcp_http): server name h.example.com dropped: it belongs to the older service a/x",
			},
			conflicts: 2,
		},
		{
			name: "other ports and other specific IPs are other listeners",
			services: []*kubeapi.Service{
				aged(service("a", "old", ext("h.example.com"), p80), 1),
				aged(service("b", "port", ext("h.example.com"), kubeapi.ServicePort{Port: 8080, NodePort: 30081}), 2),
				aged(lbIP(service("c", "ip", ext("h.example.com"), p81), "192.0.2.10"), 3),
				aged(lbIP(service("d", "ip", ext("h.example.com"), p81), "192.0.2.11"), 4),
				aged(lbIP(service("e", "ip", ext("h.example.com"), p81), "192.0.2.10"), 5),
				aged(service("f", "udp", ext("h.example.com"), kubeapi.ServicePort{Port: 80, NodePort: 30082, Protocol: "UDP"}), 6),
			},
			want: `
a/old 00000000_80_tcp_http: old.a.svc.cluster.local h.example.com | external: h.example.com
b/port 00000000_8080_tcp_http: port.b.svc.cluster.local h.example.com | external: h.example.com
c/ip c000020a_81_tcp_http: ip.c.svc.cluster.local h.example.com | external: h.example.com
d/ip c000020b_81_tcp_http: ip.d.svc.cluster.local h.example.com | external: h.example.com
e/ip c000020a_81_tcp_http: ip.e.svc.cluster.local | external:
f/udp 00000000_80_udp_http: udp.f.svc.cluster.local h.example.com | external: h.example.com
`,
			warnings:  []string{"service e/ip: port 81/tcp on 192.0.2.10 (c000020a_81_tcp_http): server name h.example.com dropped: it belongs to the older service c/ip"},
			conflicts: 1,
		},
		{
			name: "a claim on the wildcard IP covers every specific IP of the port",
			services: []*kubeapi.Service{
				aged(service("shop", "front", ext("shop.example.com"), p80), 1),
				aged(lbIP(service("aaa", "steal", ext("shop.example.com,Mine.example.com"), p80), "192.0.2.10"), 2),
				aged(lbIP(service("bbb", "steal6", ext("SHOP.example.com"), p80), "2001:db8::1"), 3),
			},
			want: `
aaa/steal c000020a_80_tcp_http: steal.aaa.svc.cluster.local mine.example.com | external: mine.example.com
bbb/steal6 20010db8000000000000000000000001_80_tcp_http: steal6.bbb.svc.cluster.local | external:
shop/front 00000000_80_tcp_http: front.shop.svc.cluster.local shop.example.com | external: shop.example.com
`,
			warnings: []string{
				"service aaa/steal: port 80/tcp on 192.0.2.10 (c000020a_80_tcp_http): server name shop.example.com dropped: it belongs to the older service shop/front, at 80/tcp on 0.0.0.0 (00000000_80_tcp_http)",
				"service bbb/steal6: port 80/tcp on 2001:db8::1 (20010db8000000000000000000000001_80_tcp_http): server name shop.example.com dropped: it belongs to the older service shop/front, at 80/tcp on 0.0.0.0 (00000000_80_tcp_http)",
			},
			conflicts: 2,
		},
		{
			name:        "a claim on a specific IP keeps the name from a newer claim on the wildcard IP",
			defaultLBIP: "::",
			services: []*kubeapi.Service{
				aged(lbIP(service("shop", "front", ext("shop.example.com"), p80), "192.0.2.10"), 1),
				aged(service("aaa", "wide", ext("shop.example.com,other.example.com"), p80), 2),
				aged(lbIP(service("ccc", "v4", ext("shop.example.com"), p80), "0.0.0.0"), 3),
			},
			want: `
aaa/wide 00000000000000000000000000000000_80_tcp_http: wide.aaa.svc.cluster.local other.example.com | external: other.example.com
ccc/v4 00000000000000000000000000000000_80_tcp_http: v4.ccc.svc.cluster.local | external:
shop/front c000020a_80_tcp_http: front.shop.svc.cluster.local shop.example.com | external: shop.example.com
`,
			warnings: []string{
				"service aaa/wide: port 80/tcp on :: (00000000000000000000000000000000_80_tcp_http): server name shop.example.com dropped: it belongs to the older service shop/front, at 80/tcp on 192.0.2.10 (c000020a_80_tcp_http)",
				"service ccc/v4: port 80/tcp on :: (00000000000000000000000000000000_80_tcp_http): server name shop.example.com dropped: it belongs to the older service shop/front, at 80/tcp on 192.0.2.10 (c000020a_80_tcp_http)",
				"service ccc/v4: spec.loadBalancerIP 0.0.0.0 is not one address: served on the default listener",
			},
			conflicts: 2,
		},
		{
			name: "a loser keeps the name on a port it holds alone",
			services: []*kubeapi.Service{
				aged(service("a", "old", ext("h.example.com"), p80), 1),
				aged(service("b", "new", ext("h.example.com"), p80, kubeapi.ServicePort{Name: "alt", Port: 81, NodePort: 30081}), 2),
			},
			want: `
a/old 00000000_80_tcp_http: old.a.svc.cluster.local h.example.com | external: h.example.com
b/new 00000000_80_tcp_http: new.b.svc.cluster.local | external:
b/new 00000000_81_tcp_http: new.b.svc.cluster.local h.example.com | external: h.example.com
`,
			warnings:  []string{"service b/new: port 80/tcp on 0.0.0.0 (00000000_80_tcp_http): server name h.example.com dropped: it belongs to the older service a/old"},
			conflicts: 1,
		},
		{
			name: "regexps compare as literal strings; wildcards too",
			services: []*kubeapi.Service{
				aged(service("a", "old", ext(`~^h\.example\.com$,*.example.com`), p80), 1),
				aged(service("b", "same", ext(`~^h\.example\.com$`), p80), 2),
				aged(service("c", "other", ext(`~^h\.example\.com(:80)?$,*.example.net,x.example.com`), p80), 3),
			},
			want: `
a/old 00000000_80_tcp_http: old.a.svc.cluster.local ~^h\.example\.com$ *.example.com | external: ~^h\.example\.com$ *.example.com
b/same 00000000_80_tcp_http: same.b.svc.cluster.local | external:
c/other 00000000_80_tcp_http: other.c.svc.cluster.local ~^h\.example\.com(:80)?$ *.example.net x.example.com | external: ~^h\.example\.com(:80)?$ *.example.net x.example.com
`,
			warnings:  []string{`service b/same: port 80/tcp on 0.0.0.0 (00000000_80_tcp_http): server name ~^h\.example\.com$ dropped: it belongs to the older service a/old`},
			conflicts: 1,
		},
		{
			name:      "host names compare case-insensitively; a service does not conflict with itself",
			templates: []string{"{{ .Service.Name }}.Example.COM", "{{ .Service.Name }}.example.com"},
			services: []*kubeapi.Service{
				aged(service("a", "web", ext("web.example.com"), p80), 1),
				aged(service("b", "x", ext("web.example.com"), p80), 2),
			},
			want: `
a/web 00000000_80_tcp_http: web.Example.COM web.example.com | external: web.example.com
b/x 00000000_80_tcp_http: x.Example.COM x.example.com | external:
`,
			warnings:  []string{"service b/x: port 80/tcp on 0.0.0.0 (00000000_80_tcp_http): server name web.example.com dropped: it belongs to the older service a/web"},
			conflicts: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.ServerNameTemplates = tt.templates
			if tt.defaultLBIP != "" {
				opts.DefaultLBIP = net.ParseIP(tt.defaultLBIP)
			}
			res, err := newTestRenderer(t, opts).Render(mustParse(t, routesTemplate), kubeapi.Snapshot{Services: tt.services})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, res.Output.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warnings, res.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if res.HostnameConflicts != tt.conflicts {
				t.Errorf("HostnameConflicts = %d, want %d", res.HostnameConflicts, tt.conflicts)
			}
		})
	}
}

// TestHostnameOwnershipOtherDomain checks that a template calling
// ServerNames with another domain than .Domain still loses the names.
func TestHostnameOwnershipOtherDomain(t *testing.T) {
	snap := kubeapi.Snapshot{Services: []*kubeapi.Service{
		aged(service("a", "old", map[string]string{AnnotationExternalDomains: "h.example.com"}, kubeapi.ServicePort{Port: 80}), 1),
		aged(service("b", "new", map[string]string{AnnotationExternalDomains: "h.example.com"}, kubeapi.ServicePort{Port: 80}), 2),
	}}
	res, err := newTestRenderer(t, testOptions()).Render(mustParse(t, `{{ range .Services }}{{ .Name }}:{{ range ServerNames . "other" }} {{ . }}{{ end }};{{ end }}`), snap)
	if err != nil {
		t.Fatal(err)
	}
	if want := "old: old.a.svc.other h.example.com;new: new.b.svc.other;"; res.Output.String() != want {
		t.Errorf("output %q, want %q", res.Output.Bytes(), want)
	}
}

// debugRecorder records the "note" attributes of debug records.
type debugRecorder struct {
	mu    sync.Mutex
	notes []string
	warns int
}

func (r *debugRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *debugRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec.Level >= slog.LevelWarn {
		r.warns++
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "note" && rec.Level == slog.LevelDebug {
			r.notes = append(r.notes, a.Value.String())
		}
		return true
	})
	return nil
}
func (r *debugRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *debugRecorder) WithGroup(string) slog.Handler      { return r }

func TestLoadBalancerClass(t *testing.T) {
	lb := func(name string, class *string) *kubeapi.Service {
		s := service("ns", name, nil, kubeapi.ServicePort{Port: 80, NodePort: 30080})
		s.Spec.Type = kubeapi.ServiceTypeLoadBalancer
		s.Spec.LoadBalancerClass = class
		return s
	}
	str := func(s string) *string { return &s }
	snap := kubeapi.Snapshot{Services: []*kubeapi.Service{
		lb("none", nil),
		lb("mine", str("example.com/kube2lb")),
		lb("metallb", str("metallb.io/metallb")),
		service("ns", "nodeport", nil, kubeapi.ServicePort{Port: 81, NodePort: 30081}),
	}}
	tests := []struct {
		class         string
		services      []string
		loadBalancers []string
		notes         []string
	}{
		{
			class:         "",
			services:      []string{"ns/nodeport:81/tcp", "ns/none:80/tcp"},
			loadBalancers: []string{"ns/none"},
			notes: []string{
				`service ns/metallb skipped: load balancer class "metallb.io/metallb", kube2lb serves none`,
				`service ns/mine skipped: load balancer class "example.com/kube2lb", kube2lb serves none`,
			},
		},
		{
			class:         "example.com/kube2lb",
			services:      []string{"ns/mine:80/tcp", "ns/nodeport:81/tcp"},
			loadBalancers: []string{"ns/mine"},
			notes: []string{
				`service ns/metallb skipped: load balancer class "metallb.io/metallb", kube2lb serves "example.com/kube2lb"`,
				`service ns/none skipped: load balancer class none, kube2lb serves "example.com/kube2lb"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run("class="+tt.class, func(t *testing.T) {
			rec := &debugRecorder{}
			opts := testOptions()
			opts.LoadBalancerClass = tt.class
			opts.Logger = slog.New(rec)
			r := newTestRenderer(t, opts)
			tmpl := mustParse(t, "")
			for i := range 3 {
				res, err := r.Render(tmpl, snap)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.services, servicePortNames(res)); diff != "" {
					t.Errorf("render %d: Services (-want +got):\n%s", i, diff)
				}
				if diff := cmp.Diff(tt.loadBalancers, res.LoadBalancers()); diff != "" {
					t.Errorf("render %d: LoadBalancers (-want +got):\n%s", i, diff)
				}
				if len(res.Warnings) != 0 {
					t.Errorf("render %d: warnings %q", i, res.Warnings)
				}
			}
			// Logged once, at debug level, not at every render.
			if diff := cmp.Diff(tt.notes, rec.notes); diff != "" {
				t.Errorf("debug notes (-want +got):\n%s", diff)
			}
			if rec.warns != 0 {
				t.Errorf("%d warnings logged", rec.warns)
			}
		})
	}
}

func TestLoadBalancersResult(t *testing.T) {
	lb := service("ns", "lb", nil, kubeapi.ServicePort{Port: 80}, kubeapi.ServicePort{Name: "b", Port: 81})
	lb.Spec.Type = kubeapi.ServiceTypeLoadBalancer
	res, err := newTestRenderer(t, testOptions()).Render(mustParse(t, ""), kubeapi.Snapshot{Services: []*kubeapi.Service{lb}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ns/lb"}, res.LoadBalancers()); diff != "" || !strings.HasPrefix(ServicePortName(res.Services[0]), "ns/lb:") {
		t.Errorf("LoadBalancers (-want +got):\n%s", diff)
	}
}

func TestOneModePerListener(t *testing.T) {
	mode := func(m string) map[string]string { return map[string]string{AnnotationPortMode: `{"": "` + m + `"}`} }
	p80 := kubeapi.ServicePort{Port: 80, NodePort: 30080}
	lbIP := func(s *kubeapi.Service, ip string) *kubeapi.Service {
		s.Spec.Type, s.Spec.LoadBalancerIP = kubeapi.ServiceTypeLoadBalancer, ip
		return s
	}
	tests := []struct {
		name          string
		services      []*kubeapi.Service
		want          string // output of routesTemplate
		warnings      []string
		loadBalancers []string
	}{
		{
			name: "the older service sets the mode; a newer one in another mode is dropped",
			services: []*kubeapi.Service{
				aged(service("a", "db", mode("tcp"), p80), 2),
				aged(service("z", "web", nil, p80), 1),
			},
			want: `
z/web 00000000_80_tcp_http: web.z.svc.cluster.local | external:
`,
			warnings: []string{"service a/db: port 80/tcp on 0.0.0.0 dropped: mode tcp, but the listener is in mode http, set by the older service z/web"},
		},
		{
			name: "an older tcp-mode service keeps the port from every http one",
			services: []*kubeapi.Service{
				aged(service("b", "web", nil, p80), 2),
				aged(service("c", "api", nil, p80), 3),
				aged(service("z", "db", mode("tcp"), p80), 1),
			},
			want: `
z/db 00000000_80_tcp_tcp: db.z.svc.cluster.local | external:
`,
			warnings: []string{
				"service b/web: port 80/tcp on 0.0.0.0 dropped: mode http, but the listener is in mode tcp, set by the older service z/db",
				"service c/api: port 80/tcp on 0.0.0.0 dropped: mode http, but the listener is in mode tcp, set by the older service z/db",
			},
		},
		{
			name: "same creationTimestamp: namespace, then name, decides",
			services: []*kubeapi.Service{
				aged(service("a", "y", mode("tcp"), p80), 1),
				aged(service("a", "x", nil, p80), 1),
				aged(service("b", "a", mode("tcp"), p80), 1),
			},
			want: `
a/x 00000000_80_tcp_http: x.a.svc.cluster.local | external:
`,
			warnings: []string{
				"service a/y: port 80/tcp on 0.0.0.0 dropped: mode tcp, but the listener is in mode http, set by the older service a/x",
				"service b/a: port 80/tcp on 0.0.0.0 dropped: mode tcp, but the listener is in mode http, set by the older service a/x",
			},
		},
		{
			name: "only the conflicting port goes; a LoadBalancer without ports left is not served",
			services: []*kubeapi.Service{
				aged(service("a", "web", nil, p80), 1),
				aged(service("b", "two", map[string]string{AnnotationPortMode: `{"db": "tcp"}`},
					kubeapi.ServicePort{Name: "db", Port: 80, NodePort: 30081},
					kubeapi.ServicePort{Name: "alt", Port: 81, NodePort: 30082}), 2),
				aged(lbIP(service("c", "lb", mode("tcp"), p80), ""), 3),
			},
			want: `
a/web 00000000_80_tcp_http: web.a.svc.cluster.local | external:
b/two 00000000_81_tcp_http: two.b.svc.cluster.local | external:
`,
			warnings: []string{
				"service b/two: port 80/tcp on 0.0.0.0 dropped: mode tcp, but the listener is in mode http, set by the older service a/web",
				"service c/lb: port 80/tcp on 0.0.0.0 dropped: mode tcp, but the listener is in mode http, set by the older service a/web",
			},
		},
		{
			name: "another IP, another protocol or the same mode: no conflict",
			services: []*kubeapi.Service{
				aged(service("a", "web", nil, p80), 1),
				aged(service("b", "web", nil, p80), 2),
				aged(lbIP(service("c", "db", mode("tcp"), p80), "192.0.2.10"), 3),
				aged(service("d", "dns", mode("udp"), kubeapi.ServicePort{Port: 80, NodePort: 30083, Protocol: "UDP"}), 4),
			},
			want: `
a/web 00000000_80_tcp_http: web.a.svc.cluster.local | external:
b/web 00000000_80_tcp_http: web.b.svc.cluster.local | external:
c/db c000020a_80_tcp_tcp: db.c.svc.cluster.local | external:
d/dns 00000000_80_udp_udp: dns.d.svc.cluster.local | external:
`,
			loadBalancers: []string{"c/db"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &debugRecorder{}
			opts := testOptions()
			opts.Logger = slog.New(rec)
			r := newTestRenderer(t, opts)
			for i := range 2 {
				res, err := r.Render(mustParse(t, routesTemplate), kubeapi.Snapshot{Services: tt.services})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, res.Output.String()); diff != "" {
					t.Errorf("render %d: output (-want +got):\n%s", i, diff)
				}
				if diff := cmp.Diff(tt.warnings, res.Warnings); diff != "" {
					t.Errorf("render %d: warnings (-want +got):\n%s", i, diff)
				}
				if diff := cmp.Diff(tt.loadBalancers, res.LoadBalancers()); diff != "" {
					t.Errorf("render %d: LoadBalancers (-want +got):\n%s", i, diff)
				}
			}
			// Logged once, not at every render.
			if rec.warns != len(tt.warnings) {
				t.Errorf("%d warnings logged, want %d", rec.warns, len(tt.warnings))
			}
		})
	}
}

// TestHostRules checks the order of $.HostRules, which first-match load
// balancers (HAProxy) follow: exact names before wildcards, the longest
// suffix first, before regexps, the oldest service's first, so that a
// newer service cannot catch an older one's exact name with a wildcard or
// a regexp that ownership, comparing literal strings, lets through.
func TestHostRules(t *testing.T) {
	ext := func(v string) map[string]string { return map[string]string{AnnotationExternalDomains: v} }
	p80 := kubeapi.ServicePort{Port: 80, NodePort: 30080}
	const tmpl = `{{- range $p := .Ports }}{{ range $.HostRules $p }}
{{ .Service.Namespace }}/{{ .Service.Name }} {{ .Name }}
{{- end }}{{ end }}
`
	services := []*kubeapi.Service{
		aged(service("shop", "front", ext(`shop.example.com,~^front\.example\.com$`), p80), 1),
		aged(service("aaa", "steal", ext(`*.example.com,~^shop\.example\.com$`), p80), 5),
		aged(service("bbb", "deep", ext(`*.deep.example.com,*.Example.NET`), p80), 3),
		aged(service("ccc", "re", ext(`~^.*\.example\.com$,x.example.org`), p80), 2),
	}
	opts := testOptions()
	opts.ServerNameTemplates = []string{"{{ .Service.Name }}.{{ .Service.Namespace }}.test"}
	res, err := newTestRenderer(t, opts).Render(mustParse(t, tmpl), kubeapi.Snapshot{Services: services})
	if err != nil {
		t.Fatal(err)
	}
	want := `
aaa/steal steal.aaa.test
bbb/deep deep.bbb.test
ccc/re re.ccc.test
ccc/re x.example.org
shop/front front.shop.test
shop/front shop.example.com
bbb/deep *.deep.example.com
aaa/steal *.example.com
bbb/deep *.example.net
shop/front ~^front\.example\.com$
ccc/re ~^.*\.example\.com$
aaa/steal ~^shop\.example\.com$
`
	if diff := cmp.Diff(want, res.Output.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if res.HostnameConflicts != 0 {
		t.Errorf("HostnameConflicts = %d, want 0", res.HostnameConflicts)
	}
}

// servicePortNames returns ServicePortName of each of res.Services.
func servicePortNames(res *Result) []string {
	var names []string
	for _, s := range res.Services {
		names = append(names, ServicePortName(s))
	}
	return names
}
