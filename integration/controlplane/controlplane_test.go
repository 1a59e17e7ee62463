package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kube2lb/kube2lb/integration/controlplane"
)

func service(name string) controlplane.Object {
	return controlplane.Object{
		"metadata": controlplane.Object{"name": name, "labels": controlplane.Object{"app": name}},
		"spec": controlplane.Object{
			"type":  "NodePort",
			"ports": []controlplane.Object{{"name": "http", "port": 80, "protocol": "TCP"}},
		},
	}
}

func node(name string) controlplane.Object {
	return controlplane.Object{
		"metadata": controlplane.Object{"name": name},
		"status": controlplane.Object{
			"addresses":  []controlplane.Object{{"type": "InternalIP", "address": "127.0.0.10"}},
			"conditions": []controlplane.Object{{"type": "Ready", "status": "True"}},
		},
	}
}

func names(list controlplane.Object) []string {
	var out []string
	items, _ := list["items"].([]any)
	for _, it := range items {
		md := it.(map[string]any)["metadata"].(map[string]any)
		out = append(out, md["name"].(string))
	}
	return out
}

func wantCode(t *testing.T, err error, code int) {
	t.Helper()
	var apiErr *controlplane.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != code {
		t.Fatalf("got %v, want an API error %d", err, code)
	}
}

func TestControlPlane(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	ctx := t.Context()

	cp.Admin.Create(t, controlplane.Services, "default", service("web"))
	cp.Admin.Create(t, controlplane.Nodes, "", node("node-a"))
	if got := cp.Admin.Get(t, controlplane.Nodes, "", "node-a"); got["status"] == nil {
		t.Errorf("node created without status: %v", got)
	}
	cp.Admin.Create(t, controlplane.EndpointSlices, "default", controlplane.Object{
		"metadata":    controlplane.Object{"name": "web-1", "labels": controlplane.Object{"kubernetes.io/service-name": "web"}},
		"addressType": "IPv4",
		"endpoints":   []controlplane.Object{{"addresses": []string{"10.0.0.1"}}},
		"ports":       []controlplane.Object{{"name": "http", "port": 8080, "protocol": "TCP"}},
	})

	t.Run("version", func(t *testing.T) {
		var v struct{ GitVersion string }
		if err := cp.Minimal.Do(ctx, http.MethodGet, "/version", nil, &v); err != nil {
			t.Fatal(err)
		}
		if cp.Provider == "local" && v.GitVersion != "v1.34.4" {
			t.Errorf("/version says %q, want the pinned v1.34.4", v.GitVersion)
		}
	})

	t.Run("minimal user reads", func(t *testing.T) {
		if got := names(cp.Minimal.List(t, controlplane.Services, "")); !slices.Contains(got, "web") {
			t.Errorf("services as %s: %v, want web among them", cp.Minimal.Name, got)
		}
		if got := names(cp.Minimal.List(t, controlplane.Nodes, "")); !slices.Contains(got, "node-a") {
			t.Errorf("nodes as %s: %v, want node-a", cp.Minimal.Name, got)
		}
		if got := names(cp.Minimal.List(t, controlplane.EndpointSlices, "")); !slices.Contains(got, "web-1") {
			t.Errorf("endpointslices as %s: %v, want web-1", cp.Minimal.Name, got)
		}
		w, err := cp.Minimal.Watch(ctx, controlplane.Services, "", "0")
		if err != nil {
			t.Fatalf("watch services as %s: %v", cp.Minimal.Name, err)
		}
		w.Close()
	})

	t.Run("minimal user cannot write", func(t *testing.T) {
		err := cp.Minimal.Do(ctx, http.MethodPost, controlplane.Services.Path("default", ""), service("nope"), nil)
		wantCode(t, err, http.StatusForbidden)
		// The shipped example leaves the status-publishing role unbound.
		lb := service("lb")
		lb["spec"].(controlplane.Object)["type"] = "LoadBalancer"
		cp.Admin.Create(t, controlplane.Services, "default", lb)
		patch := map[string]any{"status": map[string]any{"loadBalancer": map[string]any{"ingress": []any{map[string]any{"ip": "192.0.2.1"}}}}}
		err = cp.Minimal.Do(ctx, http.MethodPatch, controlplane.Services.Path("default", "lb")+"/status", patch, nil)
		wantCode(t, err, http.StatusForbidden)
		cp.Admin.PatchStatus(t, controlplane.Services, "default", "lb", patch)
	})

	t.Run("user without endpointslices", func(t *testing.T) {
		cp.NoEndpointSlices.List(t, controlplane.Services, "")
		err := cp.NoEndpointSlices.Do(ctx, http.MethodGet, controlplane.EndpointSlices.Path("", ""), nil, nil)
		wantCode(t, err, http.StatusForbidden)
		if !strings.Contains(err.Error(), "endpointslices") {
			t.Errorf("403 does not name the resource: %v", err)
		}
	})

	t.Run("kubeconfig files", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("kubectl not found (Debian package kubernetes-client)")
			}
			t.Skip("kubectl not found (Debian package kubernetes-client)")
		}
		for _, u := range []*controlplane.User{cp.Admin, cp.Minimal} {
			out, err := exec.Command(kubectl, "--kubeconfig", u.Kubeconfig, "get", "services", "-A", "-o", "name").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "service/web") {
				t.Errorf("kubectl get services as %s: %v\n%s", u.Name, err, out)
			}
		}
	})

	t.Run("restart keeps data", func(t *testing.T) {
		before := cp.Admin.Get(t, controlplane.Services, "default", "web")
		cp.StopAPIServer(t)
		if err := cp.Admin.Do(ctx, http.MethodGet, "/readyz", nil, nil); err == nil {
			t.Fatal("API server answers after StopAPIServer")
		}
		cp.StartAPIServer(t)
		after := cp.Admin.Get(t, controlplane.Services, "default", "web")
		if controlplane.ResourceVersion(after) != controlplane.ResourceVersion(before) {
			t.Errorf("resourceVersion %s after restart, want %s", controlplane.ResourceVersion(after), controlplane.ResourceVersion(before))
		}
		cp.KillAPIServer(t)
		cp.StartAPIServer(t)
		cp.Minimal.List(t, controlplane.Services, "")
	})
}

