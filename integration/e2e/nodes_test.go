package e2e

import (
	"testing"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
)

// TestNodes follows the backend nodes: added, removed, turning NotReady
// and Ready again, and labelled exclude-from-external-load-balancers. Each
// change notifies exactly once.
func TestNodes(t *testing.T) {
	c := cp.Start(t)
	a := c.Admin
	a.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	a.Create(t, cp.Nodes, "", node("node-b", "127.0.0.12"))
	a.Create(t, cp.Services, "default", service("web", "NodePort", 80))

	e := newEnv(t, c, plainTemplate)
	e.start(t, c.Minimal, "-wait", "0")
	notified := 0
	nodes := func(want string) func(string) bool {
		return func(out string) bool { return line(out, "nodes") == want && has(out, svcLine("default", "web")) }
	}

	e.wait(t, "the first render", nodes("nodes node-a=127.0.0.11 node-b=127.0.0.12"))
	notified++
	e.expectNotified(t, notified, "the first render")

	e.step(t, &notified, "node-c added", func() {
		a.Create(t, cp.Nodes, "", node("node-c", "127.0.0.13"))
	}, nodes("nodes node-a=127.0.0.11 node-b=127.0.0.12 node-c=127.0.0.13"))

	e.step(t, &notified, "node-b removed", func() {
		a.Delete(t, cp.Nodes, "", "node-b")
	}, nodes("nodes node-a=127.0.0.11 node-c=127.0.0.13"))

	e.step(t, &notified, "node-c NotReady", func() {
		a.PatchStatus(t, cp.Nodes, "", "node-c", readyPatch(false))
	}, nodes("nodes node-a=127.0.0.11"))

	e.step(t, &notified, "node-c Ready again", func() {
		a.PatchStatus(t, cp.Nodes, "", "node-c", readyPatch(true))
	}, nodes("nodes node-a=127.0.0.11 node-c=127.0.0.13"))

	e.step(t, &notified, "node-c address changes", func() {
		a.PatchStatus(t, cp.Nodes, "", "node-c", cp.Object{"status": cp.Object{
			"addresses": []cp.Object{{"type": "InternalIP", "address": "127.0.0.23"}},
		}})
	}, nodes("nodes node-a=127.0.0.11 node-c=127.0.0.23"))

	exclude := "node.kubernetes.io/exclude-from-external-load-balancers"
	e.step(t, &notified, "node-a excluded", func() {
		a.Patch(t, cp.Nodes, "", "node-a", cp.Object{"metadata": cp.Object{"labels": cp.Object{exclude: ""}}})
	}, nodes("nodes node-c=127.0.0.23"))

	// A node without a Ready condition (as created, before its kubelet
	// reports) is not a backend; nor is a change of an unrendered label.
	// The sentinel shows kube2lb saw both.
	a.Create(t, cp.Nodes, "", cp.Object{"metadata": node("node-d", "")["metadata"]})
	a.Patch(t, cp.Nodes, "", "node-c", cp.Object{"metadata": cp.Object{"labels": cp.Object{"e2e": "unrendered"}}})
	e.step(t, &notified, "sentinel after unrendered node changes", func() {
		a.Create(t, cp.Services, "default", service("sentinel-1", "NodePort", 9001))
	}, func(out string) bool {
		return has(out, svcLine("default", "sentinel-1")) && line(out, "nodes") == "nodes node-c=127.0.0.23"
	})

	e.step(t, &notified, "node-d reports Ready", func() {
		a.PatchStatus(t, cp.Nodes, "", "node-d", cp.Object{"status": cp.Object{
			"addresses":  []cp.Object{{"type": "InternalIP", "address": "127.0.0.14"}},
			"conditions": readyPatch(true)["status"].(cp.Object)["conditions"],
		}})
	}, nodes("nodes node-c=127.0.0.23 node-d=127.0.0.14"))

	e.step(t, &notified, "node-a included again", func() {
		a.Patch(t, cp.Nodes, "", "node-a", cp.Object{"metadata": cp.Object{"labels": cp.Object{exclude: nil}}})
	}, nodes("nodes node-a=127.0.0.11 node-c=127.0.0.23 node-d=127.0.0.14"))

	e.step(t, &notified, "node-d removed", func() {
		a.Delete(t, cp.Nodes, "", "node-d")
	}, nodes("nodes node-a=127.0.0.11 node-c=127.0.0.23"))
	e.step(t, &notified, "node-a removed", func() {
		a.Delete(t, cp.Nodes, "", "node-a")
	}, nodes("nodes node-c=127.0.0.23"))
	e.step(t, &notified, "the last node removed", func() {
		a.Delete(t, cp.Nodes, "", "node-c")
	}, nodes("nodes"))
}
