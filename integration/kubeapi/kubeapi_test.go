// Package kubeapi_test runs package kubeapi's cache against a real API
// server (see package controlplane): convergence after creates, updates and
// deletes; API server restarts; and etcd compaction, where the watch gets
// 410 and objects deleted while the cache was away must disappear.
package kubeapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/kube2lb"
	"github.com/kube2lb/kube2lb/kubeapi"
	"github.com/kube2lb/kube2lb/kubeconfig"
)

// tokenAuth is a fixed bearer token.
type tokenAuth string

func (a tokenAuth) Authorize(req *http.Request) error {
	req.Header.Set("Authorization", "Bearer "+string(a))
	return nil
}

func (tokenAuth) Refresh(*http.Request) {}

// newCache runs a cache against server (the control plane's URL or a
// proxy's) as user until the test ends.
func newCache(t *testing.T, cp *controlplane.ControlPlane, server string, user *controlplane.User, opts kubeapi.Options) *kubeapi.Cache {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig, err := cp.TLSConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &kubeconfig.Config{Server: u, TLS: tlsConfig, Auth: tokenAuth(user.Token), Source: "integration test " + user.Name}
	opts.UserAgent = "kube2lb/integration"
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := kubeapi.NewCache(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	if err := c.WaitSynced(wctx); err != nil {
		t.Fatal(err)
	}
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitFor waits until cond holds for the cache's snapshot. The limit only
// keeps a broken cache from hanging the suite; it measures nothing.
func waitFor(t *testing.T, c *kubeapi.Cache, what string, cond func(kubeapi.Snapshot) bool) {
	t.Helper()
	limit := time.After(2 * time.Minute)
	for {
		snap := c.Snapshot()
		if cond(snap) {
			return
		}
		select {
		case <-c.Changed():
		case <-time.After(time.Second):
		case <-limit:
			t.Fatalf("cache never had %s; it has %s; status %s", what, describe(snap), status(c))
		}
	}
}

func describe(s kubeapi.Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "services %v, nodes %v, endpointslices %v", serviceNames(s), nodeNames(s), sliceNames(s))
	return b.String()
}

func status(c *kubeapi.Cache) string {
	var parts []string
	for _, st := range c.Status() {
		parts = append(parts, fmt.Sprintf("%s{synced %v watching %v objects %d relists %d restarts %d err %v}",
			st.Resource, st.Synced, st.Watching, st.Objects, st.Relists, st.WatchRestarts, st.LastError))
	}
	return strings.Join(parts, " ")
}

func serviceNames(s kubeapi.Snapshot) []string {
	var out []string
	for _, svc := range s.Services {
		out = append(out, svc.Metadata.Key())
	}
	return out
}

func nodeNames(s kubeapi.Snapshot) []string {
	var out []string
	for _, n := range s.Nodes {
		out = append(out, n.Metadata.Key())
	}
	return out
}

func sliceNames(s kubeapi.Snapshot) []string {
	var out []string
	for _, e := range s.EndpointSlices {
		out = append(out, e.Metadata.Key())
	}
	return out
}

func findService(s kubeapi.Snapshot, key string) *kubeapi.Service {
	for _, svc := range s.Services {
		if svc.Metadata.Key() == key {
			return svc
		}
	}
	return nil
}

func resourceStatus(t *testing.T, c *kubeapi.Cache, name string) kubeapi.ResourceStatus {
	t.Helper()
	for _, st := range c.Status() {
		if st.Resource == name {
			return st
		}
	}
	t.Fatalf("no status for %s", name)
	return kubeapi.ResourceStatus{}
}

func service(name string, port int) controlplane.Object {
	return controlplane.Object{
		"metadata": controlplane.Object{"name": name},
		"spec": controlplane.Object{
			"type":  "NodePort",
			"ports": []controlplane.Object{{"name": "http", "port": port, "protocol": "TCP"}},
		},
	}
}

func node(name, ip string) controlplane.Object {
	return controlplane.Object{
		"metadata": controlplane.Object{"name": name},
		"status": controlplane.Object{
			"addresses":  []controlplane.Object{{"type": "InternalIP", "address": ip}},
			"conditions": []controlplane.Object{{"type": "Ready", "status": "True"}},
		},
	}
}

func endpointSlice(name, svc, ip string) controlplane.Object {
	return controlplane.Object{
		"metadata":    controlplane.Object{"name": name, "labels": controlplane.Object{"kubernetes.io/service-name": svc}},
		"addressType": "IPv4",
		"endpoints":   []controlplane.Object{{"addresses": []string{ip}, "conditions": controlplane.Object{"ready": true}}},
		"ports":       []controlplane.Object{{"name": "http", "port": 8080, "protocol": "TCP"}},
	}
}

func has(list []string, key string) bool { return slices.Contains(list, key) }

func TestCacheConverges(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	cp.Admin.Create(t, controlplane.Services, "default", service("before", 80))
	c := newCache(t, cp, cp.URL, cp.Minimal, kubeapi.Options{EndpointSlices: true})
	waitFor(t, c, "the service created before the first list", func(s kubeapi.Snapshot) bool {
		return has(serviceNames(s), "default/before")
	})

	cp.Admin.Create(t, controlplane.Services, "default", service("web", 80))
	cp.Admin.Create(t, controlplane.Nodes, "", node("node-a", "127.0.0.10"))
	cp.Admin.Create(t, controlplane.EndpointSlices, "default", endpointSlice("web-1", "web", "10.0.0.1"))
	waitFor(t, c, "service, node and endpointslice", func(s kubeapi.Snapshot) bool {
		return has(serviceNames(s), "default/web") && has(nodeNames(s), "node-a") && has(sliceNames(s), "default/web-1")
	})

	cp.Admin.Patch(t, controlplane.Services, "default", "web", controlplane.Object{
		"metadata": controlplane.Object{"annotations": controlplane.Object{"kube2lb/mode": "tcp"}}})
	waitFor(t, c, "the annotation", func(s kubeapi.Snapshot) bool {
		svc := findService(s, "default/web")
		if svc == nil {
			return false
		}
		v, _ := svc.Metadata.Annotations.Get("kube2lb/mode")
		return v == "tcp"
	})

	cp.Admin.Delete(t, controlplane.Services, "default", "web")
	cp.Admin.Delete(t, controlplane.Nodes, "", "node-a")
	cp.Admin.Delete(t, controlplane.EndpointSlices, "default", "web-1")
	waitFor(t, c, "the deletions", func(s kubeapi.Snapshot) bool {
		return !has(serviceNames(s), "default/web") && !has(nodeNames(s), "node-a") && !has(sliceNames(s), "default/web-1")
	})
	for _, st := range c.Status() {
		if st.LastError != nil || !st.Watching {
			t.Errorf("%s: watching %v, last error %v", st.Resource, st.Watching, st.LastError)
		}
	}
}

// TestCacheExposedOnly runs a cache of NodePort and LoadBalancer Services
// only: the API server (1.31 and later) filters the others by a field
// selector, and a Service whose type changes comes or goes.
func TestCacheExposedOnly(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	cp.Admin.Create(t, controlplane.Services, "default", service("np", 80))
	cip := service("cip", 81)
	cip["spec"].(controlplane.Object)["type"] = "ClusterIP"
	cp.Admin.Create(t, controlplane.Services, "default", cip)
	cp.Admin.Create(t, controlplane.EndpointSlices, "default", endpointSlice("np-1", "np", "10.0.0.1"))
	cp.Admin.Create(t, controlplane.EndpointSlices, "default", endpointSlice("cip-1", "cip", "10.0.0.2"))
	logs := &kube2lb.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newCache(t, cp, cp.URL, cp.Minimal, kubeapi.Options{ExposedOnly: true, EndpointSlices: true, Logger: logger})
	if got := serviceNames(c.Snapshot()); !slices.Equal(got, []string{"default/np"}) {
		t.Errorf("services %v, want only default/np", got)
	}
	// Only the slices of the Services cached.
	if got := sliceNames(c.Snapshot()); !slices.Equal(got, []string{"default/np-1"}) {
		t.Errorf("slices %v, want only default/np-1", got)
	}
	cp.Admin.Patch(t, controlplane.Services, "default", "cip", controlplane.Object{"spec": controlplane.Object{"type": "NodePort"}})
	cp.Admin.Patch(t, controlplane.Services, "default", "np", controlplane.Object{"spec": controlplane.Object{"type": "ClusterIP"}})
	waitFor(t, c, "cip in and np out", func(s kubeapi.Snapshot) bool {
		return slices.Equal(serviceNames(s), []string{"default/cip"})
	})
	// The slice of cip, which the API server does not send again, is
	// listed again; np's goes at its next change.
	waitFor(t, c, "cip-1 in", func(s kubeapi.Snapshot) bool { return has(sliceNames(s), "default/cip-1") })
	cp.Admin.Patch(t, controlplane.EndpointSlices, "default", "np-1", controlplane.Object{"metadata": controlplane.Object{"labels": controlplane.Object{"changed": "yes"}}})
	waitFor(t, c, "np-1 out", func(s kubeapi.Snapshot) bool { return slices.Equal(sliceNames(s), []string{"default/cip-1"}) })
	if st := resourceStatus(t, c, kubeapi.ResourceServices); st.LastError != nil || !st.Watching || st.Relists != 0 {
		t.Errorf("services: watching %v, relists %d, last error %v", st.Watching, st.Relists, st.LastError)
	}
	// (A list asked for, not a failure; a 410 would add one.)
	if st := resourceStatus(t, c, kubeapi.ResourceEndpointSlices); st.LastError != nil || !st.Watching || st.Relists < 1 {
		t.Errorf("slices: watching %v, relists %d (want 1 or more), last error %v", st.Watching, st.Relists, st.LastError)
	}
	// The API server filtered: it took the field selector.
	if l := logs.String(); strings.Contains(l, "field selector") {
		t.Errorf("the API server refused the field selector:\n%s", l)
	}
}

// TestCacheLocalSlicesOnly: with LocalSlicesOnly, the cache keeps the
// EndpointSlices of the Services of policy Local only; a Service that
// becomes Local comes with its slice, never without.
func TestCacheLocalSlicesOnly(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	loc := service("loc", 80)
	loc["spec"].(controlplane.Object)["externalTrafficPolicy"] = "Local"
	cp.Admin.Create(t, controlplane.Services, "default", loc)
	cp.Admin.Create(t, controlplane.Services, "default", service("clu", 81))
	cp.Admin.Create(t, controlplane.EndpointSlices, "default", endpointSlice("loc-1", "loc", "10.0.0.1"))
	cp.Admin.Create(t, controlplane.EndpointSlices, "default", endpointSlice("clu-1", "clu", "10.0.0.2"))
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newCache(t, cp, cp.URL, cp.Minimal, kubeapi.Options{ExposedOnly: true, EndpointSlices: true, LocalSlicesOnly: true, Logger: logger})
	if got := sliceNames(c.Snapshot()); !slices.Equal(got, []string{"default/loc-1"}) {
		t.Errorf("slices %v, want only default/loc-1", got)
	}
	policy := func(s kubeapi.Snapshot) string {
		if svc := findService(s, "default/clu"); svc != nil {
			return svc.Spec.ExternalTrafficPolicy
		}
		return ""
	}
	cp.Admin.Patch(t, controlplane.Services, "default", "clu", controlplane.Object{"spec": controlplane.Object{"externalTrafficPolicy": "Local"}})
	waitFor(t, c, "clu Local, with its slice", func(s kubeapi.Snapshot) bool {
		if policy(s) == "Local" && !has(sliceNames(s), "default/clu-1") {
			t.Fatalf("clu Local without its slice: %s", describe(s))
		}
		return policy(s) == "Local"
	})
	cp.Admin.Patch(t, controlplane.Services, "default", "clu", controlplane.Object{"spec": controlplane.Object{"externalTrafficPolicy": "Cluster"}})
	waitFor(t, c, "clu Cluster", func(s kubeapi.Snapshot) bool { return policy(s) == "Cluster" })
	cp.Admin.Patch(t, controlplane.EndpointSlices, "default", "clu-1", controlplane.Object{"metadata": controlplane.Object{"labels": controlplane.Object{"changed": "yes"}}})
	waitFor(t, c, "clu-1 out", func(s kubeapi.Snapshot) bool { return slices.Equal(sliceNames(s), []string{"default/loc-1"}) })
	// Out of the cache, then back Local: with its slice too, which was
	// not kept.
	cp.Admin.Patch(t, controlplane.Services, "default", "clu", controlplane.Object{"spec": controlplane.Object{
		"type": "ClusterIP", "externalTrafficPolicy": nil, "ports": []controlplane.Object{{"name": "http", "port": 81, "protocol": "TCP"}}}})
	waitFor(t, c, "clu out", func(s kubeapi.Snapshot) bool { return findService(s, "default/clu") == nil })
	cp.Admin.Patch(t, controlplane.Services, "default", "clu", controlplane.Object{"spec": controlplane.Object{"type": "NodePort", "externalTrafficPolicy": "Local"}})
	waitFor(t, c, "clu back Local, with its slice", func(s kubeapi.Snapshot) bool {
		if policy(s) == "Local" && !has(sliceNames(s), "default/clu-1") {
			t.Fatalf("clu Local without its slice: %s", describe(s))
		}
		return policy(s) == "Local"
	})
}

func TestCacheSurvivesAPIServerRestart(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	cp.Admin.Create(t, controlplane.Services, "default", service("kept", 80))
	c := newCache(t, cp, cp.URL, cp.Minimal, kubeapi.Options{})
	waitFor(t, c, "the first service", func(s kubeapi.Snapshot) bool { return has(serviceNames(s), "default/kept") })

	cp.KillAPIServer(t)
	if !has(serviceNames(c.Snapshot()), "default/kept") {
		t.Errorf("the cache lost its objects when the API server went away")
	}
	cp.StartAPIServer(t)
	cp.Admin.Create(t, controlplane.Services, "default", service("after", 81))
	waitFor(t, c, "the service created after the restart", func(s kubeapi.Snapshot) bool {
		return has(serviceNames(s), "default/after") && has(serviceNames(s), "default/kept")
	})
}

func TestCacheForbidden(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	u, _ := url.Parse(cp.URL)
	tlsConfig, err := cp.TLSConfig(cp.NoEndpointSlices)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &kubeconfig.Config{Server: u, TLS: tlsConfig, Auth: tokenAuth(cp.NoEndpointSlices.Token), Source: "test"}
	c, err := kubeapi.NewCache(cfg, kubeapi.Options{EndpointSlices: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	limit := time.After(2 * time.Minute)
	for {
		st := resourceStatus(t, c, kubeapi.ResourceEndpointSlices)
		var se *kubeapi.StatusError
		if errors.As(st.LastError, &se) {
			if se.Code != http.StatusForbidden {
				t.Fatalf("endpointslices error %v, want 403", st.LastError)
			}
			if !strings.Contains(st.LastError.Error(), "endpointslices") {
				t.Errorf("error does not name the resource: %v", st.LastError)
			}
			break
		}
		select {
		case <-limit:
			t.Fatalf("no 403 for endpointslices: %s", status(c))
		case <-time.After(200 * time.Millisecond):
		}
	}
	if c.Synced() {
		t.Error("Synced with endpointslices forbidden")
	}
	// Services are allowed: their first list completes on its own.
	waitFor(t, c, "services synced", func(kubeapi.Snapshot) bool {
		return resourceStatus(t, c, kubeapi.ResourceServices).Synced
	})
}

// gap disconnects the cache (through a proxy), deletes and creates objects
// while it is away, compacts etcd past the cache's resourceVersion, runs
// restart (if not nil), reconnects the cache and checks that it relisted
// and holds exactly the objects that exist now.
func gap(t *testing.T, opts controlplane.Options, restart bool) {
	cp := controlplane.StartWith(t, opts)
	proxy := cp.ProxyTo(t)
	for _, name := range []string{"a", "b", "c"} {
		cp.Admin.Create(t, controlplane.Services, "default", service(name, 80))
	}
	cp.Admin.Create(t, controlplane.Nodes, "", node("node-gone", "127.0.0.11"))
	c := newCache(t, cp, proxy.URL, cp.Minimal, kubeapi.Options{})
	waitFor(t, c, "services a, b, c and node-gone", func(s kubeapi.Snapshot) bool {
		n := serviceNames(s)
		return has(n, "default/a") && has(n, "default/b") && has(n, "default/c") && has(nodeNames(s), "node-gone")
	})
	before := resourceStatus(t, c, kubeapi.ResourceServices).Relists

	proxy.Refuse()
	cp.Admin.Delete(t, controlplane.Services, "default", "b")
	cp.Admin.Delete(t, controlplane.Nodes, "", "node-gone")
	cp.Admin.Create(t, controlplane.Services, "default", service("d", 80))
	cp.CompactEtcd(t)
	if restart {
		cp.StopAPIServer(t)
		cp.StartAPIServer(t)
	}
	proxy.Forward()

	waitFor(t, c, "exactly services a, c, d and no node-gone", func(s kubeapi.Snapshot) bool {
		n := serviceNames(s)
		want := []string{"default/a", "default/c", "default/d"}
		var got []string
		for _, k := range n {
			if strings.HasPrefix(k, "default/") && k != "default/kubernetes" {
				got = append(got, k)
			}
		}
		return slices.Equal(got, want) && !has(nodeNames(s), "node-gone")
	})
	if after := resourceStatus(t, c, kubeapi.ResourceServices).Relists; after <= before {
		t.Errorf("services relists %d, before the gap %d: the 410 path was not taken", after, before)
	}
}

// TestCacheRelistsAfterCompaction: the watch is served by etcd, so the
// compaction alone makes the reconnecting watch fail with 410.
func TestCacheRelistsAfterCompaction(t *testing.T) {
	t.Parallel()
	gap(t, controlplane.Options{DisableWatchCache: true}, false)
}

// TestCacheRelistsAfterRestartAndCompaction: as in a real cluster, the API
// server's watch cache answers; it was restarted during the gap, so its
// window starts after the cache's resourceVersion: 410.
func TestCacheRelistsAfterRestartAndCompaction(t *testing.T) {
	t.Parallel()
	gap(t, controlplane.Options{}, true)
}

// TestCacheReplacesBlackholedConnection: the connection under the watches
// stops carrying anything without closing (a dead load balancer); new
// connections work. Only the cache's liveness checks (HTTP/2 pings) can
// find out; it must then reconnect and see what changed meanwhile.
func TestCacheReplacesBlackholedConnection(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	proxy := cp.ProxyTo(t)
	c := newCache(t, cp, proxy.URL, cp.Minimal, kubeapi.Options{})
	cp.Admin.Create(t, controlplane.Services, "default", service("before", 80))
	waitFor(t, c, "the service created before the black hole", func(s kubeapi.Snapshot) bool {
		return has(serviceNames(s), "default/before")
	})

	proxy.Blackhole()
	proxy.Forward() // only the open connection stays dead
	cp.Admin.Create(t, controlplane.Services, "default", service("during", 80))
	waitFor(t, c, "the service created after the black hole", func(s kubeapi.Snapshot) bool {
		return has(serviceNames(s), "default/during")
	})
}

// TestCacheFromKubeconfigFiles loads the harness's kubeconfig files with
// package kubeconfig, as kube2lb -kubecfg does: a token user and a
// client-certificate user.
func TestCacheFromKubeconfigFiles(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	cp.Admin.Create(t, controlplane.Services, "default", service("web", 80))
	for _, u := range []*controlplane.User{cp.Minimal, cp.Admin} {
		t.Run(u.Name, func(t *testing.T) {
			cfg, err := kubeconfig.Load(kubeconfig.Options{Kubeconfig: u.Kubeconfig, Getenv: func(string) string { return "" }})
			if err != nil {
				t.Fatal(err)
			}
			c, err := kubeapi.NewCache(cfg, kubeapi.Options{EndpointSlices: true})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); c.Run(ctx) }()
			defer func() { cancel(); <-done }()
			waitFor(t, c, "default/web", func(s kubeapi.Snapshot) bool { return has(serviceNames(s), "default/web") })
		})
	}
}
