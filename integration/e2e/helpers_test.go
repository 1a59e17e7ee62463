package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/kube2lb"
)

// plainTemplate renders the original model without endpoints: one line
// per service port, one per listening port, and the backend nodes.
const plainTemplate = `
{{- range .Services }}
svc {{ .Namespace }}/{{ .Name }} type={{ .Type }} port={{ .Port }} nodeport={{ .NodePort }} timeout={{ .Timeout }} external={{ range .External }}{{ . }},{{ end }}
{{- end }}
{{- range .Ports }}
listen {{ . }}
{{- end }}
nodes{{ range .Nodes }} {{ . }}={{ .Address }}{{ end }}
`

// endpointsTemplate is plainTemplate with each service port's endpoints.
const endpointsTemplate = `
{{- range .Services }}
svc {{ .Namespace }}/{{ .Name }} type={{ .Type }} port={{ .Port }} endpoints={{ range .Endpoints }}{{ . }},{{ end }}
{{- end }}
nodes{{ range .Nodes }} {{ . }}{{ end }}
`

// env is one kube2lb run: its files and process.
type env struct {
	cp      *controlplane.ControlPlane
	dir     string
	tmpl    string // the template file
	out     string // -config
	counter string // the counting notifier's file
	listen  string // -listen address, "" when not served
	p       *kube2lb.Process
}

