package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/kube2lb/kube2lb/kubeapi"
)

// fakeStatusAPI keeps services in memory and applies status patches as the
// API server does: conditional on resourceVersion (409 when stale), each
// accepted write bumping it.
type fakeStatusAPI struct {
	mu       sync.Mutex
	rv       int
	services map[string]*kubeapi.Service
	writes   []string // "ns/name ip,ip" or "ns/name cleared", per accepted patch
	patches  int      // every patch request, refused ones included
	gets     int
	failWith error // when set, every request fails with it
}

func newFakeStatusAPI(svcs ...*kubeapi.Service) *fakeStatusAPI {
	f := &fakeStatusAPI{services: map[string]*kubeapi.Service{}}
	for _, s := range svcs {
		f.put(s)
	}
	return f
}

// put stores a copy of s at a new resourceVersion.
func (f *fakeStatusAPI) put(s *kubeapi.Service) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := *s
	f.rv++
	c.Metadata.ResourceVersion = strconv.Itoa(f.rv)
	f.services[c.Metadata.Key()] = &c
}

func (f *fakeStatusAPI) remove(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.services, key)
}

// snapshot returns the stored services, as the caches would hold them.
func (f *fakeStatusAPI) snapshot() kubeapi.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	var snap kubeapi.Snapshot
	for _, s := range f.services {
		c := *s
		snap.Services = append(snap.Services, &c)
	}
	slices.SortFunc(snap.Services, func(a, b *kubeapi.Service) int { return strings.Compare(a.Metadata.Key(), b.Metadata.Key()) })
	return snap
}

func (f *fakeStatusAPI) written() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}

func notFound(key string) error {
	return &kubeapi.StatusError{Code: http.StatusNotFound, Reason: "NotFound", Message: fmt.Sprintf("services %q not found", key)}
}

func (f *fakeStatusAPI) GetService(_ context.Context, ns, name string) (*kubeapi.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	if f.failWith != nil {
		return nil, f.failWith
	}
	s, ok := f.services[ns+"/"+name]
	if !ok {
		return nil, notFound(ns + "/" + name)
	}
	c := *s
	return &c, nil
}

func (f *fakeStatusAPI) PatchServiceStatus(_ context.Context, ns, name, rv string, ingress []kubeapi.LoadBalancerIngress) (*kubeapi.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.patches++
	if f.failWith != nil {
		return nil, f.failWith
	}
	key := ns + "/" + name
	s, ok := f.services[key]
	if !ok {
		return nil, notFound(key)
	}
	if rv != "" && rv != s.Metadata.ResourceVersion {
		return nil, &kubeapi.StatusError{Code: http.StatusConflict, Reason: "Conflict", Message: "the object has been modified"}
	}
	c := *s
	c.Status.LoadBalancer.Ingress = slices.Clone(ingress)
	f.rv++
	c.Metadata.ResourceVersion = strconv.Itoa(f.rv)
	f.services[key] = &c
	var ips []string
	for _, in := range ingress {
		if in.IPMode == nil || *in.IPMode != "Proxy" {
			return nil, fmt.Errorf("ingress %+v without ipMode Proxy", in)
		}
		ips = append(ips, in.IP)
	}
	if len(ips) == 0 {
		f.writes = append(f.writes, key+" cleared")
	} else {
		f.writes = append(f.writes, key+" "+strings.Join(ips, ","))
	}
	out := c
	return &out, nil
}

type counts map[string]int

func newTestPublisher(f *fakeStatusAPI, ips ...string) (*statusPublisher, counts) {
	c := counts{}
	var mu sync.Mutex
	p := newStatusPublisher(f, ips, time.Minute, slog.New(slog.DiscardHandler), func(r string) {
		mu.Lock()
		c[r]++
		mu.Unlock()
	})
	return p, c
}

