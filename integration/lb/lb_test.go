package lb

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
)

// The ports the load balancers listen on (on 127.x.<subnet>.1): two HTTP
// services share httpPort, routed by Host; tcpPort is a tcp-mode port.
const (
	httpPort = 18080
	tcpPort  = 15432
)

// balancer is one load balancer under the node-port scenario.
type balancer struct {
	template string // the example template kube2lb renders
	config   string // the file name of the rendered configuration
	tcp      bool   // it proxies tcp-mode ports
	// check is the load balancer's validator for files in dir.
	check func(dir string) string
	// start runs the load balancer on config and returns it and the
	// -notify value that reloads it.
	start func(t *testing.T, config string) (*Process, string)
	// refuse, when set, makes a change that the load balancer's own
	// validator refuses, and undoes it.
	refuse func(t *testing.T, w *world) (change, undo func(), reason string)
}

// TestHAProxy runs the node-port scenario against HAProxy with the
// shipped examples/haproxy/haproxy.cfg.tmpl, reloaded with SIGUSR2.
func TestHAProxy(t *testing.T) {
	Need(t, "haproxy", "haproxy")
	nodePortScenario(t, "lb-haproxy", 1, balancer{
		template: Example("haproxy/haproxy.cfg.tmpl"),
		config:   "haproxy.cfg",
		tcp:      true,
		check:    func(string) string { return HAProxyCheck },
		start: func(t *testing.T, config string) (*Process, string) {
			h := StartHAProxy(t, config)
			return h.Process, h.Notifier()
		},
	})
}

// TestNginx runs the node-port scenario against nginx with the shipped
// examples/nginx/nginx.conf.tmpl, reloaded with SIGHUP. nginx -t also
// refuses a listener on an address the host does not have.
func TestNginx(t *testing.T) {
	Need(t, "nginx", "nginx-light libnginx-mod-stream")
	if _, err := os.Stat("/usr/lib/nginx/modules/ngx_stream_module.so"); err != nil {
		needStream(t, err)
	}
	nodePortScenario(t, "lb-nginx", 3, balancer{
		template: Example("nginx/nginx.conf.tmpl"),
		config:   "nginx.conf",
		tcp:      true,
		check:    NginxCheck,
		start: func(t *testing.T, config string) (*Process, string) {
			n := StartNginx(t, config)
			return n.Process, n.Notifier()
		},
		refuse: func(t *testing.T, w *world) (change, undo func(), reason string) {
			// TEST-NET-3: not an address of this host. kube2lb's host
			// checks are off, so only nginx -t stands in the way.
			change = func() {
				w.cp.Admin.Create(t, cp.Services, w.ns, cp.Object{
					"metadata": cp.Object{"name": "faraway"},
					"spec": cp.Object{"type": "LoadBalancer", "loadBalancerIP": "203.0.113.77",
						"ports": []cp.Object{{"name": "http", "port": 18090, "protocol": "TCP", "targetPort": 8080}}},
				})
			}
			undo = func() { w.cp.Admin.Delete(t, cp.Services, w.ns, "faraway") }
			return change, undo, "203.0.113.77:18090 failed (99: Cannot assign requested address)"
		},
	})
}

