// Package status tests kube2lb acting as a cloud provider's load balancer
// against a real API server: -publish-status (EXTERNAL-IP), two instances
// that must not fight over it, -load-balancer-class, and hostname
// ownership across namespaces.
package status

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/kube2lb"
)

// routesTemplate prints one line per service port and one per server name
// it routes, so that tests read who gets a host name.
const routesTemplate = `
{{- range $s := .Services }}
svc {{ $s.Namespace }}/{{ $s.Name }} type={{ $s.Type }} port={{ $s.Port }} labels={{ range $k, $v := $s.Labels }}{{ $k }}={{ $v }},{{ end }}
{{- range ServerNames $s $.Domain }}
route {{ . }} {{ $s.Port }} {{ $s.Namespace }}/{{ $s.Name }}
{{- end }}
{{- end }}
`

var clusterRoleBindings = controlplane.Resource{Prefix: "/apis/rbac.authorization.k8s.io/v1", Name: "clusterrolebindings"}

// publishStatusRole is the optional ClusterRole of
// examples/kubernetes/rbac.yaml that -publish-status needs.
const publishStatusRole = "kube2lb-publish-status"

// start runs a control plane and binds the Minimal user (the shipped
// RBAC) to kube2lb-publish-status too, as the example's commented-out
// binding does: kube2lb runs with exactly the documented permissions.
func start(t *testing.T) *controlplane.ControlPlane {
	t.Helper()
	cp := controlplane.Start(t)
	cp.Admin.Create(t, clusterRoleBindings, "", controlplane.Object{
		"metadata": controlplane.Object{"name": "kube2lb-test-publish-status"},
		"roleRef":  controlplane.Object{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": publishStatusRole},
		"subjects": []controlplane.Object{{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": cp.Minimal.Name}},
	})
	// RBAC takes effect within a moment: wait until the user may patch.
	deadline := time.Now().Add(kube2lb.Deadline)
	for !canPatchStatus(t, cp) {
		if time.Now().After(deadline) {
			t.Fatalf("%s cannot patch services/status after binding %s: is the role in examples/kubernetes/rbac.yaml?", cp.Minimal.Name, publishStatusRole)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cp
}

// canPatchStatus asks the API server (SelfSubjectAccessReview) whether the
// Minimal user may patch services/status.
func canPatchStatus(t *testing.T, cp *controlplane.ControlPlane) bool {
	t.Helper()
	var out struct {
		Status struct{ Allowed bool } `json:"status"`
	}
	review := controlplane.Object{
		"apiVersion": "authorization.k8s.io/v1",
		"kind":       "SelfSubjectAccessReview",
		"spec": controlplane.Object{"resourceAttributes": controlplane.Object{
			"verb": "patch", "resource": "services", "subresource": "status", "namespace": "default",
		}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cp.Minimal.Do(ctx, http.MethodPost, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review, &out); err != nil {
		t.Fatal(err)
	}
	return out.Status.Allowed
}

// instance is one kube2lb and its files.
type instance struct {
	dir, tmpl, out, listen string
	p                      *kube2lb.Process
}

func newInstance(t *testing.T, template string) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{dir: dir, tmpl: filepath.Join(dir, "lb.tmpl"), out: filepath.Join(dir, "lb.cfg")}
	if err := os.WriteFile(in.tmpl, []byte(template), 0o644); err != nil {
		t.Fatal(err)
	}
	return in
}

// args are the flags of every run: the user, the files, no host checks.
func (in *instance) args(user *controlplane.User, extra ...string) []string {
	return append([]string{
		"-kubecfg", user.Kubeconfig,
		"-template", in.tmpl,
		"-config", in.out,
		"-host-checks=false",
		"-wait", "0",
		"-log-level", "debug",
	}, extra...)
}

// start runs kube2lb, serving /metrics on a free port.
func (in *instance) start(t *testing.T, user *controlplane.User, extra ...string) {
	t.Helper()
	in.listen = freeAddr(t)
	in.p = kube2lb.Start(t, in.args(user, append([]string{"-listen", in.listen}, extra...)...)...)
}

// stop ends kube2lb with SIGTERM and waits for it.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	if err := in.p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.p.Done():
	case <-time.After(kube2lb.Deadline):
		t.Fatal("kube2lb did not stop")
	}
	if code := in.p.ExitCode(); code != 0 {
		t.Fatalf("kube2lb exited with %d:\n%s", code, in.p.Logs())
	}
}

// wait waits until the output satisfies cond.
func (in *instance) wait(t *testing.T, what string, cond func(out string) bool) string {
	t.Helper()
	return kube2lb.WaitFile(t, in.out, func(out string) bool {
		if in.p != nil && in.p.Exited() {
			t.Fatalf("waiting for %s: kube2lb exited (%d):\n%s", what, in.p.ExitCode(), in.p.Logs())
		}
		return cond(out)
	})
}

// metric returns the value of the series `name` (with its labels, as
// written in the exposition) from /metrics, 0 when absent.
func (in *instance) metric(t *testing.T, series string) int {
	t.Helper()
	resp, err := http.Get("http://" + in.listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), series+" "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return n
		}
	}
	return 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// service is a Service of type typ with one TCP port.
func service(name, typ string, port int) controlplane.Object {
	return controlplane.Object{
		"metadata": controlplane.Object{"name": name},
		"spec": controlplane.Object{"type": typ, "ports": []controlplane.Object{
			{"name": "http", "port": port, "protocol": "TCP", "targetPort": 8080},
		}},
	}
}

// with sets fields of obj's metadata or spec: with(obj, "spec", "loadBalancerClass", "x").
func with(obj controlplane.Object, part, key string, value any) controlplane.Object {
	obj[part].(controlplane.Object)[key] = value
	return obj
}

func createNamespace(t *testing.T, cp *controlplane.ControlPlane, name string) {
	t.Helper()
	cp.Admin.Create(t, controlplane.Namespaces, "", controlplane.Object{"metadata": controlplane.Object{"name": name}})
}

// ingress is one status.loadBalancer.ingress entry as kubectl reads it.
type ingress struct {
	IP     string `json:"ip"`
	IPMode string `json:"ipMode"`
}

// getIngress reads status.loadBalancer.ingress of a service.
func getIngress(t *testing.T, cp *controlplane.ControlPlane, ns, name string) []ingress {
	t.Helper()
	var svc struct {
		Status struct {
			LoadBalancer struct {
				Ingress []ingress `json:"ingress"`
			} `json:"loadBalancer"`
		} `json:"status"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cp.Admin.Do(ctx, http.MethodGet, controlplane.Services.Path(ns, name), nil, &svc); err != nil {
		t.Fatal(err)
	}
	return svc.Status.LoadBalancer.Ingress
}

func ips(in []ingress) []string {
	var out []string
	for _, e := range in {
		out = append(out, e.IP)
	}
	return out
}

// waitIngress waits until the service's ingress IPs are want (none when
// want is empty), each with ipMode Proxy, and fails early when one of the
// instances exited.
func waitIngress(t *testing.T, cp *controlplane.ControlPlane, ns, name string, want []string, running ...*instance) {
	t.Helper()
	deadline := time.Now().Add(kube2lb.Deadline)
	for {
		got := getIngress(t, cp, ns, name)
		ok := slices.Equal(ips(got), want)
		for _, e := range got {
			ok = ok && e.IPMode == "Proxy"
		}
		if ok {
			return
		}
		for _, in := range running {
			if in.p.Exited() {
				t.Fatalf("waiting for the ingress of %s/%s: kube2lb exited (%d):\n%s", ns, name, in.p.ExitCode(), in.p.Logs())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingress of %s/%s is %+v after %s, want IPs %q with ipMode Proxy", ns, name, got, kube2lb.Deadline, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kubectl runs kubectl as the admin; it skips (fails in CI) without it.
func kubectl(t *testing.T, cp *controlplane.ControlPlane, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kubectl not found")
		}
		t.Skip("kubectl not found")
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig", cp.Admin.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// has reports whether out has a line starting with prefix.
func has(out, prefix string) bool {
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func svcLine(ns, name string) string { return fmt.Sprintf("svc %s/%s ", ns, name) }
