package lb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/kube2lb"
)

// refusedDomain is an external domain that every test's -check refuses,
// besides what the load balancer's own validator refuses: a service
// carrying it makes every render fail the check while it exists.
const refusedDomain = "refused.example.test"

// world is one test's cluster and addresses. Each test has its own
// 127.<r>.<subnet>.0/24, r picked at random for each run: the load
// balancer listens on .1, nodes and pods are other hosts of it, so tests
// never share an address, not even with the same tests run at the same
// time by another process (load balancers bind with SO_REUSEPORT: two on
// one address would share its connections).
type world struct {
	cp     *cp.ControlPlane
	ns     string // the namespace of the test's services
	prefix string // "127.<r>.<subnet>."
	dir    string // kube2lb's and the load balancer's files

	kube2lb *kube2lb.Process
	counter string // the counting notifier's file

	uids map[string]string // of the EndpointSlices written to etcd, by name
}

func newWorld(t *testing.T, ns string, subnet int) *world {
	t.Helper()
	w := &world{cp: cp.Start(t), ns: ns, prefix: freePrefix(t, subnet), dir: t.TempDir()}
	w.counter = filepath.Join(w.dir, "notified")
	t.Logf("addresses: %s0/24, the load balancer on %s", w.prefix, w.lbIP())
	w.cp.Admin.Create(t, cp.Namespaces, "", cp.Object{"metadata": cp.Object{"name": ns}})
	return w
}

// freePrefix picks 127.<r>.<subnet>. with r at random, such that nothing
// listens on the load balancer's ports of its .1 right now.
func freePrefix(t *testing.T, subnet int) string {
	t.Helper()
	var err error
	for range 20 {
		prefix := fmt.Sprintf("127.%d.%d.", 64+mrand.IntN(190), subnet)
		if err = bindable(prefix+"1", httpPort, tcpPort); err == nil {
			return prefix
		}
	}
	t.Fatalf("no free 127.x.%d.1 for the load balancer: %v", subnet, err)
	return ""
}

// bindable reports whether ports of ip can be listened on.
func bindable(ip string, ports ...int) error {
	for _, p := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err != nil {
			return err
		}
		ln.Close()
	}
	return nil
}

// ip returns the address of host in the test's /24.
func (w *world) ip(host int) string { return w.prefix + strconv.Itoa(host) }

// lbIP is where the load balancer listens: kube2lb's -default-lb-ip.
func (w *world) lbIP() string { return w.ip(1) }

func (w *world) lbAddr(port int) string { return net.JoinHostPort(w.lbIP(), strconv.Itoa(port)) }

// nodeLabel selects the test's nodes (-node-selector), so that a kind
// cluster's own node is no backend.
const nodeLabel = "kube2lb.test/lb"

// addNode creates a Ready node with an InternalIP.
func (w *world) addNode(t *testing.T, name, ip string) {
	t.Helper()
	w.cp.Admin.Create(t, cp.Nodes, "", cp.Object{
		"metadata": cp.Object{"name": name, "labels": cp.Object{nodeLabel: w.ns}},
		"status": cp.Object{
			"addresses":  []cp.Object{{"type": "InternalIP", "address": ip}},
			"conditions": []cp.Object{{"type": "Ready", "status": "True"}},
		},
	})
}

// port is one port of a test service.
type port struct {
	name       string
	port       int
	targetPort int
}

// addService creates a service of type typ with annotations in the test's
// namespace and returns the node port of each of its ports, in order.
func (w *world) addService(t *testing.T, name, typ string, annotations map[string]string, ports ...port) []int {
	t.Helper()
	return w.addServiceIn(t, w.ns, name, typ, annotations, ports...)
}

// addNamespace creates another namespace than the test's, e.g. for another
// team's services.
func (w *world) addNamespace(t *testing.T, ns string) {
	t.Helper()
	w.cp.Admin.Create(t, cp.Namespaces, "", cp.Object{"metadata": cp.Object{"name": ns}})
}