// lbService is a LoadBalancer service; opts change it.
func lbService(ns, name string, opts ...func(*kubeapi.Service)) *kubeapi.Service {
	s := &kubeapi.Service{
		Metadata: kubeapi.ObjectMeta{Namespace: ns, Name: name},
		Spec: kubeapi.ServiceSpec{Type: kubeapi.ServiceTypeLoadBalancer, Ports: []kubeapi.ServicePort{
			{Name: "http", Protocol: "TCP", Port: 80, NodePort: 30080, TargetPort: kubeapi.IntOrString{IntVal: 8080}},
		}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withIngress(mode string, ips ...string) func(*kubeapi.Service) {
	return func(s *kubeapi.Service) {
		s.Status.LoadBalancer.Ingress = nil
		for _, ip := range ips {
			in := kubeapi.LoadBalancerIngress{IP: ip}
			if mode != "" {
				in.IPMode = &mode
			}
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, in)
		}
	}
}

func withClass(c string) func(*kubeapi.Service) {
	return func(s *kubeapi.Service) { s.Spec.LoadBalancerClass = &c }
}

func withType(t string) func(*kubeapi.Service) {
	return func(s *kubeapi.Service) { s.Spec.Type = t }
}

func withLBIP(ip string) func(*kubeapi.Service) {
	return func(s *kubeapi.Service) { s.Spec.LoadBalancerIP = ip }
}

func TestStatusPublish(t *testing.T) {
	tests := []struct {
		name     string
		ips      []string
		services []*kubeapi.Service
		served   []string
		want     []string // accepted writes
	}{
		{
			name:     "publishes -publish-ip on a served service",
			ips:      []string{"192.0.2.1", "2001:db8::1"},
			services: []*kubeapi.Service{lbService("ns", "web")},
			served:   []string{"ns/web"},
			want:     []string{"ns/web 192.0.2.1,2001:db8::1"},
		},
		{
			name:     "spec.loadBalancerIP wins",
			ips:      []string{"192.0.2.1"},
			services: []*kubeapi.Service{lbService("ns", "web", withLBIP("::ffff:198.51.100.7"))},
			served:   []string{"ns/web"},
			want:     []string{"ns/web 198.51.100.7"},
		},
		{
			name:     "an unspecified spec.loadBalancerIP is served on the default listener: -publish-ip",
			ips:      []string{"192.0.2.1"},
			services: []*kubeapi.Service{lbService("ns", "a", withLBIP("0.0.0.0")), lbService("ns", "b", withLBIP("::")), lbService("ns", "c", withLBIP("::ffff:0.0.0.0"))},
			served:   []string{"ns/a", "ns/b", "ns/c"},
			want:     []string{"ns/a 192.0.2.1", "ns/b 192.0.2.1", "ns/c 192.0.2.1"},
		},
		{
			name:     "follows -publish-ip: the old IPs are replaced",
			ips:      []string{"192.0.2.2"},
			services: []*kubeapi.Service{lbService("ns", "web", withIngress("Proxy", "192.0.2.1"))},
			served:   []string{"ns/web"},
			want:     []string{"ns/web 192.0.2.2"},
		},
		{
			name:     "replaces another implementation's status on a service it serves",
			ips:      []string{"192.0.2.1"},
			services: []*kubeapi.Service{lbService("ns", "web", withIngress("VIP", "192.0.2.1"))},
			served:   []string{"ns/web"},
			want:     []string{"ns/web 192.0.2.1"},
		},
		{
			name: "nothing to write: already there (ipMode unset counts as Proxy), or nothing to publish",
			ips:  []string{"192.0.2.1"},
			services: []*kubeapi.Service{
				lbService("ns", "same", withIngress("Proxy", "192.0.2.1")),
				lbService("ns", "old-server", withIngress("", "192.0.2.1")),
			},
			served: []string{"ns/old-server", "ns/same"},
		},
		{
			name:     "no -publish-ip: only services with spec.loadBalancerIP",
			services: []*kubeapi.Service{lbService("ns", "a"), lbService("ns", "b", withLBIP("192.0.2.9"))},
			served:   []string{"ns/a", "ns/b"},
			want:     []string{"ns/b 192.0.2.9"},
		},
		{
			name: "services not served are left alone when the status is not kube2lb's",
			ips:  []string{"192.0.2.1"},
			services: []*kubeapi.Service{
				lbService("ns", "other-ip", withType("NodePort"), withIngress("Proxy", "198.51.100.1")),
				lbService("ns", "vip", withType("NodePort"), withIngress("VIP", "192.0.2.1")),
				lbService("ns", "more", withType("NodePort"), withIngress("Proxy", "192.0.2.1", "192.0.2.2")),
				lbService("ns", "hostname", withType("NodePort"), func(s *kubeapi.Service) {
					s.Status.LoadBalancer.Ingress = []kubeapi.LoadBalancerIngress{{Hostname: "lb.example.com"}}
				}),
				// Same IPs, but LoadBalancer services this process did not
				// publish: another implementation (maybe another kube2lb,
				// for another class) serves them.
				lbService("ns", "metallb", withClass("metallb.io/metallb"), withIngress("Proxy", "192.0.2.1")),
				lbService("ns", "skipped", withIngress("Proxy", "192.0.2.1")),
				lbService("ns", "unpublished", withType("NodePort")),
			},
		},
		{
			name: "a service kube2lb no longer serves loses what kube2lb would write",
			ips:  []string{"192.0.2.1"},
			services: []*kubeapi.Service{
				lbService("ns", "nodeport", withType("NodePort"), withIngress("Proxy", "192.0.2.1")),
				lbService("ns", "own-ip", withType("NodePort"), withLBIP("192.0.2.7"), withIngress("Proxy", "192.0.2.7")),
				lbService("ns", "unset-mode", withType("NodePort"), withIngress("", "192.0.2.1")),
			},
			want: []string{"ns/nodeport cleared", "ns/own-ip cleared", "ns/unset-mode cleared"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeStatusAPI(tt.services...)
			p, c := newTestPublisher(f, tt.ips...)
			if err := p.reconcile(context.Background(), f.snapshot(), tt.served); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, f.written()); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			published, cleared := 0, 0
			for _, w := range tt.want {
				if strings.HasSuffix(w, " cleared") {
					cleared++
				} else {
					published++
				}
			}
			if c["published"] != published || c["cleared"] != cleared || c["error"]+c["conflict"] != 0 {
				t.Errorf("counts %v", c)
			}
			// Idempotent: the same flags on the new state write nothing.
			if err := p.reconcile(context.Background(), f.snapshot(), tt.served); err != nil {
				t.Fatal(err)
			}
			if got := len(f.written()); got != len(tt.want) {
				t.Errorf("second reconcile wrote again: %q", f.written())
			}
		})
	}
}

// TestStatusLifecycle follows one service through the changes that make
// kube2lb publish, follow, and clear its status.
func TestStatusLifecycle(t *testing.T) {
	f := newFakeStatusAPI(lbService("ns", "web"), lbService("ns", "other", withClass("example.com/other")))
	p, c := newTestPublisher(f, "192.0.2.1")
	step := func(name string, served []string, want ...string) {
		t.Helper()
		before := len(f.written())
		if err := p.reconcile(context.Background(), f.snapshot(), served); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, f.written()[before:], cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: writes (-want +got):\n%s", name, diff)
		}
	}
	step("publish", []string{"ns/web"}, "ns/web 192.0.2.1")
	step("nothing changed", []string{"ns/web"})

	// spec.loadBalancerIP set: the status follows.
	svc := f.snapshot().Services[1]
	svc.Spec.LoadBalancerIP = "192.0.2.50"
	f.put(svc)
	step("loadBalancerIP", []string{"ns/web"}, "ns/web 192.0.2.50")
	svc = f.snapshot().Services[1]
	svc.Spec.LoadBalancerIP = ""
	f.put(svc)
	step("loadBalancerIP removed", []string{"ns/web"}, "ns/web 192.0.2.1")

	// Type changed to NodePort: render no longer serves it as a load balancer
	// (a type other than NodePort leaves the caches).
	svc = f.snapshot().Services[1]
	svc.Spec.Type = "NodePort"
	f.put(svc)
	step("type changed", nil, "ns/web cleared")
	step("cleared stays cleared", nil)

	// Back to LoadBalancer, then of a class another implementation serves:
	// this process published it, so it clears it.
	svc = f.snapshot().Services[1]
	svc.Spec.Type = "LoadBalancer"
	f.put(svc)
	step("LoadBalancer again", []string{"ns/web"}, "ns/web 192.0.2.1")
	svc = f.snapshot().Services[1]
	svc.Spec.LoadBalancerClass = new("example.com/other")
	f.put(svc)
	step("class changed", nil, "ns/web cleared")

	// Published, then the other implementation took over before kube2lb
	// saw the change: its status stays.
	svc = f.snapshot().Services[1]
	svc.Spec.LoadBalancerClass = nil
	f.put(svc)
	step("no class again", []string{"ns/web"}, "ns/web 192.0.2.1")
	svc = f.snapshot().Services[1]
	svc.Spec.LoadBalancerClass = new("example.com/other")
	svc.Status.LoadBalancer.Ingress = []kubeapi.LoadBalancerIngress{{IP: "203.0.113.1", IPMode: new("VIP")}}
	f.put(svc)
	step("taken over", nil)

	// Served, published, then skipped (say, by the host checks) while
	// still a LoadBalancer of kube2lb's class: cleared, as this process
	// published it.
	svc = f.snapshot().Services[1]
	svc.Spec.LoadBalancerClass = nil
	svc.Status.LoadBalancer.Ingress = nil
	f.put(svc)
	step("served once more", []string{"ns/web"}, "ns/web 192.0.2.1")
	step("skipped", nil, "ns/web cleared")

	// Without -publish-ip, only spec.loadBalancerIP says where it is:
	// removed, the status goes too.
	p.ips = nil
	svc = f.snapshot().Services[1]
	svc.Spec.LoadBalancerIP = "192.0.2.60"
	f.put(svc)
	step("loadBalancerIP without -publish-ip", []string{"ns/web"}, "ns/web 192.0.2.60")
	svc = f.snapshot().Services[1]
	svc.Spec.LoadBalancerIP = ""
	f.put(svc)
	step("nothing to publish", []string{"ns/web"}, "ns/web cleared")

	if c["published"] != 7 || c["cleared"] != 4 || c["error"] != 0 || c["conflict"] != 0 {
		t.Errorf("counts %v", c)
	}
}

