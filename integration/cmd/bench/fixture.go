package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/session"
)

// fixtureVersion changes whenever the generator below changes what it
// creates, so that a saved etcd data directory is not reused for another
// fixture.
const fixtureVersion = 2

// fixture describes the generated cluster. Its hash (with fixtureVersion
// and the control plane's build) names the saved etcd data directory.
type fixture struct {
	Version     int
	Services    int // in Namespaces namespaces bench-NN; 1 to 3 ports each
	Namespaces  int
	Nodes       int // node-NNNN; the first SmallPool carry poolLabel=small
	SmallPool   int
	Endpoints   int // ready endpoints of each service's one EndpointSlice
	NodePortMin int // node ports are handed out in order from here
	Binaries    string
	// ClusterIP Services, each with an EndpointSlice of Endpoints ready
	// endpoints, alongside (-clusterip): a real cluster's, which kube2lb
	// does not render. Left out of the hash when 0, so that the issue's
	// fixture keeps its saved data.
	ClusterIP int `json:",omitempty"`
}

const (
	poolLabel = "bench.kube2lb.io/pool"
	// nodePortRange is kube-apiserver's --service-node-port-range: the
	// default 30000-32767 cannot hold 10,000 services' node ports.
	nodePortRange = "30000-64999"
	// Node ports of the services created while measuring changes start here.
	changeNodePortMin = 56000
)

// apiServerFlags are the flags the fixture needs; they are part of its hash.
var apiServerFlags = []string{
	"--service-node-port-range=" + nodePortRange,
	"--service-cluster-ip-range=10.96.0.0/12",
}