// addServiceIn is addService in namespace ns.
func (w *world) addServiceIn(t *testing.T, ns, name, typ string, annotations map[string]string, ports ...port) []int {
	t.Helper()
	var ps []cp.Object
	for _, p := range ports {
		target := p.targetPort
		if target == 0 {
			target = 8080
		}
		ps = append(ps, cp.Object{"name": p.name, "port": p.port, "protocol": "TCP", "targetPort": target})
	}
	obj := w.cp.Admin.Create(t, cp.Services, ns, cp.Object{
		"metadata": cp.Object{"name": name, "annotations": annotations},
		"spec":     cp.Object{"type": typ, "ports": ps, "selector": cp.Object{"app": name}},
	})
	var created struct {
		Spec struct {
			Ports []struct {
				NodePort int `json:"nodePort"`
			} `json:"ports"`
		} `json:"spec"`
	}
	j, _ := json.Marshal(obj)
	if err := json.Unmarshal(j, &created); err != nil || len(created.Spec.Ports) != len(ports) {
		t.Fatalf("service %s: unexpected answer %s (%v)", name, j, err)
	}
	var nodePorts []int
	for _, p := range created.Spec.Ports {
		nodePorts = append(nodePorts, p.NodePort)
	}
	return nodePorts
}

// kube2lbArgs are the flags of every run: the minimal user, the template,
// the configuration file, the load balancer's check (plus the refused
// domain), the test's addresses and nodes, a short debounce.
func (w *world) kube2lbArgs(template, config, check string) []string {
	return []string{
		"-kubecfg", w.cp.Minimal.Kubeconfig,
		"-template", template,
		"-config", config,
		"-check", check + ` && ! grep -q ` + refusedDomain + ` "$KUBE2LB_CANDIDATE"`,
		"-host-checks=false",
		"-default-lb-ip", w.lbIP(),
		"-node-selector", nodeLabel + "=" + w.ns,
		"-wait", "100ms:1s",
		"-log-level", "debug",
	}
}

// firstConfig renders the first configuration with `kube2lb -once` (no
// notifier: the load balancer is started on it afterwards).
func (w *world) firstConfig(t *testing.T, args []string) {
	t.Helper()
	r := kube2lb.Run(t, append(args, "-once")...)
	if r.Code != 0 {
		t.Fatalf("kube2lb -once: exit %d; logs:\n%s", r.Code, r.Logs)
	}
}

// run starts kube2lb notifying the load balancer and counting
// notifications. Its first render equals the file -once wrote, so it
// notifies nothing until the cluster changes.
func (w *world) run(t *testing.T, args []string, notifier string) {
	t.Helper()
	w.kube2lb = kube2lb.Start(t, append(args, "-notify", notifier, "-notify", kube2lb.CountingNotifier(w.counter))...)
}

// checkFailures counts the applies kube2lb refused so far.
func (w *world) checkFailures() int {
	return strings.Count(w.kube2lb.Logs(), "apply failed; the last good configuration stays")
}

// expectRefused makes change, which must produce a render that the check
// refuses, and checks that it reached neither the file nor the load
// balancer: kube2lb logs the refusal, the file keeps its bytes, nothing is
// notified, and the load balancer still serves (stillServes passes) while
// the refused routes (refusedOK) are not served. lb must still run.
// When reason is not empty, the refusal kube2lb logs must contain it.
func (w *world) expectRefused(t *testing.T, config string, lb *Process, reason string, change func(), stillServes, refusedOK func(t *testing.T)) {
	t.Helper()
	before, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	failures := w.checkFailures()
	logged := len(w.kube2lb.Logs())
	notified := kube2lb.CountLines(t, w.counter)
	change()
	deadline := time.Now().Add(kube2lb.Deadline)
	for w.checkFailures() == failures {
		if w.kube2lb.Exited() || time.Now().After(deadline) {
			t.Fatalf("kube2lb did not refuse the change (exited: %v); logs:\n%s", w.kube2lb.Exited(), w.kube2lb.Logs())
		}
		time.Sleep(pollInterval)
	}
	if logs := w.kube2lb.Logs()[logged:]; !strings.Contains(logs, reason) {
		t.Fatalf("kube2lb refused the change, but not because of %q; its logs since the change:\n%s", reason, logs)
	}
	after, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("a refused render changed %s:\n%s", config, after)
	}
	if n := kube2lb.CountLines(t, w.counter); n != notified {
		t.Fatalf("a refused render notified: %d notifications, %d before", n, notified)
	}
	stillServes(t)
	refusedOK(t)
	if lb.Exited() {
		t.Fatalf("%s exited after a refused render; its output:\n%s", lb.Name, lb.LogTail(40))
	}
}