// newEnv writes template into a new directory; start runs kube2lb on it.
func newEnv(t *testing.T, cp *controlplane.ControlPlane, template string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{cp: cp, dir: dir, tmpl: filepath.Join(dir, "lb.tmpl"), out: filepath.Join(dir, "lb.cfg"), counter: filepath.Join(dir, "notified")}
	if err := os.WriteFile(e.tmpl, []byte(template), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// args are the flags every run shares: the user's kubeconfig, the
// template, the output, the counting notifier, no host checks.
func (e *env) args(user *controlplane.User, extra ...string) []string {
	a := []string{
		"-kubecfg", user.Kubeconfig,
		"-template", e.tmpl,
		"-config", e.out,
		"-notify", kube2lb.CountingNotifier(e.counter),
		"-host-checks=false",
		"-log-level", "debug",
	}
	if e.cp.Provider != "local" {
		// A real cluster has nodes of its own; see nodeLabel.
		a = append(a, "-node-selector", nodeLabel+"=true")
	}
	return append(a, extra...)
}

// start runs kube2lb as user with e's files and extra flags, serving
// health and metrics on a free port.
func (e *env) start(t *testing.T, user *controlplane.User, extra ...string) *kube2lb.Process {
	t.Helper()
	e.listen = freeAddr(t)
	e.p = kube2lb.Start(t, e.args(user, append([]string{"-listen", e.listen}, extra...)...)...)
	return e.p
}

// wait waits until the output satisfies cond, failing early when kube2lb
// exits.
func (e *env) wait(t *testing.T, what string, cond func(out string) bool) string {
	t.Helper()
	return e.waitWithin(t, kube2lb.Deadline, what, cond)
}

func (e *env) waitWithin(t *testing.T, d time.Duration, what string, cond func(out string) bool) string {
	t.Helper()
	var out string
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile(e.out)
		out = string(b)
		if err == nil && cond(out) {
			return out
		}
		if e.p != nil && e.p.Exited() {
			t.Fatalf("waiting for %s: kube2lb exited (code %d); output:\n%s", what, e.p.ExitCode(), out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not there after %s; output (err %v):\n%s", what, d, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expectNotified waits for n notifications in all and checks there are not
// more. A notification that comes later than the check is caught by the
// next call, since each change is only made once the previous one was
// rendered and notified.
func (e *env) expectNotified(t *testing.T, n int, after string) {
	t.Helper()
	kube2lb.WaitLines(t, e.counter, n)
	if got := kube2lb.CountLines(t, e.counter); got != n {
		t.Fatalf("after %s: %d notifications, want %d (exactly one per rendered change)", after, got, n)
	}
}

// step makes one change, waits until the output shows it, and checks it
// notified exactly once.
func (e *env) step(t *testing.T, notified *int, what string, change func(), cond func(out string) bool) string {
	t.Helper()
	change()
	out := e.wait(t, what, cond)
	*notified++
	e.expectNotified(t, *notified, what)
	return out
}

// line returns the output line starting with prefix, or "".
func line(out, prefix string) string {
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimSuffix(l, "\n")
		}
	}
	return ""
}

// has reports whether out has a line starting with prefix.
func has(out, prefix string) bool { return line(out, prefix) != "" }

// svcLine is the plainTemplate line prefix of a service port.
func svcLine(ns, name string) string { return "svc " + ns + "/" + name + " " }

// service is a Service of type typ with one TCP port per number, named
// http, http-1, ...
func service(name, typ string, ports ...int) controlplane.Object {
	var ps []controlplane.Object
	for i, p := range ports {
		pn := "http"
		if i > 0 {
			pn += "-" + strconv.Itoa(i)
		}
		ps = append(ps, controlplane.Object{"name": pn, "port": p, "protocol": "TCP", "targetPort": 8080})
	}
	return controlplane.Object{
		"metadata": controlplane.Object{"name": name},
		"spec":     controlplane.Object{"type": typ, "ports": ps},
	}
}

// nodeLabel marks the nodes the tests create. On providers other than
// "local" kube2lb only watches those (-node-selector), leaving out the
// cluster's own nodes.
const nodeLabel = "kube2lb-e2e"

// node is a Ready node with an InternalIP.
func node(name, ip string) controlplane.Object {
	return controlplane.Object{
		"metadata": controlplane.Object{"name": name, "labels": controlplane.Object{nodeLabel: "true"}},
		"status": controlplane.Object{
			"addresses":  []controlplane.Object{{"type": "InternalIP", "address": ip}},
			"conditions": []controlplane.Object{{"type": "Ready", "status": "True"}},
		},
	}
}

// readyPatch sets a node's Ready condition.
func readyPatch(ready bool) controlplane.Object {
	status := "False"
	if ready {
		status = "True"
	}
	return controlplane.Object{"status": controlplane.Object{
		"conditions": []controlplane.Object{{"type": "Ready", "status": status, "reason": "E2E", "lastHeartbeatTime": time.Now().UTC().Format(time.RFC3339)}},
	}}
}

// endpointSlice is a slice of service svc with port http (8080) and the
// given ready endpoints.
func endpointSlice(name, svc string, ips ...string) controlplane.Object {
	eps := []controlplane.Object{}
	for _, ip := range ips {
		eps = append(eps, controlplane.Object{"addresses": []string{ip}, "conditions": controlplane.Object{"ready": true}})
	}
	return controlplane.Object{
		"metadata":    controlplane.Object{"name": name, "labels": controlplane.Object{"kubernetes.io/service-name": svc}},
		"addressType": "IPv4",
		"endpoints":   eps,
		"ports":       []controlplane.Object{{"name": "http", "port": 8080, "protocol": "TCP"}},
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

// get fetches http://addr/path and returns the status code and body.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// metric returns the value of the sample whose name and labels are
// exactly series (e.g. `kube2lb_applies_total{result="changed"}`), and
// whether it is there.
func metric(t *testing.T, addr, series string) (float64, bool) {
	t.Helper()
	code, body := get(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("/metrics: %s: %v", sc.Text(), err)
			}
			return v, true
		}
	}
	return 0, false
}

// waitMetric polls series until cond accepts its value (0 when absent).
func waitMetric(t *testing.T, addr, series string, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(kube2lb.Deadline)
	for {
		v, _ := metric(t, addr, series)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			_, body := get(t, addr, "/metrics")
			t.Fatalf("metric %s is %v after %s; /metrics:\n%s", series, v, kube2lb.Deadline, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fileID is what changes when a file is replaced or written.
type fileID struct {
	ino   uint64
	mtime time.Time
	size  int64
}

func (f fileID) String() string {
	return fmt.Sprintf("inode %d mtime %s size %d", f.ino, f.mtime.Format(time.RFC3339Nano), f.size)
}

func statFile(t *testing.T, path string) fileID {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("stat %s: no inode on this system", path)
	}
	return fileID{ino: st.Ino, mtime: fi.ModTime(), size: fi.Size()}
}

// grantEndpointSlices lets user list and watch EndpointSlices.
func grantEndpointSlices(t *testing.T, cp *controlplane.ControlPlane, user *controlplane.User) {
	t.Helper()
	roles := controlplane.Resource{Prefix: "/apis/rbac.authorization.k8s.io/v1", Name: "clusterroles"}
	bindings := controlplane.Resource{Prefix: "/apis/rbac.authorization.k8s.io/v1", Name: "clusterrolebindings"}
	cp.Admin.Create(t, roles, "", controlplane.Object{
		"metadata": controlplane.Object{"name": "e2e-endpointslices"},
		"rules": []controlplane.Object{{
			"apiGroups": []string{"discovery.k8s.io"}, "resources": []string{"endpointslices"}, "verbs": []string{"list", "watch"},
		}},
	})
	subject := controlplane.Object{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user.Name}
	if rest, ok := strings.CutPrefix(user.Name, "system:serviceaccount:"); ok {
		ns, name, _ := strings.Cut(rest, ":")
		subject = controlplane.Object{"kind": "ServiceAccount", "namespace": ns, "name": name}
	}
	cp.Admin.Create(t, bindings, "", controlplane.Object{
		"metadata": controlplane.Object{"name": "e2e-endpointslices"},
		"roleRef":  controlplane.Object{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "e2e-endpointslices"},
		"subjects": []controlplane.Object{subject},
	})
}