// watchOutcome returns the code of the error that ends a watch from rv
// (HTTP status or ERROR event), or 0 with the type of the first event
// about the object called name.
func watchOutcome(t *testing.T, u *controlplane.User, r controlplane.Resource, ns, name, rv string) (code int, event string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w, err := u.Watch(ctx, r, ns, rv)
	var apiErr *controlplane.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code, ""
	}
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for {
		e, err := w.Next()
		if err != nil {
			t.Fatalf("watch from %s: %v", rv, err)
		}
		switch e.Type {
		case "BOOKMARK":
			continue
		case "ERROR":
			c, _ := e.Object["code"].(float64)
			return int(c), e.Type
		}
		if md, _ := e.Object["metadata"].(map[string]any); md["name"] != name {
			continue // default/kubernetes, created by the API server at any time
		}
		return 0, e.Type
	}
}

func TestCompactEtcd(t *testing.T) {
	t.Parallel()
	cp := controlplane.StartWith(t, controlplane.Options{DisableWatchCache: true})
	created := cp.Admin.Create(t, controlplane.Services, "default", service("web"))
	rv := controlplane.ResourceVersion(created)
	cp.Admin.Patch(t, controlplane.Services, "default", "web", map[string]any{"metadata": map[string]any{"annotations": map[string]string{"step": "1"}}})

	if code, ev := watchOutcome(t, cp.Minimal, controlplane.Services, "default", "web", rv); code != 0 || ev != "MODIFIED" {
		t.Fatalf("watch from %s before compaction: code %d event %q, want MODIFIED", rv, code, ev)
	}
	rev := cp.CompactEtcd(t)
	if got := cp.EtcdRevision(t); got != rev {
		t.Errorf("etcd revision %d after compaction, want %d", got, rev)
	}
	if code, ev := watchOutcome(t, cp.Minimal, controlplane.Services, "default", "web", rv); code != http.StatusGone {
		t.Fatalf("watch from %s after compaction at %d: code %d event %q, want 410", rv, rev, code, ev)
	}
	// Compacting twice at the same revision is harmless.
	cp.CompactEtcd(t)
}