func (f fixture) hash() string {
	b, _ := json.Marshal(struct {
		F     fixture
		Flags []string
	}{f, apiServerFlags})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func namespace(i int) string { return fmt.Sprintf("bench-%02d", i) }

// serviceName and serviceNamespace place service i.
func serviceName(i int) string                  { return fmt.Sprintf("svc-%05d", i) }
func (f fixture) serviceNamespace(i int) string { return namespace(i % f.Namespaces) }

type job struct {
	r   cp.Resource
	ns  string
	obj cp.Object
}

// objects returns every object of the fixture but the namespaces, in the
// order they are created.
func (f fixture) objects() []job {
	var jobs []job
	for i := range f.Nodes {
		labels := cp.Object{"kubernetes.io/hostname": fmt.Sprintf("node-%04d", i)}
		if i < f.SmallPool {
			labels[poolLabel] = "small"
		}
		jobs = append(jobs, job{cp.Nodes, "", cp.Object{
			"apiVersion": "v1", "kind": "Node",
			"metadata": cp.Object{"name": fmt.Sprintf("node-%04d", i), "labels": labels},
			"status": cp.Object{
				"addresses": []cp.Object{
					{"type": "InternalIP", "address": fmt.Sprintf("172.16.%d.%d", i>>8, i&255)},
					{"type": "Hostname", "address": fmt.Sprintf("node-%04d", i)},
				},
				"conditions": []cp.Object{{"type": "Ready", "status": "True"}},
			},
		}})
	}
	nodePort := f.NodePortMin
	next := func() int { nodePort++; return nodePort - 1 }
	for i := range f.Services {
		svc, slice := f.service(i, next)
		jobs = append(jobs, job{cp.Services, f.serviceNamespace(i), svc}, job{cp.EndpointSlices, f.serviceNamespace(i), slice})
	}
	for i := range f.ClusterIP {
		svc, slice := f.clusterIPService(i)
		jobs = append(jobs, job{cp.Services, f.serviceNamespace(i), svc}, job{cp.EndpointSlices, f.serviceNamespace(i), slice})
	}
	return jobs
}

// clusterIPName names ClusterIP service i.
func clusterIPName(i int) string { return fmt.Sprintf("cip-%05d", i) }

// clusterIPService returns ClusterIP service i, with one port, and its
// EndpointSlice (addresses in 10.0.0.0/9).
func (f fixture) clusterIPService(i int) (svc, slice cp.Object) {
	name, ns := clusterIPName(i), f.serviceNamespace(i)
	svc = cp.Object{
		"apiVersion": "v1", "kind": "Service",
		"metadata": cp.Object{"name": name, "namespace": ns, "labels": cp.Object{"app": name}},
		"spec": cp.Object{"type": "ClusterIP", "selector": cp.Object{"app": name},
			"ports": []cp.Object{{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}}},
	}
	return svc, f.endpointSlice(name, ns, 0, i*f.Endpoints, []cp.Object{{"name": "http", "protocol": "TCP", "port": 8080}})
}

// endpointSlice returns the EndpointSlice of service name: its ready
// endpoints are numbered from first, their addresses from base+first in
// 10.0.0.0/8, their nodes from first.
func (f fixture) endpointSlice(name, ns string, base, first int, ports []cp.Object) cp.Object {
	var endpoints []cp.Object
	for j := range f.Endpoints {
		ip := base + first + j
		endpoints = append(endpoints, cp.Object{
			"addresses":  []string{fmt.Sprintf("10.%d.%d.%d", ip>>16&255, ip>>8&255, ip&255)},
			"conditions": cp.Object{"ready": true},
			"nodeName":   fmt.Sprintf("node-%04d", (first+j)%f.Nodes),
		})
	}
	return cp.Object{
		"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
		"metadata":    cp.Object{"name": name + "-bench", "namespace": ns, "labels": cp.Object{"kubernetes.io/service-name": name}},
		"addressType": "IPv4",
		"endpoints":   endpoints,
		"ports":       ports,
	}
}

// portSpecs are the ports a service may have: every service has the
// first, i%3+1 of them in all.
var portSpecs = []struct {
	name      string
	port, pod int
}{{"http", 80, 8080}, {"https", 443, 8443}, {"admin", 9000, 9000}}

// service returns service i and its EndpointSlice. Odd services are
// LoadBalancers (one in five of them with externalTrafficPolicy Local),
// even ones NodePorts; one in 4 has kube2lb/external-domains, one in 5
// kube2lb/port-mode (https as tcp), one in 6 kube2lb/backend-timeout.
func (f fixture) service(i int, nodePort func() int) (svc, slice cp.Object) {
	name, ns := serviceName(i), f.serviceNamespace(i)
	annotations := cp.Object{}
	if i%4 == 0 {
		annotations["kube2lb/external-domains"] = fmt.Sprintf("%s.%s.bench.example.com,%s-alt.bench.example.com", name, ns, name)
	}
	if i%5 == 0 {
		annotations["kube2lb/port-mode"] = `{"https": "tcp"}`
	}
	if i%6 == 0 {
		annotations["kube2lb/backend-timeout"] = `{"http": 30000}`
	}
	var ports, slicePorts []cp.Object
	for _, p := range portSpecs[:i%3+1] {
		ports = append(ports, cp.Object{"name": p.name, "protocol": "TCP", "port": p.port, "targetPort": p.pod, "nodePort": nodePort()})
		slicePorts = append(slicePorts, cp.Object{"name": p.name, "protocol": "TCP", "port": p.pod})
	}
	spec := cp.Object{"type": "NodePort", "selector": cp.Object{"app": name}, "ports": ports}
	if i%2 == 1 {
		spec["type"] = "LoadBalancer"
		if i%10 == 9 {
			spec["externalTrafficPolicy"] = "Local"
			spec["healthCheckNodePort"] = nodePort()
		}
	}
	svc = cp.Object{
		"apiVersion": "v1", "kind": "Service",
		"metadata": cp.Object{"name": name, "namespace": ns, "labels": cp.Object{"app": name}, "annotations": annotations},
		"spec":     spec,
	}
	return svc, f.endpointSlice(name, ns, 128<<16, i*f.Endpoints, slicePorts) // 10.128.0.0/9
}

// load creates the fixture as admin with concurrency requests in flight.
func (f fixture) load(ctx context.Context, admin *cp.User, concurrency int) error {
	for i := range f.Namespaces {
		ns := cp.Object{"apiVersion": "v1", "kind": "Namespace", "metadata": cp.Object{"name": namespace(i)}}
		if err := create(ctx, admin, job{cp.Namespaces, "", ns}); err != nil {
			return err
		}
	}
	jobs := f.objects()
	// The oldest service on a listener sets its mode, and creation
	// timestamps have a resolution of one second (ties go to the first
	// namespace/name): created alone, a second before the others, service
	// 1 (80 and 443, both http) makes every run's listeners the same.
	// Under a concurrent load the oldest would be whichever came first,
	// and 443 would be tcp (service 50's mode) in some fixtures: 4,000
	// backends fewer.
	lead := f.Nodes + 2*1 // objects() lists the nodes, then each service and its slice
	for _, j := range jobs[lead : lead+2] {
		if err := create(ctx, admin, j); err != nil {
			return err
		}
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	jobs = slices.Delete(jobs, lead, lead+2)
	var (
		wg      sync.WaitGroup
		next    atomic.Int64
		errOnce sync.Once
		first   error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	begin := time.Now()
	for range concurrency {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= len(jobs) || ctx.Err() != nil {
					return
				}
				if n > 0 && n%2000 == 0 {
					logf("fixture: %d of %d objects created (%s)", n, len(jobs), time.Since(begin).Round(time.Second))
				}
				if err := create(ctx, admin, jobs[n]); err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// create creates one object; an object that exists already (a load that
// was interrupted and resumed) is fine, overload is retried.
func create(ctx context.Context, u *cp.User, j job) error {
	for attempt := 1; ; attempt++ {
		err := u.Do(ctx, http.MethodPost, j.r.Path(j.ns, ""), j.obj, nil)
		var apiErr *cp.APIError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &apiErr) && apiErr.Code == http.StatusConflict:
			return nil
		case attempt < 5 && (!errors.As(err, &apiErr) || apiErr.Code == http.StatusTooManyRequests || apiErr.Code >= 500):
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		default:
			return err
		}
	}
}

// savedFixture returns the directory holding the saved etcd data of f,
// creating it (start an empty control plane, load, stop it, copy its etcd
// data directory) when it does not exist yet.
func savedFixture(s *session.Session, f fixture, cacheRoot string, concurrency int) string {
	dir := filepath.Join(cacheRoot, "bench", f.hash())
	saved := filepath.Join(dir, "etcd")
	if _, err := os.Stat(saved); err == nil {
		logf("fixture: reusing %s", saved)
		return saved
	}
	logf("fixture: %s not saved yet: loading %d services, %d endpoint slices, %d nodes (paid once)", f.hash(), f.Services+f.ClusterIP, f.Services+f.ClusterIP, f.Nodes)
	c := cp.StartWith(s, cp.Options{APIServerFlags: apiServerFlags})
	begin := time.Now()
	if err := f.load(s.Context(), c.Admin, concurrency); err != nil {
		s.Fatalf("load fixture: %v", err)
	}
	logf("fixture: loaded in %s", time.Since(begin).Round(time.Second))
	c.Shutdown(s)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.Fatal(err)
	}
	tmp := saved + ".tmp"
	os.RemoveAll(tmp)
	if out, err := exec.Command("cp", "-a", c.EtcdDir(), tmp).CombinedOutput(); err != nil {
		s.Fatalf("save etcd data: %v: %s", err, out)
	}
	def, _ := json.MarshalIndent(f, "", "  ")
	os.WriteFile(filepath.Join(dir, "fixture.json"), def, 0o644)
	if err := os.Rename(tmp, saved); err != nil {
		s.Fatal(err)
	}
	logf("fixture: saved in %s", saved)
	return saved
}

// copyDir copies the saved etcd data to a fresh directory for one run,
// keeping modes (etcd wants 0700).
func copyDir(s *session.Session, src string) string {
	dst := filepath.Join(s.TempDir(), "etcd")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		s.Fatalf("copy etcd data: %v: %s", err, out)
	}
	return dst
}