// reached is what one request got: a backend's name, or why none answered.
type reached struct {
	backend string // "" when no backend answered
	why     string
}

func (r reached) String() string {
	if r.backend != "" {
		return r.backend
	}
	return "no backend (" + r.why + ")"
}

func httpProbe(addr, host string) func(context.Context) reached {
	return func(ctx context.Context) reached {
		resp, err := Get(ctx, addr, host)
		switch {
		case err != nil:
			return reached{why: err.Error()}
		case resp.Status != http.StatusOK || !strings.Contains(resp.Body, "@"):
			return reached{why: fmt.Sprintf("HTTP %d", resp.Status)}
		case resp.Header.Get(SeenHostHeader) != host:
			// Every example passes the Host header on as the client sent it.
			return reached{why: fmt.Sprintf("%s saw Host %q, not %q", strings.TrimSpace(resp.Body), resp.Header.Get(SeenHostHeader), host)}
		}
		return reached{backend: strings.TrimSpace(resp.Body)}
	}
}

func tcpProbe(addr string) func(context.Context) reached {
	return func(ctx context.Context) reached {
		line, err := ReadTCP(ctx, addr)
		if err != nil {
			return reached{why: err.Error()}
		}
		if !strings.Contains(line, "@") {
			return reached{why: fmt.Sprintf("got %q", line)}
		}
		return reached{backend: line}
	}
}

