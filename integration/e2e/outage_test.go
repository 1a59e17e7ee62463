package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/kube2lb"
)

// waitLogCount waits until substring occurs in the logs more than n times.
func waitLogCount(t *testing.T, p *kube2lb.Process, substring string, n int) {
	t.Helper()
	deadline := time.Now().Add(kube2lb.Deadline)
	for strings.Count(p.Logs(), substring) <= n {
		if p.Exited() {
			t.Fatalf("kube2lb exited (code %d) before logging %q again", p.ExitCode(), substring)
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube2lb did not log %q again within %s", substring, kube2lb.Deadline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAPIServerRestart kills the API server and starts it again. While it
// is away the configuration stays byte for byte and nothing is notified;
// changes made after the restart but before kube2lb gets through again
// (it reaches the API server through a proxy that refuses it meanwhile),
// deletions included, all appear once it reconnects.
func TestAPIServerRestart(t *testing.T) {
	c := cp.Start(t)
	a := c.Admin
	proxy := c.ProxyTo(t)
	a.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	for _, name := range []string{"keep", "gone", "changed"} {
		a.Create(t, cp.Services, "default", service(name, "NodePort", 80))
	}

	e := newEnv(t, c, plainTemplate)
	e.start(t, c.Minimal, "-apiserver", proxy.URL, "-wait", "0")
	before := e.wait(t, "the three services", func(out string) bool {
		return has(out, svcLine("default", "keep")) && has(out, svcLine("default", "gone")) && has(out, svcLine("default", "changed"))
	})
	e.expectNotified(t, 1, "the first render")
	waitReady(t, e.listen)
	failures := strings.Count(e.p.Logs(), "list+watch failed")

	c.KillAPIServer(t)
	proxy.Refuse()
	waitLogCount(t, e.p, "list+watch failed", failures)
	c.StartAPIServer(t)

	// kube2lb is still cut off: these changes happen while it is away.
	a.Delete(t, cp.Services, "default", "gone")
	a.Patch(t, cp.Services, "default", "changed", cp.Object{"metadata": cp.Object{"annotations": cp.Object{"kube2lb/backend-timeout": `{"http": 20000}`}}})
	a.Create(t, cp.Services, "default", service("new", "NodePort", 81))
	a.Create(t, cp.Nodes, "", node("node-b", "127.0.0.12"))
	a.Delete(t, cp.Nodes, "", "node-a")

	if b, err := os.ReadFile(e.out); err != nil || string(b) != before {
		t.Fatalf("the output changed while the API server was away (err %v):\n%s\nwas:\n%s", err, b, before)
	}
	if n := kube2lb.CountLines(t, e.counter); n != 1 {
		t.Fatalf("%d notifications while the API server was away, want still 1", n)
	}
	if e.p.Exited() {
		t.Fatalf("kube2lb exited (code %d) while the API server was away", e.p.ExitCode())
	}

	proxy.Forward()
	// Reconnecting waits out a backoff of up to 30 s.
	e.waitWithin(t, 2*kube2lb.Deadline, "every change made while away", func(out string) bool {
		return has(out, svcLine("default", "keep")) &&
			!has(out, svcLine("default", "gone")) &&
			strings.Contains(line(out, svcLine("default", "changed")), " timeout=20000 ") &&
			has(out, svcLine("default", "new")) &&
			line(out, "nodes") == "nodes node-b=127.0.0.12"
	})
	kube2lb.WaitLines(t, e.counter, 2)
	waitReady(t, e.listen)
}

// TestAPIServerRestartDirect is TestAPIServerRestart without the proxy:
// kube2lb reconnects by itself to the restarted API server, and a change
// made right after the restart appears.
func TestAPIServerRestartDirect(t *testing.T) {
	c := cp.Start(t)
	a := c.Admin
	a.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	a.Create(t, cp.Services, "default", service("keep", "NodePort", 80))

	e := newEnv(t, c, plainTemplate)
	e.start(t, c.Minimal, "-wait", "0")
	before := e.wait(t, "keep", func(out string) bool { return has(out, svcLine("default", "keep")) })
	waitReady(t, e.listen)
	failures := strings.Count(e.p.Logs(), "list+watch failed")

	c.KillAPIServer(t)
	waitLogCount(t, e.p, "list+watch failed", failures)
	if b, err := os.ReadFile(e.out); err != nil || string(b) != before {
		t.Fatalf("the output changed while the API server was away (err %v):\n%s\nwas:\n%s", err, b, before)
	}
	c.StartAPIServer(t)
	a.Create(t, cp.Services, "default", service("after", "NodePort", 81))
	a.Create(t, cp.Nodes, "", node("node-b", "127.0.0.12"))
	e.waitWithin(t, 2*kube2lb.Deadline, "the changes made after the restart", func(out string) bool {
		return has(out, svcLine("default", "keep")) && has(out, svcLine("default", "after")) &&
			line(out, "nodes") == "nodes node-a=127.0.0.11 node-b=127.0.0.12"
	})
	waitReady(t, e.listen)
}

// TestCompaction cuts kube2lb off, deletes services, compacts etcd past
// the resourceVersion kube2lb watches from, and lets it through again: its
// watch is refused with 410 Gone, it relists, and the deleted services
// disappear. The API server runs without its watch cache, so that etcd
// itself serves (and refuses) the watch.
func TestCompaction(t *testing.T) {
	c := cp.StartWith(t, cp.Options{DisableWatchCache: true})
	a := c.Admin
	proxy := c.ProxyTo(t)
	a.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	for _, name := range []string{"keep", "gone-1", "gone-2"} {
		a.Create(t, cp.Services, "default", service(name, "NodePort", 80))
	}

	e := newEnv(t, c, plainTemplate)
	e.start(t, c.Minimal, "-apiserver", proxy.URL, "-wait", "0")
	e.wait(t, "the three services", func(out string) bool {
		return has(out, svcLine("default", "keep")) && has(out, svcLine("default", "gone-1")) && has(out, svcLine("default", "gone-2"))
	})
	waitReady(t, e.listen)
	const relisting = "watch resourceVersion expired; relisting"
	relists := strings.Count(e.p.Logs(), relisting)
	failures := strings.Count(e.p.Logs(), "list+watch failed")

	proxy.Refuse()
	waitLogCount(t, e.p, "list+watch failed", failures)
	a.Delete(t, cp.Services, "default", "gone-1")
	a.Delete(t, cp.Services, "default", "gone-2")
	for i := range 3 {
		name := "filler-" + string(rune('a'+i))
		a.Create(t, cp.Services, "default", service(name, "ClusterIP", 80))
		a.Delete(t, cp.Services, "default", name)
	}
	a.Create(t, cp.Services, "default", service("added", "NodePort", 81))
	rev := c.CompactEtcd(t)
	t.Logf("etcd compacted at revision %d", rev)

	proxy.Forward()
	waitLogCount(t, e.p, relisting, relists)
	e.waitWithin(t, 2*kube2lb.Deadline, "the state after the gap", func(out string) bool {
		return has(out, svcLine("default", "keep")) && has(out, svcLine("default", "added")) &&
			!has(out, svcLine("default", "gone-1")) && !has(out, svcLine("default", "gone-2"))
	})
	waitMetric(t, e.listen, `kube2lb_relists_total{resource="services"}`, func(v float64) bool { return v >= 1 })
}

// TestBlackholedConnection black-holes kube2lb's connections to the API
// server (a proxy that stops forwarding without closing them, but forwards
// new connections): kube2lb must notice the dead connection and replace
// it within 60 s, so that a change made right after the black-holing
// appears. The deadline is 90 s: 60 s is kube2lb's promise (30 s without
// reads, then a 15 s ping), the rest is margin for reconnecting, listing
// and rendering on a loaded machine.
func TestBlackholedConnection(t *testing.T) {
	c := cp.Start(t)
	a := c.Admin
	proxy := newBlackholeProxy(t, strings.TrimPrefix(c.URL, "https://"))
	a.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	a.Create(t, cp.Services, "default", service("web", "NodePort", 80))

	e := newEnv(t, c, plainTemplate)
	e.start(t, c.Minimal, "-apiserver", "https://"+proxy.addr, "-wait", "0")
	e.wait(t, "web", func(out string) bool { return has(out, svcLine("default", "web")) })
	waitReady(t, e.listen)

	accepted := proxy.connections()
	holed := proxy.blackholeExisting()
	start := time.Now()
	if holed == 0 {
		t.Fatal("kube2lb holds no connection through the proxy")
	}
	a.Create(t, cp.Services, "default", service("after", "NodePort", 81))
	e.waitWithin(t, 90*time.Second, "the change made after the black-holing", func(out string) bool {
		return has(out, svcLine("default", "after"))
	})
	t.Logf("%d connection(s) black-holed; the change appeared after %s through %d new connection(s)",
		holed, time.Since(start).Round(time.Second), proxy.connections()-accepted)
	if proxy.connections() == accepted {
		t.Fatal("the change appeared without a new connection: the black hole did not hold")
	}
	waitReady(t, e.listen)
}
