package kubeapi

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// policyService is a NodePort Service of externalTrafficPolicy policy.
func policyService(name, policy string) map[string]any {
	s := fakeService("web", name, nil)
	s["spec"].(map[string]any)["externalTrafficPolicy"] = policy
	return s
}

// localView is what a snapshot says of the Services and slices of the
// LocalSlicesOnly tests.
type localView struct {
	policy map[string]string // by Service key
	labels map[string]string // the label "v" of each Service
	slices []string          // keys, sorted
}

func viewOf(c *Cache) localView {
	snap := c.Snapshot()
	v := localView{policy: map[string]string{}, labels: map[string]string{}}
	for _, s := range snap.Services {
		v.policy[s.Metadata.Key()] = s.Spec.ExternalTrafficPolicy
		v.labels[s.Metadata.Key()], _ = s.Metadata.Labels.Get("v")
	}
	for _, s := range snap.EndpointSlices {
		v.slices = append(v.slices, s.Metadata.Key())
	}
	return v
}

// consistent fails t when a snapshot has a Service of policy Local
// without its slice (named NAME-1): its backends would be no node.
func (v localView) consistent(t *testing.T) {
	t.Helper()
	for key, p := range v.policy {
		if p == "Local" && !slices.Contains(v.slices, key+"-1") {
			t.Fatalf("%s is Local without its slice: %+v", key, v)
		}
	}
}

// waitLocal waits for the Service of key to be Local, every snapshot
// meanwhile consistent.
func waitLocal(t *testing.T, c *Cache, key string) {
	t.Helper()
	waitFor(t, key+" Local, with its slice", func() bool {
		v := viewOf(c)
		v.consistent(t)
		return v.policy[key] == "Local"
	})
}

// localFixture is a cache with LocalSlicesOnly of Services loc (Local)
// and clu (Cluster), each with a slice; only loc's is kept. Lists of
// slices wait on gate while it is not nil.
func localFixture(t *testing.T) (*fakeAPI, *Cache, *localGate) {
	f := newFakeAPI(t, false)
	f.put("services", policyService("loc", "Local"))
	f.put("services", policyService("clu", "Cluster"))
	f.put("endpointslices", fakeSlice("web", "loc-1", "loc"))
	f.put("endpointslices", fakeSlice("web", "clu-1", "clu"))
	g := &localGate{}
	t.Cleanup(g.open) // a failed test's requests end, and the server with them
	f.setHook(g.hook(false))
	c := newTestCache(t, f, Options{ExposedOnly: true, EndpointSlices: true, LocalSlicesOnly: true, timing: exposedTiming()})
	waitSynced(t, c)
	if v := viewOf(c); !slices.Equal(v.slices, []string{"web/loc-1"}) {
		t.Fatalf("slices %v, want only loc's", v.slices)
	}
	return f, c, g
}

// hook has the lists of slices wait at g; with refuse, every request for
// Services is answered 503 (the API server going away).
func (g *localGate) hook(refuse bool) func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
	return func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if refuse && req.resource == "services" {
			writeStatus(w, http.StatusServiceUnavailable, "ServiceUnavailable", "apiserver shutting down")
			return true
		}
		if req.resource == "endpointslices" && !req.watch {
			g.wait()
		}
		return false
	}
}

// localGate holds the lists of slices while closed, and counts them.
type localGate struct {
	mu     sync.Mutex
	closed chan struct{} // nil: open
	listed int
}

func (g *localGate) close() {
	g.mu.Lock()
	g.closed = make(chan struct{})
	g.mu.Unlock()
}

func (g *localGate) release() {
	g.mu.Lock()
	close(g.closed)
	g.closed = nil
	g.mu.Unlock()
}

// open releases the lists if the gate is closed.
func (g *localGate) open() {
	g.mu.Lock()
	if g.closed != nil {
		close(g.closed)
		g.closed = nil
	}
	g.mu.Unlock()
}

func (g *localGate) wait() {
	g.mu.Lock()
	g.listed++
	ch := g.closed
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (g *localGate) lists() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.listed
}