// expect polls probe until a round of requests reaches exactly the
// backends in want, each of them at least once and no other; with want
// empty, until a request reaches no backend. Reloads are asynchronous, so
// rounds are repeated until Deadline.
func expect(t *testing.T, what string, probe func(context.Context) reached, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(kube2lb.Deadline)
	var last []reached
	for {
		last = round(probe, want)
		if roundOK(last, want) {
			t.Logf("%s: %s", what, summary(last))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want %s; the last requests reached %v", what, describe(want), last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// expectOne polls probe until three rounds of requests in a row reach a
// single backend, the same one of candidates: the test's one client kept
// on one of them (a balancer that picks at random among equals, as
// Caddy's least_conn, sends 36 requests to one of two in 2^35 tries).
func expectOne(t *testing.T, what string, probe func(context.Context) reached, candidates ...string) {
	t.Helper()
	deadline := time.Now().Add(kube2lb.Deadline)
	streak, on := 0, ""
	for {
		last := round(probe, candidates)
		if b := last[0].backend; roundOK(last, []string{b}) && slices.Contains(candidates, b) {
			if b != on {
				streak, on = 0, b
			}
			if streak++; streak == 3 {
				t.Logf("%s: %s, three times", what, summary(last))
				return
			}
			continue
		}
		streak = 0
		if time.Now().After(deadline) {
			t.Fatalf("%s: want every request on the same one of %v; the last requests reached %v", what, candidates, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// summary counts the answers of a round: "web@node-a ×6, web@node-b ×6".
func summary(got []reached) string {
	counts := map[string]int{}
	var order []string
	for _, r := range got {
		k := r.String()
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	slices.Sort(order)
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%s ×%d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

func describe(want []string) string {
	if len(want) == 0 {
		return "no backend"
	}
	return "exactly " + strings.Join(want, ", ")
}

// round sends enough requests to see every backend of want under any
// balancing, and stops at the first wrong answer.
func round(probe func(context.Context) reached, want []string) []reached {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 4*len(want) + 4
	if len(want) == 0 {
		n = 1
	}
	var got []reached
	for range n {
		r := probe(ctx)
		got = append(got, r)
		if len(want) == 0 || !slices.Contains(want, r.backend) {
			break
		}
	}
	return got
}

func roundOK(got []reached, want []string) bool {
	if len(want) == 0 {
		return len(got) == 1 && got[0].backend == ""
	}
	seen := map[string]bool{}
	for _, r := range got {
		if !slices.Contains(want, r.backend) {
			return false
		}
		seen[r.backend] = true
	}
	return len(seen) == len(want)
}

// The EndpointSlices of the endpoints tests point at pods played by
// servers on 127.x.x.x, but the API server refuses loopback endpoint
// addresses ("may not be in the loopback range"). The tests therefore
// write their EndpointSlices into etcd themselves, as JSON (the API
// server reads JSON from storage as well as protobuf), under the key the
// API server uses: it serves and watches them like any other.

// endpoint is one pod of an EndpointSlice.
type endpoint struct {
	pod   string
	ip    string
	ready bool
}

// putEndpointSlice creates or replaces an EndpointSlice of service svc with
// one port, bypassing the API server's validation (local provider only).
func (w *world) putEndpointSlice(t *testing.T, name, svc string, p port, eps ...endpoint) {
	t.Helper()
	if w.cp.Provider != "local" {
		t.Skipf("EndpointSlices with loopback addresses are written to etcd: needs KUBE2LB_E2E_PROVIDER=local (this is %s)", w.cp.Provider)
	}
	endpoints := []cp.Object{}
	for _, e := range eps {
		endpoints = append(endpoints, cp.Object{
			"addresses":  []string{e.ip},
			"conditions": cp.Object{"ready": e.ready, "serving": e.ready, "terminating": false},
			"targetRef":  cp.Object{"kind": "Pod", "namespace": w.ns, "name": e.pod},
		})
	}
	slice := cp.Object{
		"apiVersion": "discovery.k8s.io/v1",
		"kind":       "EndpointSlice",
		"metadata": cp.Object{
			"name":              name,
			"namespace":         w.ns,
			"uid":               w.uid(name),
			"creationTimestamp": "2026-01-01T00:00:00Z",
			"labels":            cp.Object{"kubernetes.io/service-name": svc},
		},
		"addressType": "IPv4",
		"endpoints":   endpoints,
		"ports":       []cp.Object{{"name": p.name, "port": p.targetPort, "protocol": "TCP"}},
	}
	value, err := json.Marshal(slice)
	if err != nil {
		t.Fatal(err)
	}
	w.etcd(t, "/v3/kv/put", map[string]any{
		"key":   base64.StdEncoding.EncodeToString([]byte(w.sliceKey(name))),
		"value": base64.StdEncoding.EncodeToString(value),
	})
}

// deleteEndpointSlice removes an EndpointSlice written by putEndpointSlice.
func (w *world) deleteEndpointSlice(t *testing.T, name string) {
	t.Helper()
	w.etcd(t, "/v3/kv/deleterange", map[string]any{"key": base64.StdEncoding.EncodeToString([]byte(w.sliceKey(name)))})
}

// uid returns the uid of the EndpointSlice name, the same at every write.
func (w *world) uid(name string) string {
	if w.uids == nil {
		w.uids = map[string]string{}
	}
	if u, ok := w.uids[name]; ok {
		return u
	}
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant
	u := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
	w.uids[name] = u
	return u
}

func (w *world) sliceKey(name string) string {
	return "/registry/endpointslices/" + w.ns + "/" + name
}

func (w *world) etcd(t *testing.T, path string, body any) {
	t.Helper()
	j, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cp.EtcdURL+path, bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("etcd %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("etcd %s: %s", path, resp.Status)
	}
}
