package e2e

import (
	"os"
	"strings"
	"testing"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/kube2lb"
)

// TestEndpointSlicesRendered churns the EndpointSlices of a service whose
// template shows endpoints: every change appears, and notifies once.
func TestEndpointSlicesRendered(t *testing.T) {
	c := cp.Start(t)
	a := c.Admin
	a.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	a.Create(t, cp.Services, "default", service("web", "NodePort", 80))

	e := newEnv(t, c, endpointsTemplate)
	e.start(t, c.Minimal, "-wait", "0") // -endpoints auto: the template uses them
	notified := 0
	web := svcLine("default", "web") + "type=NodePort port=00000000_80_tcp_http "
	endpoints := func(want string) func(string) bool {
		return func(out string) bool { return line(out, web) == web+"endpoints="+want }
	}

	e.wait(t, "the first render", endpoints(""))
	notified++
	e.expectNotified(t, notified, "the first render")

	e.step(t, &notified, "slice web-1 created", func() {
		a.Create(t, cp.EndpointSlices, "default", endpointSlice("web-1", "web", "10.0.0.1"))
	}, endpoints("10.0.0.1:8080,"))
	e.step(t, &notified, "web-1 gets an endpoint", func() {
		a.Patch(t, cp.EndpointSlices, "default", "web-1", cp.Object{"endpoints": endpointSlice("", "", "10.0.0.1", "10.0.0.2")["endpoints"]})
	}, endpoints("10.0.0.1:8080,10.0.0.2:8080,"))
	e.step(t, &notified, "slice web-2 created", func() {
		a.Create(t, cp.EndpointSlices, "default", endpointSlice("web-2", "web", "10.0.0.3"))
	}, endpoints("10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080,"))
	e.step(t, &notified, "10.0.0.2 not ready", func() {
		eps := endpointSlice("", "", "10.0.0.1", "10.0.0.2")["endpoints"].([]cp.Object)
		eps[1]["conditions"] = cp.Object{"ready": false, "serving": true, "terminating": true}
		a.Patch(t, cp.EndpointSlices, "default", "web-1", cp.Object{"endpoints": eps})
	}, endpoints("10.0.0.1:8080,10.0.0.3:8080,"))
	e.step(t, &notified, "slice web-1 deleted", func() {
		a.Delete(t, cp.EndpointSlices, "default", "web-1")
	}, endpoints("10.0.0.3:8080,"))
	e.step(t, &notified, "slice web-2 deleted", func() {
		a.Delete(t, cp.EndpointSlices, "default", "web-2")
	}, endpoints(""))
}

// TestEndpointSliceChurnIgnored churns EndpointSlices under a template that
// does not use endpoints: with -endpoints auto kube2lb does not watch them;
// with -endpoints on it watches and renders, but writes nothing and
// notifies nothing, since the output is the same.
func TestEndpointSliceChurnIgnored(t *testing.T) {
	c := cp.Start(t)
	a := c.Admin
	a.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	a.Create(t, cp.Services, "default", service("web", "NodePort", 80))

	auto := newEnv(t, c, plainTemplate)
	auto.start(t, c.Minimal, "-wait", "0", "-endpoints", "auto")
	on := newEnv(t, c, plainTemplate)
	on.start(t, c.Minimal, "-wait", "0", "-endpoints", "on")
	const slicesCached = `kube2lb_cached_objects{resource="endpointslices.discovery.k8s.io"}`
	const unchanged = `kube2lb_applies_total{result="unchanged"}`

	type state struct {
		id      fileID
		content string
	}
	before := map[*env]state{}
	for _, e := range []*env{auto, on} {
		out := e.wait(t, "the first render", func(out string) bool { return has(out, svcLine("default", "web")) })
		e.expectNotified(t, 1, "the first render")
		before[e] = state{statFile(t, e.out), out}
	}
	// -endpoints on has listed the slices (its first render waited for
	// it) and keeps none: the only one there can be, the API server's
	// own, is the ClusterIP service kubernetes's, which kube2lb does not
	// render.
	const base = 0
	waitMetric(t, on.listen, slicesCached, func(v float64) bool { return int(v) == base })
	unchangedBefore, _ := metric(t, on.listen, unchanged)

	// Churn: create web-1..3, change two, delete one, create web-4 and
	// web-5. The last step takes the count to base+4, which no earlier
	// step reached: once -endpoints on caches that many, it has seen the
	// whole churn.
	for _, n := range []string{"web-1", "web-2", "web-3"} {
		a.Create(t, cp.EndpointSlices, "default", endpointSlice(n, "web", "10.0.0.1"))
	}
	for _, n := range []string{"web-1", "web-2"} {
		a.Patch(t, cp.EndpointSlices, "default", n, cp.Object{"endpoints": endpointSlice("", "", "10.0.0.1", "10.0.0.2")["endpoints"]})
	}
	a.Delete(t, cp.EndpointSlices, "default", "web-1")
	a.Create(t, cp.EndpointSlices, "default", endpointSlice("web-4", "web", "10.0.0.4"))
	a.Create(t, cp.EndpointSlices, "default", endpointSlice("web-5", "web", "10.0.0.5"))
	waitMetric(t, on.listen, slicesCached, func(v float64) bool { return int(v) == base+4 })
	// It rendered after the churn and found nothing to write.
	waitMetric(t, on.listen, unchanged, func(v float64) bool { return v > unchangedBefore })

	if _, watched := metric(t, auto.listen, slicesCached); watched {
		t.Errorf("-endpoints auto with a template without endpoints watches EndpointSlices")
	}
	for _, e := range []*env{auto, on} {
		b, err := os.ReadFile(e.out)
		if err != nil {
			t.Fatal(err)
		}
		if got := statFile(t, e.out); got != before[e].id || string(b) != before[e].content {
			t.Errorf("%s: the churn rewrote the output: was %s, now %s", strings.Join(e.p.Args, " "), before[e].id, got)
		}
		if n := kube2lb.CountLines(t, e.counter); n != 1 {
			t.Errorf("%s: %d notifications after the churn, want 1", strings.Join(e.p.Args, " "), n)
		}
	}

	// A rendered change still goes through, notified once: nothing was
	// pending from the churn.
	a.Create(t, cp.Services, "default", service("sentinel", "NodePort", 9001))
	for _, e := range []*env{auto, on} {
		e.wait(t, "the sentinel", func(out string) bool { return has(out, svcLine("default", "sentinel")) })
		e.expectNotified(t, 2, "the sentinel")
	}
}