// TestLocalSlicesOnly: a Service that becomes Local is held back, its old
// version cached, until a list of slices brings its slices; then both at
// once. Updates while held are kept aside too; one that makes it Cluster
// again, or deletes it, is not held.
func TestLocalSlicesOnly(t *testing.T) {
	f, c, g := localFixture(t)
	g.close()
	before := g.lists()
	clu := policyService("clu", "Local")
	f.put("services", clu)
	waitFor(t, "the list of slices asked for", func() bool { return g.lists() > before })
	// Held back while the slices are listed, and an update too.
	clu["metadata"].(map[string]any)["labels"] = map[string]string{"v": "2"}
	f.put("services", clu)
	f.bookmark("services")
	waitFor(t, "the watch to pass the update", func() bool { return status(c, ResourceServices).Watching })
	if v := viewOf(c); v.policy["web/clu"] != "Cluster" || v.labels["web/clu"] != "" {
		t.Fatalf("clu not held back while its slices are listed: %+v", v)
	}
	g.release()
	waitLocal(t, c, "web/clu")
	if v := viewOf(c); v.labels["web/clu"] != "2" || !slices.Equal(v.slices, []string{"web/clu-1", "web/loc-1"}) {
		t.Errorf("after the list: %+v, want clu's last version and both slices", v)
	}

	// Cluster again: at once. Its slice goes at its next event.
	clu = policyService("clu", "Cluster")
	f.put("services", clu)
	waitFor(t, "clu Cluster", func() bool { return viewOf(c).policy["web/clu"] == "Cluster" })
	f.put("endpointslices", fakeSlice("web", "clu-1", "clu"))
	waitFor(t, "clu's slice dropped", func() bool { return slices.Equal(viewOf(c).slices, []string{"web/loc-1"}) })

	// Held, then deleted: gone, and not brought back by the list.
	g.close()
	before = g.lists()
	f.put("services", policyService("clu", "Local"))
	waitFor(t, "the list of slices asked for", func() bool { return g.lists() > before })
	f.remove("services", "web/clu")
	waitFor(t, "clu deleted", func() bool { _, ok := viewOf(c).policy["web/clu"]; return !ok })
	g.release()
	f.put("services", policyService("other", "Cluster")) // an event after the list
	waitFor(t, "the next event", func() bool { _, ok := viewOf(c).policy["web/other"]; return ok })
	if _, ok := viewOf(c).policy["web/clu"]; ok {
		t.Error("a held Service deleted came back with the list of slices")
	}
}

// TestLocalSlicesOnlyRelist: a Service found Local by a list of Services
// (the change made while the watch was down) is held back as a watch
// event's would be.
func TestLocalSlicesOnlyRelist(t *testing.T) {
	f, c, g := localFixture(t)
	f.setHook(g.hook(true))
	g.close()
	before, servicesListed := g.lists(), status(c, ResourceServices).Relists
	f.stopWatches()
	waitFor(t, "services refused", func() bool { return !status(c, ResourceServices).Watching })
	f.put("services", policyService("clu", "Local"))
	f.compact(false) // the watch cannot resume: a list
	f.setHook(g.hook(false))
	waitFor(t, "the services listed again", func() bool { return status(c, ResourceServices).Relists > servicesListed })
	waitFor(t, "the list of slices asked for", func() bool { return g.lists() > before })
	if v := viewOf(c); v.policy["web/clu"] != "Cluster" {
		t.Fatalf("clu not held back after the list of Services: %+v", v)
	}
	g.release()
	waitLocal(t, c, "web/clu")
}