func needStream(t *testing.T, err error) {
	t.Helper()
	msg := "nginx's stream module is not installed (Debian: apt-get install libnginx-mod-stream): " + err.Error()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestCaddy runs the node-port scenario against Caddy 2 with the shipped
// examples/caddy/Caddyfile.tmpl, loaded through the admin API (the caddy:
// notifier). Caddy has no TCP proxy: tcp-mode ports are left out.
func TestCaddy(t *testing.T) {
	Need(t, "caddy", "caddy")
	admin := freeAddr(t)
	nodePortScenario(t, "lb-caddy", 4, balancer{
		template: caddyTemplate(t, admin),
		config:   "Caddyfile",
		check:    CaddyCheck,
		start: func(t *testing.T, config string) (*Process, string) {
			c := StartCaddy(t, config, admin)
			return c.Process, c.Notifier()
		},
	})
}

// caddyTemplate returns a copy of the shipped Caddyfile template whose
// global options put the admin API on admin: the template sets Caddy's
// default, localhost:2019, which another Caddy on the machine (a Debian
// caddy.service, a parallel test) may hold, and no flag, environment
// variable (Caddy 2.6 ignores CADDY_ADMIN) or annotation can change it.
func caddyTemplate(t *testing.T, admin string) string {
	t.Helper()
	b, err := os.ReadFile(Example("caddy/Caddyfile.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	const option = "\tadmin localhost:2019\n"
	if strings.Count(string(b), option) != 1 || strings.Count(string(b), "\tadmin ") != 1 {
		t.Fatalf("examples/caddy/Caddyfile.tmpl: want exactly one admin option, %q, to replace", option)
	}
	tmpl := strings.Replace(string(b), option, "\tadmin "+admin+"\n", 1)
	path := filepath.Join(t.TempDir(), "Caddyfile.tmpl")
	if err := os.WriteFile(path, []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// nodePortScenario routes requests through a real load balancer rendered
// from a node-port example while the cluster changes: services are added
// (two HTTP services on one port routed by Host: exact, wildcard and regexp
// names; a tcp-mode port), a node is added, a change the check refuses
// leaves the load balancer serving what it served, a node is removed, a
// service is deleted. After every change, requests reach exactly the
// backends they should: each backend answers with "<service>@<node>".
func nodePortScenario(t *testing.T, ns string, subnet int, b balancer) {
	w := newWorld(t, ns, subnet)
	nodeA, nodeB := w.ip(2), w.ip(3)

	// Backends for a service port on both nodes; node-b's answer before it
	// is a node only if the load balancer wrongly sends traffic there.
	serve := func(svc string, nodePort int, tcp bool) {
		for node, ip := range map[string]string{"node-a": nodeA, "node-b": nodeB} {
			addr := net.JoinHostPort(ip, strconv.Itoa(nodePort))
			if tcp {
				ServeTCP(t, svc+"@"+node, addr)
			} else {
				ServeHTTP(t, svc+"@"+node, addr)
			}
		}
	}
	web := w.lbAddr(httpPort)
	webHosts := []string{
		"web.example.test", "web.example.test:" + strconv.Itoa(httpPort), "web." + ns + ".svc.cluster.local",
		"a.wild.example.test", "re42.example.test", "re7.example.test:" + strconv.Itoa(httpPort),
	}
	expectWeb := func(t *testing.T, want ...string) {
		t.Helper()
		for _, host := range webHosts {
			expect(t, "web via Host "+host, httpProbe(web, host), want...)
		}
	}

	w.addNode(t, "node-a", nodeA)
	np := w.addService(t, "web", "NodePort", map[string]string{
		"kube2lb/external-domains": `web.example.test,*.wild.example.test,~^re[0-9]+\.example\.test(:[0-9]+)?$`,
	}, port{name: "http", port: httpPort})
	serve("web", np[0], false)

	config := filepath.Join(w.dir, b.config)
	args := w.kube2lbArgs(b.template, config, b.check(w.dir))
	w.firstConfig(t, args)
	lb, notifier := b.start(t, config)
	w.run(t, args, notifier)
	expectWeb(t, "web@node-a")

	// A second HTTP service on the same port, a LoadBalancer with a
	// backend timeout.
	np = w.addService(t, "api", "LoadBalancer", map[string]string{
		"kube2lb/external-domains": "api.example.test",
		"kube2lb/backend-timeout":  `{"http": 20000}`,
	}, port{name: "http", port: httpPort})
	serve("api", np[0], false)
	api := httpProbe(web, "api.example.test")
	expect(t, "api added", api, "api@node-a")
	expectWeb(t, "web@node-a")
	// The annotation the cloud providers read, without the test's clients
	// (127/8); then spec.loadBalancerSourceRanges, which wins over it,
	// without them, then with them.
	w.cp.Admin.Patch(t, cp.Services, ns, "api", cp.Object{"metadata": cp.Object{"annotations": cp.Object{
		"service.beta.kubernetes.io/load-balancer-source-ranges": "192.0.2.0/24"}}})
	expect(t, "api from a client outside its annotation's source ranges", api)
	expectWeb(t, "web@node-a")
	w.cp.Admin.Patch(t, cp.Services, ns, "api", cp.Object{"spec": cp.Object{"loadBalancerSourceRanges": []string{"192.0.2.0/24"}}})
	expect(t, "api from a client outside its loadBalancerSourceRanges", api)
	expectWeb(t, "web@node-a")
	// Many of them: more than the 64 words HAProxy reads on a line.
	ranges := []string{"192.0.2.0/24"}
	for i := range 98 {
		ranges = append(ranges, "10."+strconv.Itoa(i)+".0.0/16")
	}
	ranges = append(ranges, "127.0.0.0/8")
	w.cp.Admin.Patch(t, cp.Services, ns, "api", cp.Object{"spec": cp.Object{"loadBalancerSourceRanges": ranges}})
	expect(t, "api from a client inside its 100 loadBalancerSourceRanges", api, "api@node-a")
	// Every IPv6 client, which does not take in IPv4 clients (HAProxy
	// matches them against IPv6 ranges as ::ffff:a.b.c.d); then back.
	w.cp.Admin.Patch(t, cp.Services, ns, "api", cp.Object{"spec": cp.Object{"loadBalancerSourceRanges": []string{"192.0.2.0/24", "::/0"}}})
	expect(t, "api from an IPv4 client outside its loadBalancerSourceRanges, which admit every IPv6 client", api)
	w.cp.Admin.Patch(t, cp.Services, ns, "api", cp.Object{"spec": cp.Object{"loadBalancerSourceRanges": ranges}})
	expect(t, "api from a client inside its loadBalancerSourceRanges again", api, "api@node-a")
	expect(t, "an unknown host", httpProbe(web, "unknown.example.test"))
	expect(t, "the wildcard's parent domain", httpProbe(web, "wild.example.test"))
	expect(t, "a host name the regexp does not match", httpProbe(web, "re.example.test"))

	// A tcp-mode port.
	np = w.addService(t, "db", "NodePort", map[string]string{"kube2lb/port-mode": `{"db": "tcp"}`}, port{name: "db", port: tcpPort})
	serve("db", np[0], true)
	db := tcpProbe(w.lbAddr(tcpPort))
	if b.tcp {
		expect(t, "db added", db, "db@node-a")
	}

	w.addNode(t, "node-b", nodeB)
	expectWeb(t, "web@node-a", "web@node-b")
	expect(t, "api on two nodes", api, "api@node-a", "api@node-b")
	if b.tcp {
		expect(t, "db on two nodes", db, "db@node-a", "db@node-b")
	} else {
		// The render that added node-b had db: it must have left it out.
		cfg, err := os.ReadFile(config)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(cfg), strconv.Itoa(tcpPort)) {
			t.Fatalf("the tcp-mode port %d is in %s:\n%s", tcpPort, config, cfg)
		}
		expect(t, "db (tcp mode) is left out", db)
	}

	// sessionAffinity ClientIP: the test's one client (127.0.0.1) kept on
	// one node, whose kube-proxy would keep it on one pod; None again: both.
	affinity := func(svc string, on bool) {
		spec := cp.Object{"sessionAffinity": "None", "sessionAffinityConfig": nil}
		if on {
			spec = cp.Object{"sessionAffinity": "ClientIP"}
		}
		w.cp.Admin.Patch(t, cp.Services, ns, svc, cp.Object{"spec": spec})
	}
	affinity("api", true)
	expectOne(t, "api with sessionAffinity ClientIP", api, "api@node-a", "api@node-b")
	if b.tcp {
		affinity("db", true)
		expectOne(t, "db with sessionAffinity ClientIP", db, "db@node-a", "db@node-b")
		affinity("db", false)
		expect(t, "db with sessionAffinity None", db, "db@node-a", "db@node-b")
	}
	affinity("api", false)
	expect(t, "api with sessionAffinity None", api, "api@node-a", "api@node-b")

	// Refused: the load balancer keeps serving what it served.
	stillServes := func(t *testing.T) {
		t.Helper()
		expectWeb(t, "web@node-a", "web@node-b")
		expect(t, "api after a refused render", api, "api@node-a", "api@node-b")
	}
	np = nil
	w.expectRefused(t, config, lb, "", func() {
		np = w.addService(t, "refused", "NodePort", map[string]string{"kube2lb/external-domains": refusedDomain}, port{name: "http", port: httpPort})
		serve("refused", np[0], false)
	}, stillServes, func(t *testing.T) {
		expect(t, "the refused service", httpProbe(web, refusedDomain))
	})
	w.cp.Admin.Delete(t, cp.Services, ns, "refused")
	if b.refuse != nil {
		change, undo, reason := b.refuse(t, w)
		w.expectRefused(t, config, lb, reason, change, stillServes, func(*testing.T) {})
		undo()
	}

	// Node-a goes away: its backends still answer, but must not be used.
	w.cp.Admin.Delete(t, cp.Nodes, "", "node-a")
	expectWeb(t, "web@node-b")
	expect(t, "api without node-a", api, "api@node-b")
	if b.tcp {
		expect(t, "db without node-a", db, "db@node-b")
	}

	w.cp.Admin.Delete(t, cp.Services, ns, "web")
	expectWeb(t)
	expect(t, "api after web was deleted", api, "api@node-b")

	w.cp.Admin.Delete(t, cp.Services, ns, "db")
	expect(t, "db deleted", db)
	expect(t, "api after db was deleted", api, "api@node-b")
	if lb.Exited() {
		t.Fatalf("%s exited; its output:\n%s", lb.Name, lb.LogTail(40))
	}
}

// TestHAProxyEndpoints runs HAProxy with the shipped
// examples/haproxy/haproxy-endpoints.cfg.tmpl, whose servers are the pods'
// endpoints, while endpoints come, turn unready and go.
func TestHAProxyEndpoints(t *testing.T) {
	Need(t, "haproxy", "haproxy")
	const ns = "lb-haproxy-endpoints"
	w := newWorld(t, ns, 2)
	if w.cp.Provider != "local" {
		t.Skipf("EndpointSlices with loopback addresses are written to etcd: needs KUBE2LB_E2E_PROVIDER=local (this is %s)", w.cp.Provider)
	}
	podA, podB, podC := w.ip(21), w.ip(22), w.ip(23)
	webPort := port{name: "http", port: httpPort, targetPort: 8080}
	dbPort := port{name: "db", port: tcpPort, targetPort: 5432}
	ServeHTTP(t, "web@pod-a", net.JoinHostPort(podA, "8080"))
	ServeHTTP(t, "web@pod-b", net.JoinHostPort(podB, "8080"))
	ServeTCP(t, "db@pod-c", net.JoinHostPort(podC, "5432"))
	web := httpProbe(w.lbAddr(httpPort), "web.example.test")
	db := tcpProbe(w.lbAddr(tcpPort))

	w.addService(t, "web", "NodePort", map[string]string{"kube2lb/external-domains": "web.example.test"}, webPort)
	w.putEndpointSlice(t, "web-1", "web", webPort, endpoint{"pod-a", podA, true})

	config := filepath.Join(w.dir, "haproxy.cfg")
	args := w.kube2lbArgs(Example("haproxy/haproxy-endpoints.cfg.tmpl"), config, HAProxyCheck)
	w.firstConfig(t, args)
	h := StartHAProxy(t, config)
	w.run(t, args, h.Notifier())
	expect(t, "web with pod-a", web, "web@pod-a")

	w.putEndpointSlice(t, "web-1", "web", webPort, endpoint{"pod-a", podA, true}, endpoint{"pod-b", podB, true})
	expect(t, "web scaled to two pods", web, "web@pod-a", "web@pod-b")

	w.addService(t, "db", "NodePort", map[string]string{"kube2lb/port-mode": `{"db": "tcp"}`}, dbPort)
	w.putEndpointSlice(t, "db-1", "db", dbPort, endpoint{"pod-c", podC, true})
	expect(t, "db added", db, "db@pod-c")

	w.expectRefused(t, config, h.Process, "", func() {
		w.addService(t, "refused", "NodePort", map[string]string{"kube2lb/external-domains": refusedDomain}, webPort)
		w.putEndpointSlice(t, "refused-1", "refused", webPort, endpoint{"pod-a", podA, true})
	}, func(t *testing.T) {
		expect(t, "web after a refused render", web, "web@pod-a", "web@pod-b")
		expect(t, "db after a refused render", db, "db@pod-c")
	}, func(t *testing.T) {
		expect(t, "the refused service", httpProbe(w.lbAddr(httpPort), refusedDomain))
	})
	w.cp.Admin.Delete(t, cp.Services, ns, "refused")
	w.deleteEndpointSlice(t, "refused-1")

	w.putEndpointSlice(t, "web-1", "web", webPort, endpoint{"pod-a", podA, false}, endpoint{"pod-b", podB, true})
	expect(t, "pod-a unready", web, "web@pod-b")

	w.deleteEndpointSlice(t, "web-1")
	expect(t, "web without endpoints", web)
	expect(t, "db after web lost its endpoints", db, "db@pod-c")

	w.cp.Admin.Delete(t, cp.Services, ns, "db")
	expect(t, "db deleted", db)
	if h.Exited() {
		t.Fatalf("haproxy exited; its output:\n%s", h.LogTail(40))
	}
}

// freeAddr returns a 127.0.0.1 address whose port is free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestHAProxyHostnameTakeover checks, with the shipped
// examples/haproxy/haproxy.cfg.tmpl, that a newer service of another
// namespace cannot take an older service's host name over with a wildcard
// or a regexp that matches it. Ownership compares names as strings, so
// these are no conflict, and HAProxy applies the first matching
// use_backend rule: the exact name's rule must come before the wildcards
// and the regexps, although the newer services' namespaces sort first.
func TestHAProxyHostnameTakeover(t *testing.T) {
	Need(t, "haproxy", "haproxy")
	const ns = "lb-haproxy-takeover"
	w := newWorld(t, ns, 5)
	node := w.ip(2)
	serve := func(svc string, nodePort int) {
		ServeHTTP(t, svc+"@node-a", net.JoinHostPort(node, strconv.Itoa(nodePort)))
	}
	addr := w.lbAddr(httpPort)
	shopHosts := []string{"shop.example.test", "shop.example.test:" + strconv.Itoa(httpPort), "SHOP.example.test"}
	expectShop := func(t *testing.T, what string) {
		t.Helper()
		for _, host := range shopHosts {
			expect(t, what+": Host "+host, httpProbe(addr, host), "front@node-a")
		}
	}

	w.addNode(t, "node-a", node)
	np := w.addService(t, "front", "NodePort", map[string]string{"kube2lb/external-domains": "shop.example.test"}, port{name: "http", port: httpPort})
	serve("front", np[0])

	config := filepath.Join(w.dir, "haproxy.cfg")
	args := w.kube2lbArgs(Example("haproxy/haproxy.cfg.tmpl"), config, HAProxyCheck)
	w.firstConfig(t, args)
	h := StartHAProxy(t, config)
	w.run(t, args, h.Notifier())
	expectShop(t, "the owner alone")

	// A wildcard over the owner's name, from a namespace that sorts first.
	w.addNamespace(t, "aaa-wild")
	np = w.addServiceIn(t, "aaa-wild", "steal", "NodePort", map[string]string{"kube2lb/external-domains": "*.example.test"}, port{name: "http", port: httpPort})
	serve("wild", np[0])
	expect(t, "the wildcard routes other names", httpProbe(addr, "other.example.test"), "wild@node-a")
	expectShop(t, "after the wildcard")

	// A longer wildcard wins over a shorter one, whatever the namespaces.
	w.addNamespace(t, "zzz-deep")
	np = w.addServiceIn(t, "zzz-deep", "deep", "NodePort", map[string]string{"kube2lb/external-domains": "*.deep.example.test"}, port{name: "http", port: httpPort})
	serve("deep", np[0])
	expect(t, "the longer wildcard", httpProbe(addr, "a.deep.example.test"), "deep@node-a")
	expect(t, "the shorter wildcard", httpProbe(addr, "other.example.test"), "wild@node-a")

	// A regexp matching the owner's name exactly, from a namespace that
	// sorts first.
	w.addNamespace(t, "aaa-re")
	np = w.addServiceIn(t, "aaa-re", "steal", "NodePort", map[string]string{
		"kube2lb/external-domains": `~^(shop|re)\.example\.(test|net)(:[0-9]+)?$`,
	}, port{name: "http", port: httpPort})
	serve("re", np[0])
	expect(t, "the regexp routes other names", httpProbe(addr, "re.example.net"), "re@node-a")
	expectShop(t, "after the regexp")

	// Without the exact owner, the wildcard gets the name (it comes before
	// the regexp).
	w.cp.Admin.Delete(t, cp.Services, ns, "front")
	expect(t, "the owner deleted", httpProbe(addr, "shop.example.test"), "wild@node-a")
	if h.Exited() {
		t.Fatalf("haproxy exited; its output:\n%s", h.LogTail(40))
	}
}
