package e2e

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/kube2lb"
)

// TestMinimalRBACUser runs kube2lb as the token user bound to the shipped
// minimal ClusterRole, with a template that needs all three resources.
func TestMinimalRBACUser(t *testing.T) {
	c := cp.Start(t)
	a := c.Admin
	a.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	a.Create(t, cp.Services, "default", service("web", "NodePort", 80))
	a.Create(t, cp.EndpointSlices, "default", endpointSlice("web-1", "web", "10.0.0.1"))

	e := newEnv(t, c, endpointsTemplate)
	e.start(t, c.Minimal)
	e.wait(t, "services, nodes and endpoints", func(out string) bool {
		return line(out, svcLine("default", "web")) == "svc default/web type=NodePort port=00000000_80_tcp_http endpoints=10.0.0.1:8080," &&
			line(out, "nodes") == "nodes node-a"
	})
	waitReady(t, e.listen)
	if logs := e.p.Logs(); strings.Contains(logs, "forbidden") {
		t.Errorf("the minimal user was refused something:\n%s", logs)
	}
}

// TestForbiddenEndpointSlices runs kube2lb as a user that may not list
// EndpointSlices, with a template that needs them: kube2lb logs a clear
// error naming the verb, resource and scope, writes nothing, is not ready,
// and keeps trying: once the permission is granted it converges.
func TestForbiddenEndpointSlices(t *testing.T) {
	c := cp.Start(t)
	a := c.Admin
	a.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	a.Create(t, cp.Services, "default", service("web", "NodePort", 80))
	a.Create(t, cp.EndpointSlices, "default", endpointSlice("web-1", "web", "10.0.0.1"))

	e := newEnv(t, c, endpointsTemplate)
	e.start(t, c.NoEndpointSlices)
	e.p.WaitLog(t, "forbidden: list endpointslices.discovery.k8s.io at cluster scope")
	if e.p.Exited() {
		t.Fatalf("kube2lb exited (code %d) on a forbidden list", e.p.ExitCode())
	}
	if code, body := get(t, e.listen, "/readyz"); code == http.StatusOK {
		t.Errorf("/readyz answers %d %q while EndpointSlices cannot be listed", code, body)
	}
	if code, body := get(t, e.listen, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz answers %d %q: the daemon should be alive while it retries", code, body)
	}
	if _, err := os.Stat(e.out); !os.IsNotExist(err) {
		t.Errorf("output written without EndpointSlices (stat: %v)", err)
	}
	if n := kube2lb.CountLines(t, e.counter); n != 0 {
		t.Errorf("%d notifications without EndpointSlices", n)
	}

	// Keeps trying: grant the permission, and it converges. Forbidden
	// lists back off as other failures do, up to 30 s apart, hence the
	// longer deadline.
	grantEndpointSlices(t, c, c.NoEndpointSlices)
	e.waitWithin(t, 2*kube2lb.Deadline, "the render once allowed", func(out string) bool {
		return strings.Contains(line(out, svcLine("default", "web")), "endpoints=10.0.0.1:8080,")
	})
	waitReady(t, e.listen)
	kube2lb.WaitLines(t, e.counter, 1)
}

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	var code int
	var body string
	deadline := time.Now().Add(kube2lb.Deadline)
	for {
		code, body = get(t, addr, "/readyz")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answers %d %q after %s", code, body, kube2lb.Deadline)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
