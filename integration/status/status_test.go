package status

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/kube2lb"
)

// TestPublishStatus runs kube2lb with -publish-status as the shipped RBAC
// plus its kube2lb-publish-status role allows: the EXTERNAL-IP appears as
// kubectl shows it, follows -publish-ip, stays when kube2lb stops, and is
// cleared when the service stops being kube2lb's (type changed, filtered
// out by -selector: the API server does not clear that one, kube2lb does).
func TestPublishStatus(t *testing.T) {
	cp := start(t)
	cp.Admin.Create(t, controlplane.Services, "default", service("web", "LoadBalancer", 80))
	cp.Admin.Create(t, controlplane.Services, "default", with(service("own", "LoadBalancer", 81), "spec", "loadBalancerIP", "192.0.2.99"))
	cp.Admin.Create(t, controlplane.Services, "default", service("np", "NodePort", 82))

	in := newInstance(t, routesTemplate)
	in.start(t, cp.Minimal, "-publish-status", "-publish-ip", "192.0.2.11,192.0.2.10")
	waitIngress(t, cp, "default", "web", []string{"192.0.2.10", "192.0.2.11"}, in)
	waitIngress(t, cp, "default", "own", []string{"192.0.2.99"}, in)
	if got := getIngress(t, cp, "default", "np"); len(got) != 0 {
		t.Errorf("NodePort service got an ingress: %+v", got)
	}
	t.Run("kubectl", func(t *testing.T) {
		if ip := kubectl(t, cp, "-n", "default", "get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"); ip != "192.0.2.10" {
			t.Errorf("kubectl: status.loadBalancer.ingress[0].ip = %q", ip)
		}
		out := kubectl(t, cp, "-n", "default", "get", "svc", "web", "own")
		for _, want := range []string{"192.0.2.10,192.0.2.11", "192.0.2.99"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl get svc does not show EXTERNAL-IP %s:\n%s", want, out)
			}
		}
		if strings.Contains(out, "<pending>") {
			t.Errorf("kubectl get svc still shows <pending>:\n%s", out)
		}
	})

	// A new -publish-ip: restarted, kube2lb writes the new address.
	in.stop(t)
	in.start(t, cp.Minimal, "-publish-status", "-publish-ip", "192.0.2.20")
	waitIngress(t, cp, "default", "web", []string{"192.0.2.20"}, in)
	waitIngress(t, cp, "default", "own", []string{"192.0.2.99"}, in)

	// Stopping kube2lb clears nothing: the load balancer keeps serving.
	in.stop(t)
	if got := ips(getIngress(t, cp, "default", "web")); len(got) != 1 || got[0] != "192.0.2.20" {
		t.Fatalf("after kube2lb stopped, the ingress of web is %q", got)
	}

	// The type changes: no longer a load balancer. The API server (1.34)
	// clears status.loadBalancer itself, older ones leave it to the
	// controller: kube2lb clears it, and never writes it back.
	in.start(t, cp.Minimal, "-publish-status", "-publish-ip", "192.0.2.20")
	in.wait(t, "web rendered", func(out string) bool { return has(out, svcLine("default", "web")+"type=LoadBalancer") })
	cp.Admin.Patch(t, controlplane.Services, "default", "web", controlplane.Object{"spec": controlplane.Object{"type": "ClusterIP"}})
	waitIngress(t, cp, "default", "web", nil, in)
	in.wait(t, "web gone", func(out string) bool { return !has(out, svcLine("default", "web")) })
	waitIngress(t, cp, "default", "own", []string{"192.0.2.99"}, in)

	// Filtered out by -selector: the caches lose the service, kube2lb
	// reads it and clears what it published.
	in.stop(t)
	cp.Admin.Create(t, controlplane.Services, "default", with(service("labelled", "LoadBalancer", 83), "metadata", "labels", controlplane.Object{"expose": "yes"}))
	in.start(t, cp.Minimal, "-publish-status", "-publish-ip", "192.0.2.30", "-selector", "expose=yes")
	waitIngress(t, cp, "default", "labelled", []string{"192.0.2.30"}, in)
	cp.Admin.Patch(t, controlplane.Services, "default", "labelled", controlplane.Object{"metadata": controlplane.Object{"labels": controlplane.Object{"expose": nil}}})
	waitIngress(t, cp, "default", "labelled", nil, in)
	// Not served with this selector, and not published by this process:
	// own keeps the status written before.
	waitIngress(t, cp, "default", "own", []string{"192.0.2.99"}, in)
	if n := in.metric(t, `kube2lb_status_updates_total{result="error"}`); n != 0 {
		t.Errorf("%d failed status writes:\n%s", n, in.p.Logs())
	}
}

