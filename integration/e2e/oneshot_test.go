package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/kube2lb"
)

// oneShotCluster is a control plane with a node, a NodePort service and a
// ClusterIP service.
func oneShotCluster(t *testing.T) *cp.ControlPlane {
	t.Helper()
	c := cp.Start(t)
	c.Admin.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	c.Admin.Create(t, cp.Services, "default", service("web", "NodePort", 80))
	c.Admin.Create(t, cp.Services, "default", service("internal", "ClusterIP", 80))
	return c
}

// TestDryRun prints the rendering of the live cluster and exits 0, writing
// and notifying nothing.
func TestDryRun(t *testing.T) {
	c := oneShotCluster(t)
	e := newEnv(t, c, plainTemplate)
	r := kube2lb.Run(t, e.args(c.Minimal, "-dry-run")...)
	if r.Code != 0 {
		t.Fatalf("-dry-run: exit %d; logs:\n%s", r.Code, r.Logs)
	}
	if !has(r.Stdout, svcLine("default", "web")+"type=NodePort port=00000000_80_tcp_http ") ||
		line(r.Stdout, "nodes") != "nodes node-a=127.0.0.11" ||
		has(r.Stdout, svcLine("default", "internal")) {
		t.Errorf("-dry-run printed:\n%s", r.Stdout)
	}
	if _, err := os.Stat(e.out); !os.IsNotExist(err) {
		t.Errorf("-dry-run wrote -config (stat: %v)", err)
	}
	if n := kube2lb.CountLines(t, e.counter); n != 0 {
		t.Errorf("-dry-run notified %d times", n)
	}

	// Without -config.
	r = kube2lb.Run(t, "-kubecfg", c.Minimal.Kubeconfig, "-template", e.tmpl, "-host-checks=false", "-dry-run")
	if r.Code != 0 || !has(r.Stdout, svcLine("default", "web")) {
		t.Errorf("-dry-run without -config: exit %d, printed:\n%s\nlogs:\n%s", r.Code, r.Stdout, r.Logs)
	}
}

// TestDryRunFailure: a template that fails to execute makes -dry-run exit
// non-zero with the reason, printing nothing.
func TestDryRunFailure(t *testing.T) {
	c := oneShotCluster(t)
	e := newEnv(t, c, "{{ range .Services }}{{ .NoSuchField }}{{ end }}\n")
	r := kube2lb.Run(t, e.args(c.Minimal, "-dry-run")...)
	if r.Code == 0 || !strings.Contains(r.Logs, "NoSuchField") {
		t.Errorf("-dry-run with a failing template: exit %d, logs:\n%s", r.Code, r.Logs)
	}
	if r.Stdout != "" {
		t.Errorf("-dry-run with a failing template printed:\n%s", r.Stdout)
	}
}

// TestOnce renders, applies, notifies and exits 0; run again without a
// change it leaves the file alone but still notifies (a previous run may
// have died between writing and notifying); after a change it updates the
// file and notifies once more.
func TestOnce(t *testing.T) {
	c := oneShotCluster(t)
	e := newEnv(t, c, plainTemplate)
	once := func() {
		t.Helper()
		if r := kube2lb.Run(t, e.args(c.Minimal, "-once")...); r.Code != 0 {
			t.Fatalf("-once: exit %d; logs:\n%s", r.Code, r.Logs)
		}
	}

	once()
	b, err := os.ReadFile(e.out)
	if err != nil {
		t.Fatalf("-once wrote nothing: %v", err)
	}
	if out := string(b); !has(out, svcLine("default", "web")) || has(out, svcLine("default", "internal")) {
		t.Errorf("-once wrote:\n%s", out)
	}
	if n := kube2lb.CountLines(t, e.counter); n != 1 {
		t.Errorf("-once notified %d times, want 1", n)
	}
	id := statFile(t, e.out)

	once()
	if got := statFile(t, e.out); got != id {
		t.Errorf("-once rewrote an unchanged configuration: was %s, now %s", id, got)
	}
	if n := kube2lb.CountLines(t, e.counter); n != 2 {
		t.Errorf("-once notified %d times in all after an unchanged run, want 2", n)
	}

	c.Admin.Create(t, cp.Services, "default", service("new", "LoadBalancer", 443))
	once()
	if b, _ := os.ReadFile(e.out); !has(string(b), svcLine("default", "new")+"type=LoadBalancer ") {
		t.Errorf("-once after a change wrote:\n%s", b)
	}
	if n := kube2lb.CountLines(t, e.counter); n != 3 {
		t.Errorf("-once notified %d times in all after a change, want 3", n)
	}
}

// TestOnceFailures: -once exits non-zero with the reason when the template
// fails, the -check refuses, the notifier fails, or the cluster cannot be
// listed; the previous configuration stays.
func TestOnceFailures(t *testing.T) {
	c := oneShotCluster(t)
	const previous = "previous configuration\n"
	cases := []struct {
		name     string
		template string
		user     *cp.User
		extra    []string
		reason   string // in the logs
		notified int
	}{
		{name: "template fails", template: "{{ range .Services }}{{ .NoSuchField }}{{ end }}\n", user: c.Minimal, reason: "NoSuchField"},
		{name: "check refuses", template: plainTemplate, user: c.Minimal, extra: []string{"-check", "echo refused by e2e >&2; exit 3"}, reason: "refused by e2e"},
		{name: "forbidden", template: endpointsTemplate, user: c.NoEndpointSlices, extra: []string{"-reconnect-timeout", "5s"},
			reason: "forbidden: list endpointslices.discovery.k8s.io at cluster scope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, c, tc.template)
			if err := os.WriteFile(e.out, []byte(previous), 0o644); err != nil {
				t.Fatal(err)
			}
			r := kube2lb.Run(t, e.args(tc.user, append([]string{"-once"}, tc.extra...)...)...)
			if r.Code == 0 || !strings.Contains(r.Logs, tc.reason) {
				t.Errorf("exit %d, want non-zero with %q in the logs:\n%s", r.Code, tc.reason, r.Logs)
			}
			if b, err := os.ReadFile(e.out); err != nil || string(b) != previous {
				t.Errorf("the previous configuration did not stay (err %v):\n%s", err, b)
			}
			if n := kube2lb.CountLines(t, e.counter); n != tc.notified {
				t.Errorf("%d notifications, want %d", n, tc.notified)
			}
			if m, _ := filepath.Glob(filepath.Join(e.dir, "*")); len(m) != 2 {
				t.Errorf("files left beside the configuration: %v", m)
			}
		})
	}

	t.Run("notifier fails", func(t *testing.T) {
		e := newEnv(t, c, plainTemplate)
		r := kube2lb.Run(t, "-kubecfg", c.Minimal.Kubeconfig, "-template", e.tmpl, "-config", e.out, "-host-checks=false",
			"-notify", "command:echo notifier broken by e2e >&2; exit 4", "-once")
		if r.Code == 0 || !strings.Contains(r.Logs, "notifier broken by e2e") {
			t.Errorf("exit %d, want non-zero with the notifier's output in the logs:\n%s", r.Code, r.Logs)
		}
		if b, err := os.ReadFile(e.out); err != nil || !has(string(b), svcLine("default", "web")) {
			t.Errorf("the configuration was not applied before notifying (err %v):\n%s", err, b)
		}
	})
}