// TestStatusTwoClasses runs two publishers with the same -publish-ip for
// two load balancer classes: neither clears what the other publishes.
func TestStatusTwoClasses(t *testing.T) {
	f := newFakeStatusAPI(lbService("ns", "none"), lbService("ns", "mine", withClass("example.com/lb")))
	noClass, _ := newTestPublisher(f, "192.0.2.1")
	class, _ := newTestPublisher(f, "192.0.2.1")
	for range 3 {
		if err := noClass.reconcile(context.Background(), f.snapshot(), []string{"ns/none"}); err != nil {
			t.Fatal(err)
		}
		if err := class.reconcile(context.Background(), f.snapshot(), []string{"ns/mine"}); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"ns/none 192.0.2.1", "ns/mine 192.0.2.1"}, f.written()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
}

// TestStatusRecreatedService: a service deleted and created again under
// its name, of a class another implementation serves (here another
// kube2lb publishing the same IP), is not this process's, although its
// status holds what it published on the first one: not cleared, neither
// in the caches nor read after it left them.
func TestStatusRecreatedService(t *testing.T) {
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newFakeStatusAPI(lbService("ns", "web", func(s *kubeapi.Service) { s.Metadata.CreationTimestamp = first }))
	p, _ := newTestPublisher(f, "192.0.2.1")
	if err := p.reconcile(context.Background(), f.snapshot(), []string{"ns/web"}); err != nil {
		t.Fatal(err)
	}
	before := len(f.written())
	again := lbService("ns", "web", withClass("example.com/b"), withIngress(kubeapi.IPModeProxy, "192.0.2.1"),
		func(s *kubeapi.Service) { s.Metadata.CreationTimestamp = first.Add(time.Hour) })
	f.put(again)
	if err := p.reconcile(context.Background(), f.snapshot(), nil); err != nil {
		t.Fatal(err)
	}
	snap := f.snapshot()
	snap.Services = nil // left the caches (filtered out): read to know
	if err := p.reconcile(context.Background(), snap, nil); err != nil {
		t.Fatal(err)
	}
	if w := f.written()[before:]; len(w) != 0 {
		t.Errorf("writes to the service created again: %q", w)
	}
}