// TestLocalSlicesOnlyListUnderWay: a list of slices that began before a
// Service was held back may have dropped its slices before: it does not
// release the Service; the next list, which the hold asked for, does.
func TestLocalSlicesOnlyListUnderWay(t *testing.T) {
	f, c, g := localFixture(t)
	f.put("endpointslices", fakeSlice("web", "new-1", "new")) // dropped: no such Service yet
	waitFor(t, "new-1 dropped", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.droppedOf["web/new"] })
	f.mu.Lock()
	cluRaw, locRaw := string(f.objects["endpointslices"]["web/clu-1"].raw), string(f.objects["endpointslices"]["web/loc-1"].raw)
	newRaw := string(f.objects["endpointslices"]["web/new-1"].raw)
	f.mu.Unlock()
	halfway := make(chan struct{})
	var once sync.Once
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if req.resource != "endpointslices" || req.watch {
			return false
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			g.wait()
			return false
		}
		// The first list: clu's slice, then a pause before the rest.
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"%d"},"items":[%s,`, f.currentRV(), cluRaw)
		w.(http.Flusher).Flush()
		close(halfway)
		g.wait()
		fmt.Fprintf(w, "%s,%s]}", locRaw, newRaw)
		return true
	})
	g.close()
	f.put("services", policyService("new", "Local")) // its slice was dropped: a list
	<-halfway
	time.Sleep(50 * time.Millisecond) // clu's slice decoded, and dropped
	before := g.lists()
	f.put("services", policyService("clu", "Local"))
	waitFor(t, "clu held back", func() bool { return c.heldCount() == 1 })
	g.release()
	g.close()
	waitFor(t, "the next list, asked for by the hold", func() bool { return g.lists() > before })
	v := viewOf(c)
	v.consistent(t)
	if v.policy["web/clu"] != "Cluster" {
		t.Fatalf("clu released by a list that began before it was held: %+v", v)
	}
	g.release()
	waitLocal(t, c, "web/clu")
}

// heldCount is how many Services are held back.
func (c *Cache) heldCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

// TestLocalSlicesOnlyComesBack: a Service of policy Cluster, whose slices
// were not kept, that leaves the cache (its type changed to ClusterIP)
// and comes back Local is held back, absent, until its slices are listed:
// not cached Local without them for as long as its pods stay as they are.
func TestLocalSlicesOnlyComesBack(t *testing.T) {
	f, c, g := localFixture(t)
	cip := policyService("clu", "Cluster")
	cip["spec"].(map[string]any)["type"] = ServiceTypeClusterIP
	f.put("services", cip)
	waitFor(t, "clu gone", func() bool { _, ok := viewOf(c).policy["web/clu"]; return !ok })
	g.close()
	before := g.lists()
	f.put("services", policyService("clu", "Local"))
	waitFor(t, "the list of slices asked for", func() bool { return g.lists() > before })
	if v := viewOf(c); v.policy["web/clu"] != "" {
		t.Fatalf("clu cached before its slices are listed: %+v", v)
	}
	g.release()
	waitLocal(t, c, "web/clu")
}

// TestLocalSlicesOnlyComesBackByList is TestLocalSlicesOnlyComesBack with
// the return seen by a list of Services (the watch was down).
func TestLocalSlicesOnlyComesBackByList(t *testing.T) {
	f, c, g := localFixture(t)
	f.setHook(g.hook(true))
	f.stopWatches()
	waitFor(t, "services refused", func() bool { return !status(c, ResourceServices).Watching })
	cip := policyService("clu", "Cluster")
	cip["spec"].(map[string]any)["type"] = ServiceTypeClusterIP
	f.put("services", cip)
	f.compact(false)
	listed := status(c, ResourceServices).Relists
	f.setHook(g.hook(false))
	waitFor(t, "clu gone", func() bool { _, ok := viewOf(c).policy["web/clu"]; return !ok })
	waitFor(t, "the services listed again", func() bool { return status(c, ResourceServices).Relists > listed })
	// Away again; clu comes back Local meanwhile.
	f.setHook(g.hook(true))
	f.stopWatches()
	waitFor(t, "services refused", func() bool { return !status(c, ResourceServices).Watching })
	f.put("services", policyService("clu", "Local"))
	f.compact(false)
	g.close()
	before, listed := g.lists(), status(c, ResourceServices).Relists
	f.setHook(g.hook(false))
	waitFor(t, "the services listed again", func() bool { return status(c, ResourceServices).Relists > listed })
	waitFor(t, "the list of slices asked for", func() bool { return g.lists() > before })
	if v := viewOf(c); v.policy["web/clu"] != "" {
		t.Fatalf("clu cached before its slices are listed: %+v", v)
	}
	g.release()
	waitLocal(t, c, "web/clu")
}