// TestTwoInstancesDoNotFight runs an HA pair (same flags, -publish-ip in
// another order) and counts the status writes: one per service, and none
// when both render an unrelated change.
func TestTwoInstancesDoNotFight(t *testing.T) {
	cp := start(t)
	cp.Admin.Create(t, controlplane.Services, "default", service("web", "LoadBalancer", 80))
	cp.Admin.Create(t, controlplane.Services, "default", service("api", "LoadBalancer", 81))
	want := []string{"192.0.2.10", "192.0.2.11"}

	a, b := newInstance(t, routesTemplate), newInstance(t, routesTemplate)
	a.start(t, cp.Minimal, "-publish-status", "-publish-ip", "192.0.2.10,192.0.2.11")
	b.start(t, cp.Minimal, "-publish-status", "-publish-ip", "192.0.2.11, 192.0.2.10")
	for _, name := range []string{"web", "api"} {
		waitIngress(t, cp, "default", name, want, a, b)
	}

	// From here on, watch every change of the services.
	list := cp.Admin.List(t, controlplane.Services, "default")
	status := map[string]string{} // name → status.loadBalancer as JSON
	for _, item := range list["items"].([]any) {
		obj := item.(map[string]any)
		status[name(obj)] = lbStatus(t, obj)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*kube2lb.Deadline)
	defer cancel()
	w, err := cp.Admin.Watch(ctx, controlplane.Services, "default", controlplane.ResourceVersion(list))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// An unrelated change both render.
	cp.Admin.Patch(t, controlplane.Services, "default", "web", controlplane.Object{"metadata": controlplane.Object{"labels": controlplane.Object{"touched": "yes"}}})
	for _, in := range []*instance{a, b} {
		in.wait(t, "the label", func(out string) bool {
			return has(out, svcLine("default", "web")+"type=LoadBalancer port=00000000_80_tcp_http labels=touched=yes,")
		})
	}
	// A new service, which needs one write.
	cp.Admin.Create(t, controlplane.Services, "default", service("new", "LoadBalancer", 82))
	waitIngress(t, cp, "default", "new", want, a, b)
	for _, in := range []*instance{a, b} {
		in.wait(t, "the new service", func(out string) bool { return has(out, svcLine("default", "new")) })
	}
	// A last change: every event before its own in the stream happened
	// before it.
	cp.Admin.Create(t, controlplane.Services, "default", service("sentinel", "ClusterIP", 84))

	changes := map[string]int{} // name → status changes
	for {
		ev, err := w.Next()
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		if ev.Type != "ADDED" && ev.Type != "MODIFIED" {
			continue
		}
		n := name(ev.Object)
		if n == "sentinel" {
			break
		}
		if s := lbStatus(t, ev.Object); s != status[n] {
			if _, seen := status[n]; seen || s != "{}" {
				changes[n]++
			}
			status[n] = s
		}
	}
	if fmt.Sprint(changes) != "map[new:1]" {
		t.Errorf("status changes after convergence: %v, want one (the new service's)", changes)
	}
	// Exactly one successful write per service across the pair; the
	// other instance's concurrent write, if any, was refused as stale.
	published := a.metric(t, `kube2lb_status_updates_total{result="published"}`) + b.metric(t, `kube2lb_status_updates_total{result="published"}`)
	if published != 3 {
		t.Errorf("%d successful status writes by the pair, want 3 (web, api, new)", published)
	}
	for _, in := range []*instance{a, b} {
		if n := in.metric(t, `kube2lb_status_updates_total{result="error"}`); n != 0 {
			t.Errorf("%d failed status writes:\n%s", n, in.p.Logs())
		}
	}
}