// TestStatusServiceLeavesTheCaches covers services filtered out by
// -selector or -namespace, or deleted: the caches no longer hold them, so
// kube2lb reads them to clear what it published.
func TestStatusServiceLeavesTheCaches(t *testing.T) {
	f := newFakeStatusAPI(lbService("ns", "a"), lbService("ns", "b"), lbService("ns", "c"), lbService("ns", "d"))
	p, _ := newTestPublisher(f, "192.0.2.1")
	all := []string{"ns/a", "ns/b", "ns/c", "ns/d"}
	if err := p.reconcile(context.Background(), f.snapshot(), all); err != nil {
		t.Fatal(err)
	}
	before := len(f.written())

	// a: still published as kube2lb wrote it → cleared. b: deleted.
	// c: another controller wrote its own since → left alone. d: still
	// in the caches.
	c := f.snapshot().Services[2]
	c.Status.LoadBalancer.Ingress = []kubeapi.LoadBalancerIngress{{IP: "203.0.113.1"}}
	f.put(c)
	f.remove("ns/b")
	snap := f.snapshot()
	snap.Services = snap.Services[len(snap.Services)-1:] // only ns/d is in the caches
	if err := p.reconcile(context.Background(), snap, []string{"ns/d"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ns/a cleared"}, f.written()[before:]); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	// Each is read once and then forgotten.
	gets := f.gets
	if err := p.reconcile(context.Background(), snap, []string{"ns/d"}); err != nil {
		t.Fatal(err)
	}
	if f.gets != gets || len(f.written()) != before+1 {
		t.Errorf("second reconcile: %d more reads, writes %q", f.gets-gets, f.written()[before:])
	}
}

// TestStatusTwoInstances runs two publishers with the same flags against
// one API: they converge after a single write, and a change that both see
// makes neither write again.
func TestStatusTwoInstances(t *testing.T) {
	f := newFakeStatusAPI(lbService("ns", "web"), lbService("ns", "api"))
	a, ca := newTestPublisher(f, "192.0.2.2", "192.0.2.1")
	b, cb := newTestPublisher(f, "192.0.2.1", "192.0.2.2")
	a.ips, b.ips = []string{"192.0.2.1", "192.0.2.2"}, []string{"192.0.2.1", "192.0.2.2"} // as parseIPList sorts them
	served := []string{"ns/api", "ns/web"}

	// Both read the same state and write at once: one of each pair of
	// writes is refused as stale.
	snap := f.snapshot()
	if err := a.reconcile(context.Background(), snap, served); err != nil {
		t.Fatal(err)
	}
	if err := b.reconcile(context.Background(), snap, served); err == nil {
		t.Error("b's stale writes succeeded")
	}
	for range 3 {
		for _, p := range []*statusPublisher{b, a} {
			if err := p.reconcile(context.Background(), f.snapshot(), served); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := len(f.written()); got != 2 {
		t.Errorf("%d writes, want 2: %q", got, f.written())
	}
	if ca["published"] != 2 || cb["conflict"] != 2 || cb["published"] != 0 {
		t.Errorf("a %v, b %v", ca, cb)
	}
	// An unrelated change of a service: both reconcile, neither writes.
	svc := f.snapshot().Services[0]
	svc.Metadata.Labels = kubeapi.Pairs{{Key: "touched", Value: "yes"}}
	f.put(svc)
	for _, p := range []*statusPublisher{a, b} {
		if err := p.reconcile(context.Background(), f.snapshot(), served); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(f.written()); got != 2 {
		t.Errorf("after an unrelated change: %d writes, want 2", got)
	}
}

func TestStatusErrors(t *testing.T) {
	f := newFakeStatusAPI(lbService("ns", "web"))
	f.failWith = &kubeapi.StatusError{Code: http.StatusForbidden, Reason: "Forbidden", Op: "patch services/status ns/web", Message: "no"}
	var logs syncBuffer
	p, c := newTestPublisher(f, "192.0.2.1")
	p.log = slog.New(slog.NewTextHandler(&logs, nil))
	for range 3 {
		if err := p.reconcile(context.Background(), f.snapshot(), []string{"ns/web"}); err == nil {
			t.Fatal("no error")
		}
	}
	if c["error"] != 3 {
		t.Errorf("counts %v", c)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings for one repeated error, want 1:\n%s", n, logs.String())
	}
	f.failWith = nil
	if err := p.reconcile(context.Background(), f.snapshot(), []string{"ns/web"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ns/web 192.0.2.1"}, f.written()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
}

// TestStatusRetried checks that the run loop retries a failed write
// without any further change of the cluster.
func TestStatusRetried(t *testing.T) {
	f := newFakeStatusAPI(lbService("ns", "web"))
	f.failWith = &kubeapi.StatusError{Code: http.StatusInternalServerError, Message: "etcd away"}
	p, _ := newTestPublisher(f, "192.0.2.1")
	p.retry = 10 * time.Millisecond
	runPublisher(t, p)
	handWork(p, f)
	waitFor(t, "the first attempt", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.patches > 0 })
	f.mu.Lock()
	f.failWith = nil
	f.mu.Unlock()
	// p.retry later, without a new update:
	waitFor(t, "the retry", func() bool { return len(f.written()) == 1 })
}

// TestStatusRetriedAfterStaleWake checks that a wake whose work an earlier
// receive took (update stores its work and wakes while the loop is between
// its receive and its read of the work) does not cancel the retry of a
// failed write.
func TestStatusRetriedAfterStaleWake(t *testing.T) {
	f := newFakeStatusAPI(lbService("ns", "web"))
	f.failWith = &kubeapi.StatusError{Code: http.StatusInternalServerError, Message: "etcd away"}
	p, _ := newTestPublisher(f, "192.0.2.1")
	// Long enough that the loop takes the stale wake before the retry
	// is due: it would not tell the fix otherwise.
	p.retry = time.Second
	// At the first failure, on the loop's goroutine before it arms the
	// retry: the stale wake, and the API answering again.
	first := true
	p.count = func(r string) {
		if r == "error" && first {
			first = false
			p.wake <- struct{}{}
			f.mu.Lock()
			f.failWith = nil
			f.mu.Unlock()
		}
	}
	runPublisher(t, p)
	handWork(p, f)
	waitFor(t, "the retry", func() bool { return len(f.written()) == 1 })
}

// runPublisher runs p's loop until the test ends.
func runPublisher(t *testing.T, p *statusPublisher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// handWork hands p what a render would: f's services, ns/web served.
func handWork(p *statusPublisher, f *fakeStatusAPI) {
	p.mu.Lock()
	p.pending = &statusWork{snap: f.snapshot(), served: []string{"ns/web"}}
	p.mu.Unlock()
	p.wake <- struct{}{}
}

func TestDaemonPublishesStatus(t *testing.T) {
	refuse := filepath.Join(t.TempDir(), "refuse")
	td := newTestDaemon(t, "-wait", "0", "-check", "test ! -e "+refuse)
	f := newFakeStatusAPI(lbService("default", "web"))
	p, _ := newTestPublisher(f, "192.0.2.1")
	p.count = func(r string) { td.metrics.statusUpdates.inc(r) }
	td.status = p
	td.src.mu.Lock()
	td.src.snap = f.snapshot()
	td.src.mu.Unlock()
	td.start(t, nil)
	waitFor(t, "status published", func() bool { return len(f.written()) == 1 })

	// A failing apply (check refused) publishes nothing.
	if err := os.WriteFile(refuse, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.put(lbService("default", "api"))
	td.src.mu.Lock()
	td.src.snap = f.snapshot()
	td.src.mu.Unlock()
	td.src.signal()
	waitFor(t, "the refused apply", func() bool { return td.metrics.checkFailures.get() > 0 })
	if err := os.Remove(refuse); err != nil {
		t.Fatal(err)
	}
	td.src.signal()
	waitFor(t, "status of the second service", func() bool { return len(f.written()) == 2 })
	if diff := cmp.Diff([]string{"default/web 192.0.2.1", "default/api 192.0.2.1"}, f.written()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	var out strings.Builder
	td.metrics.write(&out, time.Now())
	for _, want := range []string{`kube2lb_status_updates_total{result="published"} 2`, "kube2lb_hostname_conflicts 0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestParseIPList(t *testing.T) {
	got, err := parseIPList(" 192.0.2.2,2001:DB8::1,::ffff:192.0.2.1,192.0.2.2 ")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", ",", "192.0.2.300", "fe80::1%eth0", "lb.example.com"} {
		if _, err := parseIPList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, args := range [][]string{
		{"-publish-ip", "192.0.2.1"},
		{"-publish-status", "-publish-ip", "nope"},
		{"-load-balancer-class", "a b"},
	} {
		if _, err := parseFlags(append([]string{"-template", "t", "-config", "c"}, args...), io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	o, err := parseFlags([]string{"-template", "t", "-config", "c", "-publish-status", "-publish-ip", "192.0.2.1", "-load-balancer-class", "example.com/lb"}, io.Discard)
	if err != nil || !o.publishStatus || o.loadBalancerClass != "example.com/lb" || len(o.publishIPs) != 1 {
		t.Errorf("options %+v, %v", o, err)
	}
}

func TestDaemonPublishesStatusOnlyOnceNotified(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "lb-not-ready")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The notifier fails while blocker exists: a load balancer that does
	// not reload yet.
	td := newTestDaemon(t, "-wait", "0", "-notify", "command:test ! -e "+blocker)
	api := newFakeStatusAPI(lbService("ns", "web"))
	td.status, _ = newTestPublisher(api, "192.0.2.1")
	td.src.mu.Lock()
	td.src.snap = api.snapshot()
	td.src.mu.Unlock()
	td.src.signal()
	td.start(t, nil)

	waitFor(t, "failed notifications", func() bool { st := td.chain.Stats(); return st[1].Failures >= 2 })
	if w := api.written(); len(w) != 0 {
		t.Fatalf("status written before the load balancer was notified: %q", w)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "status published after the notification", func() bool { return len(api.written()) == 1 })
}

// TestStatusFailureOnce: the warning of a failed write says "retrying"
// only where it is retried: not with -once.
func TestStatusFailureOnce(t *testing.T) {
	for _, once := range []bool{false, true} {
		var logs strings.Builder
		p := newStatusPublisher(nil, nil, time.Minute, slog.New(slog.NewTextHandler(&logs, nil)), func(string) {})
		p.once = once
		p.failed("ns/svc", "published", errors.New("forbidden"))
		want := `msg="load balancer status not published; retrying"`
		if once {
			want = `msg="load balancer status not published"`
		}
		if !strings.Contains(logs.String(), want+" ") {
			t.Errorf("once=%v: logs %q, want %s", once, logs.String(), want)
		}
	}
}