// TestWatchCacheAfterRestart records how a real API server with its watch
// cache answers a watch from a version older than its restart: the
// situation kube2lb meets when it reconnects after an API server restart.
func TestWatchCacheAfterRestart(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	created := cp.Admin.Create(t, controlplane.Services, "default", service("web"))
	rv := controlplane.ResourceVersion(created)
	cp.Admin.Patch(t, controlplane.Services, "default", "web", map[string]any{"metadata": map[string]any{"annotations": map[string]string{"step": "1"}}})
	cp.CompactEtcd(t)
	cp.StopAPIServer(t)
	cp.StartAPIServer(t)
	code, ev := watchOutcome(t, cp.Minimal, controlplane.Services, "default", "web", rv)
	if code != http.StatusGone {
		t.Fatalf("watch from %s after compaction and restart: code %d event %q, want 410", rv, code, ev)
	}
}

func TestShippedRBAC(t *testing.T) {
	roles, err := controlplane.ShippedClusterRoles()
	if err != nil {
		t.Fatal(err)
	}
	allows := func(group, resource, verb string) bool {
		for _, r := range roles {
			for _, rule := range r.Rules {
				if slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, verb) {
					return true
				}
			}
		}
		return false
	}
	for _, rule := range controlplane.MinimalRules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					if !allows(g, res, v) {
						t.Errorf("shipped RBAC does not allow %s %s in group %q", v, res, g)
					}
				}
			}
		}
	}
	// Nothing more: every permission granted is one kube2lb uses.
	want := map[string]bool{`"" services/status patch`: true}
	for _, rule := range controlplane.MinimalRules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					want[fmt.Sprintf("%q %s %s", g, res, v)] = true
				}
			}
		}
	}
	for _, r := range roles {
		for _, rule := range r.Rules {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					for _, v := range rule.Verbs {
						if !want[fmt.Sprintf("%q %s %s", g, res, v)] {
							t.Errorf("ClusterRole %s allows %s %s in group %q, which kube2lb does not use", r.Name, v, res, g)
						}
					}
				}
			}
		}
	}
}

func TestProxy(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	p := cp.ProxyTo(t)
	via := cp.Admin.Via(p)
	via.List(t, controlplane.Services, "")

	p.Refuse()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var apiErr *controlplane.APIError
	if err := cp.Admin.Via(p).Do(ctx, http.MethodGet, "/readyz", nil, nil); err == nil || errors.As(err, &apiErr) {
		t.Fatalf("request through a refusing proxy: %v, want a connection error", err)
	}
	p.Forward()
	via = cp.Admin.Via(p)
	list := via.List(t, controlplane.Services, "default")

	w, err := via.Watch(t.Context(), controlplane.Services, "default", controlplane.ResourceVersion(list))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p.Blackhole()
	p.Forward() // new connections work again; the watch's stays black-holed
	cp.Admin.Create(t, controlplane.Services, "default", service("unseen"))
	got := make(chan controlplane.Event, 1)
	go func() {
		for {
			e, err := w.Next()
			if err != nil {
				return
			}
			// Only unseen's: the API server creates its own Service
			// "kubernetes" in default a moment after it starts, which
			// the watch may have received before the black hole.
			if md, _ := e.Object["metadata"].(map[string]any); e.Type != "BOOKMARK" && md["name"] == "unseen" {
				got <- e
				return
			}
		}
	}()
	fresh := cp.Admin.Via(p)
	if names := names(fresh.List(t, controlplane.Services, "default")); !slices.Contains(names, "unseen") {
		t.Fatalf("new connection through the proxy lists %v, want unseen", names)
	}
	if p.Open() == 0 {
		t.Error("the black-holed connection was closed")
	}
	select {
	case e := <-got:
		t.Errorf("black-holed watch delivered %s of unseen", e.Type)
	case <-time.After(2 * time.Second):
	}
}