func name(obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	n, _ := md["name"].(string)
	return n
}

// lbStatus returns status.loadBalancer of obj as JSON.
func lbStatus(t *testing.T, obj map[string]any) string {
	t.Helper()
	st, _ := obj["status"].(map[string]any)
	b, err := json.Marshal(st["loadBalancer"])
	if err != nil {
		t.Fatal(err)
	}
	if string(b) == "null" {
		return "{}"
	}
	return string(b)
}

// TestLoadBalancerClass renders with and without -load-balancer-class:
// each serves (and publishes the status of) only its own LoadBalancer
// services, NodePort services are served by both, and neither touches the
// status of the other's services.
func TestLoadBalancerClass(t *testing.T) {
	cp := start(t)
	cp.Admin.Create(t, controlplane.Services, "default", service("none", "LoadBalancer", 80))
	cp.Admin.Create(t, controlplane.Services, "default", with(service("mine", "LoadBalancer", 81), "spec", "loadBalancerClass", "example.com/kube2lb"))
	cp.Admin.Create(t, controlplane.Services, "default", with(service("other", "LoadBalancer", 82), "spec", "loadBalancerClass", "example.com/other"))
	cp.Admin.Create(t, controlplane.Services, "default", service("np", "NodePort", 83))
	in := newInstance(t, routesTemplate)

	run := func(extra ...string) string {
		t.Helper()
		res := kube2lb.Run(t, in.args(cp.Minimal, append([]string{"-once", "-publish-status", "-publish-ip", "192.0.2.10"}, extra...)...)...)
		if res.Code != 0 {
			t.Fatalf("kube2lb -once %q exited with %d:\n%s", extra, res.Code, res.Logs)
		}
		return kube2lb.WaitFile(t, in.out, func(string) bool { return true })
	}
	served := func(out string) []string {
		var s []string
		for _, n := range []string{"none", "mine", "other", "np"} {
			if has(out, svcLine("default", n)) {
				s = append(s, n)
			}
		}
		return s
	}

	out := run()
	if got := fmt.Sprint(served(out)); got != "[none np]" {
		t.Errorf("without -load-balancer-class: served %s, want [none np]:\n%s", got, out)
	}
	waitIngress(t, cp, "default", "none", []string{"192.0.2.10"})
	for _, n := range []string{"mine", "other"} {
		if got := getIngress(t, cp, "default", n); len(got) != 0 {
			t.Errorf("without -load-balancer-class: %s got an ingress %+v", n, got)
		}
	}

	out = run("-load-balancer-class", "example.com/kube2lb")
	if got := fmt.Sprint(served(out)); got != "[mine np]" {
		t.Errorf("with -load-balancer-class: served %s, want [mine np]:\n%s", got, out)
	}
	waitIngress(t, cp, "default", "mine", []string{"192.0.2.10"})
	// The class-less instance's status stays: kube2lb never clears the
	// status of a LoadBalancer service it did not publish.
	waitIngress(t, cp, "default", "none", []string{"192.0.2.10"})
	if got := getIngress(t, cp, "default", "other"); len(got) != 0 {
		t.Errorf("with -load-balancer-class: other got an ingress %+v", got)
	}
}

