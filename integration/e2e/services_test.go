package e2e

import (
	"strings"
	"testing"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
)

// TestServices follows NodePort and LoadBalancer services through their
// life: they appear, their annotations, ports and type change, and they
// disappear; ClusterIP services never appear. Each rendered change
// notifies exactly once; a change the template does not show notifies
// nothing.
func TestServices(t *testing.T) {
	c := cp.Start(t)
	a := c.Admin
	a.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	a.Create(t, cp.Services, "default", service("internal", "ClusterIP", 80))

	e := newEnv(t, c, plainTemplate)
	e.start(t, c.Minimal, "-wait", "0")
	notified := 0
	noClusterIP := func(t *testing.T, out string) {
		t.Helper()
		for _, name := range []string{"internal", "kubernetes"} {
			if has(out, svcLine("default", name)) {
				t.Fatalf("ClusterIP service %s rendered:\n%s", name, out)
			}
		}
	}
	web := svcLine("default", "web")
	lb := svcLine("default", "lb")

	out := e.wait(t, "the first render", func(out string) bool { return has(out, "nodes node-a=127.0.0.11") })
	notified++
	e.expectNotified(t, notified, "the first render")
	noClusterIP(t, out)

	out = e.step(t, &notified, "NodePort web appears", func() {
		a.Create(t, cp.Services, "default", service("web", "NodePort", 80))
	}, func(out string) bool {
		return has(out, web+"type=NodePort port=00000000_80_tcp_http nodeport=") && has(out, "listen 00000000_80_tcp_http")
	})
	if l := line(out, web); strings.Contains(l, "nodeport=0 ") {
		t.Fatalf("NodePort service without a node port: %s", l)
	}

	lbSvc := service("lb", "LoadBalancer", 443)
	lbSvc["spec"].(cp.Object)["loadBalancerIP"] = "192.0.2.10"
	e.step(t, &notified, "LoadBalancer lb appears", func() {
		a.Create(t, cp.Services, "default", lbSvc)
	}, func(out string) bool {
		return has(out, lb+"type=LoadBalancer port=c000020a_443_tcp_http ") && has(out, "listen c000020a_443_tcp_http")
	})

	annotate := func(name, key, value string) func() {
		return func() {
			a.Patch(t, cp.Services, "default", name, cp.Object{"metadata": cp.Object{"annotations": cp.Object{key: value}}})
		}
	}
	e.step(t, &notified, "backend-timeout annotation", annotate("web", "kube2lb/backend-timeout", `{"http": 20000}`),
		func(out string) bool { return strings.Contains(line(out, web), " timeout=20000 ") })
	e.step(t, &notified, "external-domains annotation", annotate("web", "kube2lb/external-domains", "www.example.com,*.example.org"),
		func(out string) bool {
			return strings.HasSuffix(line(out, web), " external=www.example.com,*.example.org,")
		})
	e.step(t, &notified, "port-mode annotation", annotate("web", "kube2lb/port-mode", `{"http": "tcp"}`),
		func(out string) bool {
			return has(out, web+"type=NodePort port=00000000_80_tcp_tcp ") && has(out, "listen 00000000_80_tcp_tcp") && !has(out, "listen 00000000_80_tcp_http")
		})

	out = e.step(t, &notified, "web gets a second port", func() {
		a.Patch(t, cp.Services, "default", "web", cp.Object{"spec": cp.Object{"ports": service("web", "NodePort", 80, 8081)["spec"].(cp.Object)["ports"]}})
	}, func(out string) bool {
		return has(out, web+"type=NodePort port=00000000_8081_tcp_http ") && has(out, web+"type=NodePort port=00000000_80_tcp_tcp ")
	})
	if n := strings.Count(out, web); n != 2 {
		t.Fatalf("web has %d lines, want 2:\n%s", n, out)
	}

	e.step(t, &notified, "web becomes a LoadBalancer", func() {
		a.Patch(t, cp.Services, "default", "web", cp.Object{"spec": cp.Object{"type": "LoadBalancer"}})
	}, func(out string) bool {
		return has(out, web+"type=LoadBalancer port=00000000_80_tcp_tcp ") && !has(out, web+"type=NodePort")
	})

	e.step(t, &notified, "lb becomes a ClusterIP service", func() {
		a.Patch(t, cp.Services, "default", "lb", cp.Object{"spec": cp.Object{"type": "ClusterIP", "loadBalancerIP": nil}})
	}, func(out string) bool { return !has(out, lb) && !has(out, "listen c000020a_443_tcp_http") })

	// Neither a change of a ClusterIP service nor a label of web changes
	// the output: no notification. The sentinel's notification shows
	// kube2lb saw them (they came first on the same watch).
	a.Patch(t, cp.Services, "default", "internal", cp.Object{"spec": cp.Object{"ports": service("internal", "ClusterIP", 81)["spec"].(cp.Object)["ports"]}})
	a.Patch(t, cp.Services, "default", "lb", cp.Object{"metadata": cp.Object{"labels": cp.Object{"e2e": "unrendered"}}})
	a.Patch(t, cp.Services, "default", "web", cp.Object{"metadata": cp.Object{"labels": cp.Object{"e2e": "unrendered"}}})
	out = e.step(t, &notified, "sentinel after unrendered changes", func() {
		a.Create(t, cp.Services, "default", service("sentinel-1", "NodePort", 9001))
	}, func(out string) bool { return has(out, svcLine("default", "sentinel-1")) })
	noClusterIP(t, out)

	e.step(t, &notified, "web disappears", func() {
		a.Delete(t, cp.Services, "default", "web")
	}, func(out string) bool { return !has(out, web) && !has(out, "listen 00000000_80_tcp_tcp") })

	// Deleting services that are not rendered changes nothing.
	a.Delete(t, cp.Services, "default", "lb")
	a.Delete(t, cp.Services, "default", "internal")
	out = e.step(t, &notified, "sentinel after unrendered deletions", func() {
		a.Create(t, cp.Services, "default", service("sentinel-2", "NodePort", 9002))
	}, func(out string) bool { return has(out, svcLine("default", "sentinel-2")) })
	if want := "svc default/sentinel-1 "; strings.Count(out, "svc ") != 2 || !has(out, want) {
		t.Fatalf("want only the sentinels left:\n%s", out)
	}
}