// TestHostnameTakeover: a newer service in another namespace names an
// older service's host in kube2lb/external-domains; the older one keeps
// it, whatever the order of namespaces, until it is gone.
func TestHostnameTakeover(t *testing.T) {
	cp := start(t)
	createNamespace(t, cp, "shop")
	createNamespace(t, cp, "attacker") // sorts before "shop": .Services order would favour it
	ext := func(obj controlplane.Object, domains string) controlplane.Object {
		return with(obj, "metadata", "annotations", controlplane.Object{"kube2lb/external-domains": domains})
	}
	front := cp.Admin.Create(t, controlplane.Services, "shop", ext(service("front", "NodePort", 80), "shop.example.com"))
	// creationTimestamp has a resolution of one second: make the
	// attacker's strictly newer.
	created := creationTimestamp(t, front)
	for !time.Now().Truncate(time.Second).After(created) {
		time.Sleep(50 * time.Millisecond)
	}
	steal := cp.Admin.Create(t, controlplane.Services, "attacker", ext(service("steal", "NodePort", 80), "shop.example.com,steal.example.com"))
	if !creationTimestamp(t, steal).After(created) {
		t.Fatalf("the attacker's service is not newer: %v, %v", creationTimestamp(t, steal), created)
	}

	in := newInstance(t, routesTemplate)
	in.start(t, cp.Minimal)
	const port = "00000000_80_tcp_http"
	out := in.wait(t, "both services", func(out string) bool {
		return has(out, svcLine("shop", "front")) && has(out, svcLine("attacker", "steal"))
	})
	if !has(out, "route shop.example.com "+port+" shop/front") || has(out, "route shop.example.com "+port+" attacker/steal") {
		t.Errorf("shop.example.com is not routed to shop/front alone:\n%s", out)
	}
	if !has(out, "route steal.example.com "+port+" attacker/steal") {
		t.Errorf("the attacker's own name is missing:\n%s", out)
	}
	in.p.WaitLog(t, "server name shop.example.com dropped: it belongs to the older service shop/front")
	if n := in.metric(t, "kube2lb_hostname_conflicts"); n != 1 {
		t.Errorf("kube2lb_hostname_conflicts = %d, want 1", n)
	}

	// The owner is deleted: the name is free for the next claimant.
	cp.Admin.Delete(t, controlplane.Services, "shop", "front")
	in.wait(t, "the name handed over", func(out string) bool {
		return has(out, "route shop.example.com "+port+" attacker/steal") && !has(out, svcLine("shop", "front"))
	})
	if n := in.metric(t, "kube2lb_hostname_conflicts"); n != 0 {
		t.Errorf("kube2lb_hostname_conflicts = %d after the owner left, want 0", n)
	}
}

func creationTimestamp(t *testing.T, obj controlplane.Object) time.Time {
	t.Helper()
	md, _ := obj["metadata"].(map[string]any)
	s, _ := md["creationTimestamp"].(string)
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("creationTimestamp %q: %v", s, err)
	}
	return ts
}

// TestClearsWhenNoLongerServed: a LoadBalancer service that stays a
// LoadBalancer but that kube2lb stops serving (here its port asks for tcp on
// a listener an older service holds in http) loses the status kube2lb
// published. Unlike a type change, the API server does not clear it: only
// kube2lb can.
func TestClearsWhenNoLongerServed(t *testing.T) {
	cp := start(t)
	// Created in the same second, the two are as old: the name decides.
	cp.Admin.Create(t, controlplane.Services, "default", service("a-older", "NodePort", 80))
	cp.Admin.Create(t, controlplane.Services, "default", service("b-newer", "LoadBalancer", 80))

	in := newInstance(t, routesTemplate)
	in.start(t, cp.Minimal, "-publish-status", "-publish-ip", "192.0.2.40")
	waitIngress(t, cp, "default", "b-newer", []string{"192.0.2.40"}, in)

	cp.Admin.Patch(t, controlplane.Services, "default", "b-newer", controlplane.Object{"metadata": controlplane.Object{
		"annotations": controlplane.Object{"kube2lb/port-mode": `{"http": "tcp"}`}}})
	in.wait(t, "b-newer dropped", func(out string) bool { return !has(out, svcLine("default", "b-newer")) })
	waitIngress(t, cp, "default", "b-newer", nil, in)
	if n := in.metric(t, `kube2lb_status_updates_total{result="cleared"}`); n < 1 {
		t.Errorf("cleared status updates = %d, want at least 1:\n%s", n, in.p.Logs())
	}
}
