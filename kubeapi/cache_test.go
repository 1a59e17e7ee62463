package kubeapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kube2lb/kube2lb/kubeconfig"
)

func TestSyncAndEvents(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("services", fakeService("web", "b", nil))
	f.put("services", fakeService("web", "a", nil))
	f.put("services", fakeService("api", "z", nil))
	f.put("nodes", fakeNode("node-2", nil))
	f.put("nodes", fakeNode("node-1", nil))
	f.put("endpointslices", fakeSlice("web", "a-xyz", "a"))
	c := newTestCache(t, f, Options{EndpointSlices: true, UserAgent: "kube2lb/test"})
	waitSynced(t, c)
	if !c.Synced() {
		t.Error("Synced() = false after WaitSynced")
	}
	<-c.Changed() // the first syncs signalled

	snap := c.Snapshot()
	if diff := cmp.Diff([]string{"api/z", "web/a", "web/b"}, serviceKeys(c)); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	var nodes []string
	for _, n := range snap.Nodes {
		nodes = append(nodes, n.Metadata.Name)
	}
	if diff := cmp.Diff([]string{"node-1", "node-2"}, nodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if !snap.EndpointsWatched || len(snap.EndpointSlices) != 1 || snap.EndpointSlices[0].ServiceName() != "a" {
		t.Errorf("endpoint slices: watched %v, %+v", snap.EndpointsWatched, snap.EndpointSlices)
	}
	svc := snap.Services[1]
	if svc.Spec.Type != ServiceTypeNodePort || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].NodePort != 30080 ||
		svc.Spec.Ports[0].TargetPort != (IntOrString{IsString: true, StrVal: "http"}) {
		t.Errorf("service decoded as %+v", svc)
	}
	if !snap.Nodes[0].Ready() {
		t.Error("node-1 not Ready")
	}

	// Watch events.
	f.put("services", fakeService("web", "c", nil))
	f.remove("services", "web/b")
	mod := fakeService("api", "z", nil)
	mod["spec"].(map[string]any)["type"] = "LoadBalancer"
	f.put("services", mod)
	waitFor(t, "watch events applied", func() bool {
		s := c.Snapshot().Services
		return len(s) == 3 && s[0].Spec.Type == ServiceTypeLoadBalancer && s[2].Metadata.Name == "c"
	})
	select {
	case <-c.Changed():
	default:
		t.Error("no change signalled after watch events")
	}
	if diff := cmp.Diff([]string{"api/z", "web/a", "web/c"}, serviceKeys(c)); diff != "" {
		t.Errorf("services after events (-want +got):\n%s", diff)
	}
	// The snapshot taken before is unchanged.
	if len(snap.Services) != 3 || snap.Services[2].Metadata.Name != "b" || snap.Services[0].Spec.Type != ServiceTypeNodePort {
		t.Error("an earlier snapshot changed")
	}

	for _, r := range f.requestsFor("") {
		if r.userAgent != "kube2lb/test" || r.accept != "application/json" {
			t.Errorf("%v: User-Agent %q, Accept %q", r, r.userAgent, r.accept)
		}
		if r.watch {
			ts, _ := strconv.Atoi(r.query.Get("timeoutSeconds"))
			if r.query.Get("allowWatchBookmarks") != "true" || ts < 300 || ts >= 600 {
				t.Errorf("%v: want allowWatchBookmarks=true and timeoutSeconds in [300, 600)", r)
			}
		} else if r.query.Get("resourceVersion") != "0" || r.query.Get("limit") != "500" {
			t.Errorf("%v: want the first list at resourceVersion=0 with limit=500", r)
		}
	}
	st := status(c, ResourceServices)
	if !st.Synced || !st.Watching || st.LastError != nil || st.Objects != 3 || st.BytesRead == 0 || st.LastHealthy.IsZero() {
		t.Errorf("status %+v", st)
	}
}

func TestFilters(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("services", fakeService("web", "lb", map[string]string{"app": "lb"}))
	f.put("services", fakeService("web", "other", map[string]string{"app": "x"}))
	f.put("services", fakeService("api", "lb", map[string]string{"app": "lb"}))
	f.put("nodes", fakeNode("edge", map[string]string{"role": "edge"}))
	f.put("nodes", fakeNode("worker", map[string]string{"role": "worker"}))
	f.put("endpointslices", fakeSlice("web", "lb-1", "lb"))
	f.put("endpointslices", fakeSlice("api", "lb-1", "lb"))
	c := newTestCache(t, f, Options{Namespace: "web", ServiceSelector: "app=lb", NodeSelector: "role=edge", EndpointSlices: true})
	waitSynced(t, c)
	snap := c.Snapshot()
	if diff := cmp.Diff([]string{"web/lb"}, serviceKeys(c)); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	if len(snap.Nodes) != 1 || snap.Nodes[0].Metadata.Name != "edge" {
		t.Errorf("nodes: %v", snap.Nodes)
	}
	if len(snap.EndpointSlices) != 1 || snap.EndpointSlices[0].Metadata.Namespace != "web" {
		t.Errorf("endpoint slices: %v", snap.EndpointSlices)
	}
	want := map[string][2]string{ // resource → namespace, labelSelector
		"services":       {"web", "app=lb"},
		"nodes":          {"", "role=edge"},
		"endpointslices": {"web", ""},
	}
	for _, r := range f.requestsFor("") {
		w := want[r.resource]
		if r.namespace != w[0] || r.query.Get("labelSelector") != w[1] {
			t.Errorf("%v in namespace %q: want namespace %q, labelSelector %q", r, r.namespace, w[0], w[1])
		}
	}
}

func TestListPaginated(t *testing.T) {
	f := newFakeAPI(t, false)
	f.paginateAll = true
	for i := range 1201 {
		f.put("services", fakeService("ns", fmt.Sprintf("svc-%04d", i), nil))
	}
	listRV := strconv.Itoa(f.currentRV())
	c := newTestCache(t, f, Options{})
	waitSynced(t, c)
	keys := serviceKeys(c)
	if len(keys) != 1201 || keys[0] != "ns/svc-0000" || keys[1200] != "ns/svc-1200" {
		t.Fatalf("got %d services, %q...", len(keys), keys[:min(3, len(keys))])
	}
	waitFor(t, "a watch", func() bool { return len(f.requestsFor("services")) >= 4 })
	reqs := f.requestsFor("services")
	var got []string
	for _, r := range reqs[:4] {
		got = append(got, r.String())
	}
	want := []string{
		"list services limit=500&resourceVersion=0",
		"list services continue=token-1&limit=500",
		"list services continue=token-2&limit=500",
		"watch services allowWatchBookmarks=true&resourceVersion=" + listRV + "&timeoutSeconds=" + reqs[3].query.Get("timeoutSeconds") + "&watch=1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestContinueExpired(t *testing.T) {
	f := newFakeAPI(t, false)
	f.paginateAll = true
	for i := range 1100 {
		f.put("services", fakeService("ns", fmt.Sprintf("svc-%04d", i), nil))
	}
	var once sync.Once
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		expired := false
		if req.query.Get("continue") != "" {
			once.Do(func() { expired = true })
		}
		if expired {
			writeStatus(w, http.StatusGone, "Expired", "The provided continue parameter is too old to display a consistent list result.")
		}
		return expired
	})
	c := newTestCache(t, f, Options{})
	waitSynced(t, c)
	if n := len(serviceKeys(c)); n != 1100 {
		t.Errorf("got %d services, want 1100", n)
	}
	var got []string
	for _, r := range f.requestsFor("services") {
		if !r.watch {
			got = append(got, r.String())
		}
	}
	want := []string{
		"list services limit=500&resourceVersion=0",
		"list services continue=token-1&limit=500", // 410
		"list services limit=500&resourceVersion=0",
		"list services continue=token-2&limit=500",
		"list services continue=token-3&limit=500",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lists (-want +got):\n%s", diff)
	}
}

func TestWatchCutMidEvent(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("services", fakeService("ns", "a", nil))
	listRV := strconv.Itoa(f.currentRV())
	c := newTestCache(t, f, Options{})
	waitSynced(t, c)
	waitFor(t, "a watch", func() bool { return len(f.requestsFor("services")) >= 2 })

	f.mu.Lock()
	f.cutEvents = 1
	f.mu.Unlock()
	f.put("services", fakeService("ns", "b", nil))
	waitFor(t, "ns/b after the cut", func() bool { return len(serviceKeys(c)) == 2 })

	var watches []string
	for _, r := range f.requestsFor("services") {
		if !r.watch {
			if r.query.Get("resourceVersion") != "0" {
				t.Errorf("relisted: %v", r)
			}
			continue
		}
		watches = append(watches, r.query.Get("resourceVersion"))
	}
	// The second watch starts where the first one was cut: before b.
	if len(watches) < 2 || watches[0] != listRV || watches[1] != listRV {
		t.Errorf("watches from %q, want [%s %s ...]", watches, listRV, listRV)
	}
	if st := status(c, ResourceServices); st.Relists != 0 {
		t.Errorf("relists = %d", st.Relists)
	}
}

func TestBookmarkOnlyStreams(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("services", fakeService("ns", "a", nil))
	listRV := strconv.Itoa(f.currentRV())
	var mu sync.Mutex
	n := 0
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if req.resource != "services" || !req.watch {
			return false
		}
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		if i > 3 {
			// Stay open, quiet, until the test ends.
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return true
		}
		// resourceVersions are opaque: nothing numeric here.
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, `{"type":"BOOKMARK","object":{"kind":"Service","apiVersion":"v1","metadata":{"resourceVersion":"bm-%d","creationTimestamp":null}}}`+"\n", i)
		w.(http.Flusher).Flush()
		return true
	})
	c := newTestCache(t, f, Options{})
	waitSynced(t, c)
	waitFor(t, "4 watches", func() bool { return len(f.requestsFor("services")) >= 5 })
	var got []string
	for _, r := range f.requestsFor("services")[1:5] {
		if !r.watch {
			t.Fatalf("relisted: %v", r)
		}
		got = append(got, r.query.Get("resourceVersion"))
	}
	if diff := cmp.Diff([]string{listRV, "bm-1", "bm-2", "bm-3"}, got); diff != "" {
		t.Errorf("watch resourceVersions (-want +got):\n%s", diff)
	}
	if st := status(c, ResourceServices); st.WatchRestarts != 3 || st.Relists != 0 || st.Objects != 1 {
		t.Errorf("status %+v, want 3 watch restarts, no relist", st)
	}
}

// TestWatchGone covers 410 on a watch (as an ERROR event and as an HTTP
// status), the relist at the last resourceVersion, the fallback to the
// latest when that is too old as well, and objects deleted while the
// cache was away disappearing after the relist. A watch refused because
// the server has not reached its resourceVersion (etcd restored from a
// backup, its revisions gone back; a server lagging behind the one listed
// from) lists the latest too: watching from there again could fail for
// ever and leave the cache stale.
func TestWatchGone(t *testing.T) {
	for _, tc := range []struct {
		name          string
		goneHTTP      bool
		compactList   bool
		tooLarge      bool     // the relist lands on an apiserver that lags behind
		watchTooLarge bool     // the watch after the outage is refused as too large
		wantLists     []string // resourceVersion of each list; "-" for none
	}{
		// After a 410 the relist asks for the latest state (no
		// resourceVersion), as client-go does: a list at the expired
		// version would be an exact, stale read. Servers that would refuse
		// a relist at the old version as too old or too large therefore
		// never see one.
		{name: "error event", wantLists: []string{"0", "-"}},
		{name: "http 410", goneHTTP: true, wantLists: []string{"0", "-"}},
		{name: "relist too old", compactList: true, wantLists: []string{"0", "-"}},
		{name: "http 410, relist too old", goneHTTP: true, compactList: true, wantLists: []string{"0", "-"}},
		{name: "relist too large", tooLarge: true, wantLists: []string{"0", "-"}},
		{name: "watch too large", watchTooLarge: true, wantLists: []string{"0", "-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, false)
			f.goneHTTP = tc.goneHTTP
			f.put("services", fakeService("ns", "a", nil))
			f.put("services", fakeService("ns", "b", nil))
			c := newTestCache(t, f, Options{})
			waitSynced(t, c)
			waitFor(t, "a watch", func() bool { return len(f.requestsFor("services")) >= 2 })
			lastRV := strconv.Itoa(f.currentRV())
			for len(c.Changed()) > 0 {
				<-c.Changed()
			}

			// Away: every request refused, b deleted, c added, history
			// compacted.
			f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
				writeStatus(w, http.StatusServiceUnavailable, "ServiceUnavailable", "apiserver shutting down")
				return true
			})
			f.stopWatches()
			waitFor(t, "refused requests", func() bool { return !status(c, ResourceServices).Watching })
			f.remove("services", "ns/b")
			f.put("services", fakeService("ns", "c", nil))
			f.compact(tc.compactList)
			// The outage ends: requests pass, or, in one step, the
			// requests at lastRV of one kind are refused as too large.
			var hook func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool
			if tc.tooLarge || tc.watchTooLarge {
				hook = func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
					if req.watch != tc.watchTooLarge || req.query.Get("resourceVersion") != lastRV {
						return false
					}
					writeStatus(w, http.StatusGatewayTimeout, "Timeout", "Too large resource version: "+lastRV+", current: 3")
					return true
				}
			}
			f.setHook(hook)

			waitFor(t, "the relist", func() bool {
				k := serviceKeys(c)
				return len(k) == 2 && k[0] == "ns/a" && k[1] == "ns/c"
			})
			select {
			case <-c.Changed():
			default:
				t.Error("no change signalled")
			}
			var lists []string
			for _, r := range f.requestsFor("services") {
				if r.watch {
					continue
				}
				v, ok := r.query["resourceVersion"]
				switch {
				case !ok:
					lists = append(lists, "-")
				case v[0] == lastRV:
					lists = append(lists, "last")
				default:
					lists = append(lists, v[0])
				}
			}
			if diff := cmp.Diff(tc.wantLists, lists); diff != "" {
				t.Errorf("lists (-want +got):\n%s", diff)
			}
			if st := status(c, ResourceServices); st.Relists != 1 {
				t.Errorf("relists = %d, want 1", st.Relists)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	f := newFakeAPI(t, false)
	var once sync.Once
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		refused := false
		if req.resource == "services" {
			once.Do(func() { refused = true })
		}
		if refused {
			w.Header().Set("Retry-After", "1")
			writeStatus(w, http.StatusTooManyRequests, "TooManyRequests", "the server has received too many requests and has asked us to try again later")
		}
		return refused
	})
	c := newTestCache(t, f, Options{})
	waitSynced(t, c)
	reqs := f.requestsFor("services")
	// The backoff alone would retry after milliseconds.
	if d := reqs[1].at.Sub(reqs[0].at); d < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", d)
	}
}

// fakeAuth hands out the token "old" until refreshed, then "new". It
// records the Authorization of the requests Refresh is given.
type fakeAuth struct {
	mu        sync.Mutex
	refreshed int
	failed    []string
}

func (a *fakeAuth) Authorize(req *http.Request) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	tok := "old"
	if a.refreshed > 0 {
		tok = "new"
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

func (a *fakeAuth) Refresh(failed *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refreshed++
	if failed == nil {
		a.failed = append(a.failed, "no request")
	} else {
		a.failed = append(a.failed, failed.Header.Get("Authorization"))
	}
}

func TestUnauthorizedRefresh(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("services", fakeService("ns", "a", nil))
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if req.auth != "Bearer new" {
			writeStatus(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
			return true
		}
		return false
	})
	auth := &fakeAuth{}
	c, err := NewCache(f.config("", auth), Options{timing: fastTiming(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCache(t, c)
	waitSynced(t, c)
	if len(serviceKeys(c)) != 1 {
		t.Error("services not listed")
	}
	// Each reflector may see the other's refresh first: what matters is
	// that "old" was refused, refreshed, and never sent again.
	sawOld := false
	for _, res := range []string{"services", "nodes"} {
		reqs := f.requestsFor(res)
		for i, r := range reqs {
			if r.auth == "Bearer old" {
				sawOld = true
				if i > 0 {
					t.Errorf("%s: request %d sent the old token again", res, i)
				}
			}
		}
	}
	if !sawOld {
		t.Error("the old token was never sent")
	}
	// Refresh is told which request was refused: an exec plugin runs
	// again only for the token it handed out last.
	auth.mu.Lock()
	for _, h := range auth.failed {
		if h != "Bearer old" {
			t.Errorf("Refresh given a request with %q, want the refused one", h)
		}
	}
	auth.mu.Unlock()
	if st := status(c, ResourceServices); st.LastError != nil {
		t.Errorf("LastError = %v after the refresh", st.LastError)
	}
}

func TestForbidden(t *testing.T) {
	for _, tc := range []struct {
		namespace string
		want      string
	}{
		{"", "forbidden: list endpointslices.discovery.k8s.io at cluster scope: "},
		{"web", `forbidden: list endpointslices.discovery.k8s.io in namespace "web": `},
	} {
		t.Run("namespace="+tc.namespace, func(t *testing.T) {
			f := newFakeAPI(t, false)
			f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
				if req.resource != "endpointslices" {
					return false
				}
				writeStatus(w, http.StatusForbidden, "Forbidden", `endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:kube-system:kube2lb" cannot list resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope`)
				return true
			})
			c := newTestCache(t, f, Options{Namespace: tc.namespace, EndpointSlices: true})
			waitFor(t, "retries", func() bool { return len(f.requestsFor("endpointslices")) >= 3 })

			st := status(c, ResourceEndpointSlices)
			var se *StatusError
			if !errors.As(st.LastError, &se) || se.Code != http.StatusForbidden || se.Reason != "Forbidden" {
				t.Fatalf("LastError = %#v, want a *StatusError 403", st.LastError)
			}
			if msg := st.LastError.Error(); !strings.HasPrefix(msg, tc.want) || !strings.Contains(msg, "system:serviceaccount:kube-system:kube2lb") {
				t.Errorf("LastError = %q, want it to start with %q and name the user", msg, tc.want)
			}
			if st.Synced || st.Watching {
				t.Errorf("status %+v", st)
			}
			waitFor(t, "services synced", func() bool { return status(c, ResourceServices).Synced })
			if c.Synced() {
				t.Error("Synced() with endpointslices forbidden")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			if err := c.WaitSynced(ctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("WaitSynced: %v", err)
			}

			// RBAC fixed: the retries succeed.
			f.setHook(nil)
			waitSynced(t, c)
			if st := status(c, ResourceEndpointSlices); st.LastError != nil || !st.Watching {
				t.Errorf("status after RBAC was fixed: %+v", st)
			}
		})
	}
}

// TestShortWatches: watches that end at once without events are
// failures: the cache backs off, and says so.
func TestShortWatches(t *testing.T) {
	f := newFakeAPI(t, false)
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if req.resource == "services" && req.watch {
			w.WriteHeader(http.StatusOK)
			return true
		}
		return false
	})
	var logs lockedBuffer
	c := newTestCache(t, f, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	waitSynced(t, c)
	waitFor(t, "short watches", func() bool { return len(f.requestsFor("services")) >= 4 })
	waitFor(t, "the failure reported", func() bool {
		err := status(c, ResourceServices).LastError
		return err != nil && strings.Contains(err.Error(), "without events")
	})
	// Warned of once, not at every watch; and so its end, which each
	// watch's 200 seems to be.
	if n := strings.Count(logs.String(), `level=WARN msg="list+watch failed"`); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), `msg="API server answering again"`); n > 1 {
		t.Errorf("%d lines of the API server answering again, want at most 1:\n%s", n, logs.String())
	}
	for _, r := range f.requestsFor("services")[1:] {
		if !r.watch {
			t.Errorf("relisted: %v", r)
		}
	}
}

func TestServerErrorsBackoff(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("nodes", fakeNode("n", nil))
	failNodeRequests(f, 3)
	c := newTestCache(t, f, Options{})
	waitSynced(t, c)
	if len(c.Snapshot().Nodes) != 1 {
		t.Error("node not listed")
	}
	if n := len(f.requestsFor("nodes")); n < 4 {
		t.Errorf("%d node requests, want at least 4", n)
	}
}

// TestDeletedWhileAway: the apiserver restarts (watches end, requests
// refused) and compacts; the object deleted meanwhile vanishes with the
// relist, with every resource.
func TestDeletedWhileAway(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("nodes", fakeNode("n1", nil))
	f.put("nodes", fakeNode("n2", nil))
	f.put("endpointslices", fakeSlice("ns", "s1", "a"))
	f.put("endpointslices", fakeSlice("ns", "s2", "b"))
	c := newTestCache(t, f, Options{EndpointSlices: true})
	waitSynced(t, c)
	waitFor(t, "watches", func() bool {
		return len(f.requestsFor("nodes")) >= 2 && len(f.requestsFor("endpointslices")) >= 2
	})
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		panic(http.ErrAbortHandler) // connection reset
	})
	f.stopWatches()
	f.remove("nodes", "n2")
	f.remove("endpointslices", "ns/s1")
	f.compact(false)
	f.setHook(nil)
	waitFor(t, "relists", func() bool {
		s := c.Snapshot()
		return len(s.Nodes) == 1 && s.Nodes[0].Metadata.Name == "n1" &&
			len(s.EndpointSlices) == 1 && s.EndpointSlices[0].Metadata.Name == "s2"
	})
}

func TestServerPathPrefix(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("services", fakeService("ns", "a", nil))
	cfg := f.config("", nil)
	cfg.Server.Path = fakePrefix + "/"
	c, err := NewCache(cfg, Options{timing: fastTiming(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCache(t, c)
	waitSynced(t, c)
	if len(serviceKeys(c)) != 1 {
		t.Error("services not listed")
	}
}

// TestProxy: requests go through cfg.Proxy, watches included.
func TestProxy(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("services", fakeService("ns", "a", nil))
	var mu sync.Mutex
	proxied := 0
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.Out.URL = pr.In.URL },
		FlushInterval: -1,
	}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxied++
		mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	cfg := f.config("", nil)
	proxyURL, _ := url.Parse(proxy.URL)
	cfg.Proxy = http.ProxyURL(proxyURL)
	c, err := NewCache(cfg, Options{timing: fastTiming(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCache(t, c)
	waitSynced(t, c)
	f.put("services", fakeService("ns", "b", nil))
	waitFor(t, "a watch event through the proxy", func() bool { return len(serviceKeys(c)) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if n := len(f.requestsFor("")); proxied != n {
		t.Errorf("%d requests proxied, %d served", proxied, n)
	}
}

func TestNewCacheErrors(t *testing.T) {
	u, _ := url.Parse("ftp://example.com")
	for _, tc := range []struct {
		name string
		cfg  *kubeconfig.Config
		want string
	}{
		{"nil", nil, "no API server"},
		{"no server", &kubeconfig.Config{Auth: noAuth{}}, "no API server"},
		{"scheme", &kubeconfig.Config{Server: u, Auth: noAuth{}}, "scheme"},
		{"no auth", &kubeconfig.Config{Server: &url.URL{Scheme: "https", Host: "h"}}, "authenticator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewCache(tc.cfg, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSortedViewFollowsEvents applies random stores and deletes to a
// sorted view and checks it against sorting the map anew each time.
func TestSortedViewFollowsEvents(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := map[string]*Service{}
	var v sortedView[*Service]
	for i := range 2000 {
		s := &Service{Metadata: ObjectMeta{Namespace: fmt.Sprint("ns-", rng.IntN(5)), Name: fmt.Sprint("svc-", rng.IntN(40))}}
		deleted := rng.IntN(3) == 0
		key := s.Metadata.Key()
		if _, ok := m[key]; deleted && !ok {
			continue // the reflector drops deletes of unknown objects
		}
		if deleted {
			delete(m, key)
		} else {
			m[key] = s
		}
		v.apply(deleted, s)
		if i%500 == 0 {
			v.valid = false // a relist
		}
		got, want := v.get(m), sortedObjectsOf(m)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: sorted view differs from the map", i)
		}
	}
}

// TestExposedOnly caches only NodePort and LoadBalancer Services, whether
// the API server filters them (Kubernetes 1.31 on) or refuses the field
// selector, to its list or (another server behind the same address) to a
// watch, when they are filtered on arrival.
func TestExposedOnly(t *testing.T) {
	typed := func(name, typ string) map[string]any {
		s := fakeService("web", name, nil)
		s["spec"].(map[string]any)["type"] = typ
		return s
	}
	const selector = "spec.type!=ClusterIP,spec.type!=ExternalName"
	for _, refused := range []string{"", "list", "watch"} {
		t.Run("refused="+refused, func(t *testing.T) {
			f := newFakeAPI(t, false)
			if refused != "" {
				f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
					if req.resource == "services" && req.query.Has("fieldSelector") && req.watch == (refused == "watch") {
						// Kubernetes 1.30's answer.
						writeStatus(w, http.StatusBadRequest, "BadRequest", "field label not supported: spec.type")
						return true
					}
					return false
				})
			}
			f.put("services", typed("np", ServiceTypeNodePort))
			f.put("services", typed("cip", ServiceTypeClusterIP))
			f.put("services", typed("lb", ServiceTypeLoadBalancer))
			f.put("services", typed("en", ServiceTypeExternalName))
			c := newTestCache(t, f, Options{ExposedOnly: true})
			waitSynced(t, c)
			if diff := cmp.Diff([]string{"web/lb", "web/np"}, serviceKeys(c)); diff != "" {
				t.Errorf("services (-want +got):\n%s", diff)
			}
			// A type that changes in or out: the API server sends the
			// object that comes into the selector as added, one that leaves
			// it as deleted (the fake too); the refusing one sends updates,
			// and the cache takes one out of the selector as a deletion.
			f.put("services", typed("cip", ServiceTypeNodePort))
			waitFor(t, "cip in", func() bool { return slices.Contains(serviceKeys(c), "web/cip") })
			f.put("services", typed("np", ServiceTypeClusterIP))
			waitFor(t, "np out", func() bool { return !slices.Contains(serviceKeys(c), "web/np") })
			reqs := f.requestsFor("services")
			last := reqs[len(reqs)-1]
			if got := reqs[0].query.Get("fieldSelector"); got != selector {
				t.Errorf("first request's field selector %q, want %q", got, selector)
			}
			if want := map[bool]string{true: selector, false: ""}[refused == ""]; last.query.Get("fieldSelector") != want {
				t.Errorf("last request's field selector %q, want %q", last.query.Get("fieldSelector"), want)
			}
			lists := 0
			for _, r := range reqs {
				if !r.watch {
					lists++
				}
			}
			// Refused by a watch: the list without the selector starts over.
			if want := map[string]int{"": 1, "list": 2, "watch": 2}[refused]; lists != want {
				t.Errorf("%d lists, want %d", lists, want)
			}
		})
	}
	// A 400 for another reason leaves the selector alone.
	f := newFakeAPI(t, false)
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if req.resource == "services" && len(f.requestsFor("services")) == 1 {
			writeStatus(w, http.StatusBadRequest, "BadRequest", "something else")
			return true
		}
		return false
	})
	f.put("services", typed("np", ServiceTypeNodePort))
	c := newTestCache(t, f, Options{ExposedOnly: true})
	waitSynced(t, c)
	for _, r := range f.requestsFor("services") {
		if r.query.Get("fieldSelector") != selector {
			t.Errorf("after another 400, a request with field selector %q", r.query.Get("fieldSelector"))
		}
	}
	// Without the option, every Service is cached, and no field selector sent.
	// (Another fake: the one above still answers the cache above, through
	// the hook that reads f.)
	plain := newFakeAPI(t, false)
	plain.put("services", typed("cip", ServiceTypeClusterIP))
	pc := newTestCache(t, plain, Options{})
	waitSynced(t, pc)
	if diff := cmp.Diff([]string{"web/cip"}, serviceKeys(pc)); diff != "" {
		t.Errorf("services without ExposedOnly (-want +got):\n%s", diff)
	}
	if r := plain.requestsFor("services"); r[0].query.Has("fieldSelector") {
		t.Errorf("field selector %q without ExposedOnly", r[0].query.Get("fieldSelector"))
	}
}

// exposedTiming is fastTiming with the lists the cache asks for not spaced
// out, and no idle watchdog: a watch that the cache fails to stop for its
// list would hang the tests rather than end 90 s later.
func exposedTiming() timing {
	t := fastTiming()
	t.listAsked, t.idleRead, t.idleWatch = time.Nanosecond, time.Hour, time.Hour
	return t
}

// TestExposedSlices: with ExposedOnly, the cache keeps the EndpointSlices
// of the Services it caches, lists them again when a Service whose slices
// it dropped comes (a type changed to NodePort, a slice that came before
// its Service), and not otherwise.
func TestExposedSlices(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "http2"}[h2], func(t *testing.T) { testExposedSlices(t, h2) })
	}
}

func testExposedSlices(t *testing.T, h2 bool) {
	service := func(name, typ string) map[string]any {
		s := fakeService("web", name, nil)
		s["spec"].(map[string]any)["type"] = typ
		return s
	}
	sliceKeys := func(c *Cache) []string {
		var keys []string
		for _, s := range c.Snapshot().EndpointSlices {
			keys = append(keys, s.Metadata.Key())
		}
		return keys
	}
	lists := func(f *fakeAPI) int {
		n := 0
		for _, r := range f.requestsFor("endpointslices") {
			if !r.watch {
				n++
			}
		}
		return n
	}
	// has waits until the cache holds the slice key, after which it has
	// seen every event of slices before it; hasService likewise.
	has := func(c *Cache, key string) {
		t.Helper()
		waitFor(t, key, func() bool { return slices.Contains(sliceKeys(c), key) })
	}
	hasService := func(c *Cache, key string) {
		t.Helper()
		waitFor(t, key, func() bool { return slices.Contains(serviceKeys(c), key) })
	}

	f := newFakeAPI(t, h2)
	wantLists := func(want int) {
		t.Helper()
		if n := lists(f); n != want {
			t.Errorf("%d lists of slices, want %d", n, want)
		}
	}
	f.put("services", service("np", ServiceTypeNodePort))
	f.put("services", service("cip", ServiceTypeClusterIP))
	f.put("endpointslices", fakeSlice("web", "np-1", "np"))
	f.put("endpointslices", fakeSlice("web", "cip-1", "cip"))
	f.put("endpointslices", fakeSlice("web", "ghost-1", "ghost")) // no such Service
	f.put("endpointslices", fakeSlice("web", "custom", ""))       // no Service's
	c := newTestCache(t, f, Options{ExposedOnly: true, EndpointSlices: true, timing: exposedTiming()})
	waitSynced(t, c)
	if diff := cmp.Diff([]string{"web/np-1"}, sliceKeys(c)); diff != "" {
		t.Errorf("slices after the first lists (-want +got):\n%s", diff)
	}
	if st := status(c, ResourceEndpointSlices); st.Objects != 1 {
		t.Errorf("status counts %d slices, want 1", st.Objects)
	}

	// Events of slices not kept change nothing.
	f.put("endpointslices", fakeSlice("web", "cip-2", "cip"))
	f.put("endpointslices", fakeSlice("web", "np-2", "np"))
	has(c, "web/np-2")
	if diff := cmp.Diff([]string{"web/np-1", "web/np-2"}, sliceKeys(c)); diff != "" {
		t.Errorf("slices after events (-want +got):\n%s", diff)
	}
	wantLists(1)

	// A ClusterIP Service turns NodePort: its slices are listed again, a
	// list asked for, not a failure.
	f.put("services", service("cip", ServiceTypeNodePort))
	has(c, "web/cip-1")
	has(c, "web/cip-2")
	if st := status(c, ResourceEndpointSlices); st.Relists != 1 || st.WatchRestarts != 0 || st.LastError != nil || !st.Watching {
		t.Errorf("slices after a list asked for: relists %d, watches restarted %d, watching %v, last error %v",
			st.Relists, st.WatchRestarts, st.Watching, st.LastError)
	}

	// A slice that comes before its Service, then the Service.
	f.put("endpointslices", fakeSlice("web", "late-1", "late"))
	f.put("endpointslices", fakeSlice("web", "np-3", "np"))
	has(c, "web/np-3")
	f.put("services", service("late", ServiceTypeLoadBalancer))
	has(c, "web/late-1")
	wantLists(3)

	// A Service cached before its slice comes: no list. (Services and
	// slices are two watches: each step waits for the cache to have seen
	// the one before.)
	f.put("services", service("fresh", ServiceTypeNodePort))
	hasService(c, "web/fresh")
	f.put("endpointslices", fakeSlice("web", "fresh-1", "fresh"))
	has(c, "web/fresh-1")
	wantLists(3)
	// A Service whose dropped slice was deleted before it turned NodePort
	// is noted until the next list: one list, and none the next time.
	f.put("services", service("gone", ServiceTypeClusterIP))
	f.put("endpointslices", fakeSlice("web", "gone-1", "gone"))
	f.remove("endpointslices", "web/gone-1")
	f.put("endpointslices", fakeSlice("web", "np-4", "np"))
	has(c, "web/np-4")
	f.put("services", service("gone", ServiceTypeNodePort))
	hasService(c, "web/gone")
	waitFor(t, "a list", func() bool { return lists(f) == 4 })
	f.remove("services", "web/gone")
	waitFor(t, "web/gone out", func() bool { return !slices.Contains(serviceKeys(c), "web/gone") })
	f.put("services", service("gone", ServiceTypeNodePort))
	hasService(c, "web/gone")
	f.put("endpointslices", fakeSlice("web", "np-5", "np"))
	has(c, "web/np-5")
	wantLists(4)

	// A Service that turns ClusterIP (the API server sends it as deleted
	// from the field selector): its slices go at their next event.
	f.put("services", service("np", ServiceTypeClusterIP))
	waitFor(t, "web/np gone", func() bool { return !slices.Contains(serviceKeys(c), "web/np") })
	f.put("endpointslices", fakeSlice("web", "np-1", "np"))
	f.put("endpointslices", fakeSlice("web", "fresh-2", "fresh"))
	has(c, "web/fresh-2")
	if slices.Contains(sliceKeys(c), "web/np-1") {
		t.Error("web/np-1 kept after an event, its Service ClusterIP")
	}
	if want := []string{"web/cip-1", "web/cip-2", "web/fresh-1", "web/fresh-2", "web/late-1", "web/np-2", "web/np-3", "web/np-4", "web/np-5"}; !cmp.Equal(want, sliceKeys(c)) {
		t.Errorf("slices at the end (-want +got):\n%s", cmp.Diff(want, sliceKeys(c)))
	}

	// Without ExposedOnly, every slice is kept: those above, np-1,
	// ghost-1 and custom.
	plain := newTestCache(t, f, Options{EndpointSlices: true})
	waitSynced(t, plain)
	if n := len(plain.Snapshot().EndpointSlices); n != 12 {
		t.Errorf("%d slices without ExposedOnly, want 12", n)
	}
}

// TestExposedSlicesListedFirst: slices listed before the first list of
// Services are kept until it, then those of Services not cached dropped.
func TestExposedSlicesListedFirst(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("services", fakeService("web", "np", nil))
	cip := fakeService("web", "cip", nil)
	cip["spec"].(map[string]any)["type"] = ServiceTypeClusterIP
	f.put("services", cip)
	f.put("endpointslices", fakeSlice("web", "np-1", "np"))
	f.put("endpointslices", fakeSlice("web", "cip-1", "cip"))
	release := make(chan struct{})
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if req.resource == "services" && !req.watch {
			<-release
		}
		return false
	})
	c := newTestCache(t, f, Options{ExposedOnly: true, EndpointSlices: true, timing: exposedTiming()})
	waitFor(t, "slices listed", func() bool { return status(c, ResourceEndpointSlices).Synced })
	if n := len(c.Snapshot().EndpointSlices); n != 2 {
		t.Errorf("%d slices before Services are listed, want 2", n)
	}
	close(release)
	waitSynced(t, c)
	snap := c.Snapshot()
	if len(snap.EndpointSlices) != 1 || snap.EndpointSlices[0].Metadata.Name != "np-1" {
		t.Errorf("slices after Services are listed: %v", snap.EndpointSlices)
	}
	if st := status(c, ResourceEndpointSlices); st.Objects != 1 {
		t.Errorf("status counts %d slices, want 1", st.Objects)
	}
	// cip turns NodePort: its slice, dropped when Services were listed,
	// is listed again.
	cip["spec"].(map[string]any)["type"] = ServiceTypeNodePort
	f.put("services", cip)
	waitFor(t, "web/cip-1", func() bool { return len(c.Snapshot().EndpointSlices) == 2 })
}

// TestExposedSlicesListedAcross: a list of slices under way when the
// first list of Services comes in drops, once installed, what it decoded
// before (its first page).
func TestExposedSlicesListedAcross(t *testing.T) {
	f := newFakeAPI(t, false)
	f.paginateAll = true
	cip := fakeService("web", "cip", nil)
	cip["spec"].(map[string]any)["type"] = ServiceTypeClusterIP
	f.put("services", cip)
	f.put("services", fakeService("web", "np", nil))
	for i := range pageSize {
		f.put("endpointslices", fakeSlice("web", fmt.Sprintf("cip-%03d", i), "cip"))
	}
	f.put("endpointslices", fakeSlice("web", "np-1", "np")) // the second page
	firstPage := make(chan struct{})
	var once sync.Once
	var cache atomic.Pointer[Cache]
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		switch {
		case req.resource == "services" && !req.watch:
			<-firstPage
		case req.resource == "endpointslices" && req.query.Has("continue"):
			once.Do(func() { close(firstPage) })
			// Until the Services are listed (not waitFor: its Fatal
			// belongs to the test's goroutine; waitSynced bounds this).
			for c := cache.Load(); c == nil || !status(c, ResourceServices).Synced; c = cache.Load() {
				time.Sleep(time.Millisecond)
			}
		}
		return false
	})
	c := newTestCache(t, f, Options{ExposedOnly: true, EndpointSlices: true, timing: exposedTiming()})
	cache.Store(c)
	waitSynced(t, c)
	snap := c.Snapshot()
	if len(snap.EndpointSlices) != 1 || snap.EndpointSlices[0].Metadata.Name != "np-1" {
		t.Errorf("%d slices, want only np-1", len(snap.EndpointSlices))
	}
	if st := status(c, ResourceEndpointSlices); st.Objects != 1 {
		t.Errorf("status counts %d slices, want 1", st.Objects)
	}
}

// TestExposedSlicesServicesRelisted: a Service whose slice was dropped,
// brought in by a list of Services (after a 410), has its slices listed.
func TestExposedSlicesServicesRelisted(t *testing.T) {
	f, c, cip := exposedFixture(t)
	release := make(chan struct{})
	var lists atomic.Int32
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		switch {
		case req.resource == "services" && req.watch:
			writeStatus(w, http.StatusGone, "Expired", "too old resource version")
			return true
		case req.resource == "services":
			lists.Add(1)
			<-release
		}
		return false
	})
	f.stopWatches()
	waitFor(t, "a list of Services", func() bool { return lists.Load() >= 1 })
	cip["spec"].(map[string]any)["type"] = ServiceTypeNodePort
	f.put("services", cip)
	close(release)
	waitFor(t, "web/cip-1", func() bool { return len(c.Snapshot().EndpointSlices) == 2 })
}

// TestExposedSlicesAskedAtOpen: a list asked for while the watch of
// slices is being opened (no watch to stop yet) is not lost.
func TestExposedSlicesAskedAtOpen(t *testing.T) {
	f, c, cip := exposedFixture(t)
	hold := make(chan struct{})
	var held atomic.Int32
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if req.resource == "endpointslices" && req.watch && held.Add(1) == 1 {
			<-hold
		}
		return false
	})
	f.stopWatches()
	waitFor(t, "the watch of slices held", func() bool { return held.Load() >= 1 })
	cip["spec"].(map[string]any)["type"] = ServiceTypeNodePort
	f.put("services", cip)
	waitFor(t, "web/cip", func() bool { return slices.Contains(serviceKeys(c), "web/cip") })
	close(hold)
	waitFor(t, "web/cip-1", func() bool { return len(c.Snapshot().EndpointSlices) == 2 })
}

// TestExposedSlicesListsSpaced: the lists the cache asks for are
// listAsked apart, however fast Services with dropped slices come.
func TestExposedSlicesListsSpaced(t *testing.T) {
	f := newFakeAPI(t, false)
	for _, name := range []string{"a", "b"} {
		s := fakeService("web", name, nil)
		s["spec"].(map[string]any)["type"] = ServiceTypeClusterIP
		f.put("services", s)
		f.put("endpointslices", fakeSlice("web", name+"-1", name))
	}
	tm := exposedTiming()
	tm.listAsked = 300 * time.Millisecond
	c := newTestCache(t, f, Options{ExposedOnly: true, EndpointSlices: true, timing: tm})
	waitSynced(t, c)
	f.put("services", fakeService("web", "a", nil))
	waitFor(t, "web/a-1", func() bool { return len(c.Snapshot().EndpointSlices) == 1 })
	f.put("services", fakeService("web", "b", nil))
	waitFor(t, "web/b-1", func() bool { return len(c.Snapshot().EndpointSlices) == 2 })
	var at []time.Time
	for _, r := range f.requestsFor("endpointslices") {
		if !r.watch {
			at = append(at, r.at)
		}
	}
	// The cache spaces the lists from the moment it asks for them; the
	// requests reach the server a little after, each its own delay: the
	// bound is half the spacing, where lists not spaced would be a few
	// milliseconds apart.
	if len(at) != 3 || at[2].Sub(at[1]) < tm.listAsked/2 {
		t.Errorf("lists of slices at %v, want 3, the last two %v apart at least", at, tm.listAsked/2)
	}
}

// exposedFixture is a cache of Services np (NodePort) and cip (ClusterIP,
// returned to be changed), each with a slice; only np's is kept.
func exposedFixture(t *testing.T) (*fakeAPI, *Cache, map[string]any) {
	f := newFakeAPI(t, false)
	f.put("services", fakeService("web", "np", nil))
	cip := fakeService("web", "cip", nil)
	cip["spec"].(map[string]any)["type"] = ServiceTypeClusterIP
	f.put("services", cip)
	f.put("endpointslices", fakeSlice("web", "np-1", "np"))
	f.put("endpointslices", fakeSlice("web", "cip-1", "cip"))
	c := newTestCache(t, f, Options{ExposedOnly: true, EndpointSlices: true, timing: exposedTiming()})
	waitSynced(t, c)
	if n := len(c.Snapshot().EndpointSlices); n != 1 {
		t.Fatalf("%d slices, want 1", n)
	}
	return f, c, cip
}

// TestAskedRelistNeverGoesBack: the list the cache asks for when a Service
// whose EndpointSlices were dropped comes is at the last resourceVersion
// seen, not older than it. At "0" (any), a server whose watch cache lags
// (another replica) answers with an older state, and a slice deleted since
// came back into the configuration.
func TestAskedRelistNeverGoesBack(t *testing.T) {
	f, c, cip := exposedFixture(t)
	f.mu.Lock()
	staleRV := f.rv
	stale := string(f.objects["endpointslices"]["web/np-1"].raw) + "," + string(f.objects["endpointslices"]["web/cip-1"].raw)
	f.mu.Unlock()
	f.remove("endpointslices", "web/np-1")
	waitFor(t, "np-1 deleted", func() bool { return len(c.Snapshot().EndpointSlices) == 0 })
	deletedRV := f.currentRV()

	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if req.resource != "endpointslices" || req.watch || req.query.Get("resourceVersion") != "0" {
			return false
		}
		// A lagging server's watch cache: a valid answer to "0".
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"%d"},"items":[%s]}`, staleRV, stale)
		return true
	})
	cip["spec"].(map[string]any)["type"] = ServiceTypeNodePort
	f.put("services", cip)
	waitFor(t, "cip-1 listed", func() bool { return len(c.Snapshot().EndpointSlices) > 0 })
	var keys []string
	for _, s := range c.Snapshot().EndpointSlices {
		keys = append(keys, s.Metadata.Key())
	}
	if want := []string{"web/cip-1"}; !slices.Equal(keys, want) {
		t.Errorf("slices after the relist: %v, want %v", keys, want)
	}
	var relists []fakeRequest
	for _, r := range f.requestsFor("endpointslices")[1:] { // the first is the first list, at "0"
		if !r.watch {
			relists = append(relists, r)
		}
	}
	if len(relists) == 0 {
		t.Fatal("no relist")
	}
	q := relists[0].query
	if rv, err := strconv.Atoi(q.Get("resourceVersion")); err != nil || rv < deletedRV || q.Get("resourceVersionMatch") != "NotOlderThan" || q.Has("limit") {
		t.Errorf("relist with %v, want resourceVersion %d or later, NotOlderThan, no limit (the watch cache's)", q, deletedRV)
	}
}

// TestTransportProxy: a kubeconfig's proxy-url is used; without one, the
// environment's proxy (HTTPS_PROXY, NO_PROXY), as client-go does.
func TestTransportProxy(t *testing.T) {
	viaURL := func(*http.Request) (*url.URL, error) { return url.Parse("http://proxy.example:3128") }
	tr := newTransport(&kubeconfig.Config{Proxy: viaURL}, fastTiming(), nil)
	req, _ := http.NewRequest("GET", "https://api.example/api", nil)
	if u, err := tr.Proxy(req); err != nil || u == nil || u.Host != "proxy.example:3128" {
		t.Errorf("proxy-url: %v, %v", u, err)
	}
	if tr := newTransport(&kubeconfig.Config{}, fastTiming(), nil); tr.Proxy == nil {
		t.Error("no proxy-url: the environment's proxy is not used")
	}
}

// TestBackoffStartsOverAfterAHealthyWatch: failures in a row lengthen the
// wait, but once a watch worked for healthyWatch, the next outage starts
// again at backoffBase: an API server restarted a minute after an outage
// is watched again at once, not after the outage's longest wait.
func TestBackoffStartsOverAfterAHealthyWatch(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("nodes", fakeNode("n", nil))
	failNodeRequests(f, 8) // waits of 5 ms to 640 ms
	var logs lockedBuffer
	tm := timing{backoffBase: 5 * time.Millisecond, backoffMax: time.Minute, backoffReset: time.Hour, healthyWatch: 100 * time.Millisecond, shortWatch: 10 * time.Millisecond}
	c := newTestCache(t, f, Options{timing: tm, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	waitSynced(t, c)
	// The failed requests were lists: wait for the watch (it may have
	// started before waitSynced returned).
	waitFor(t, "watch", func() bool {
		return slices.ContainsFunc(f.requestsFor("nodes"), func(r fakeRequest) bool { return r.watch })
	})
	time.Sleep(300 * time.Millisecond) // the watch works for longer than healthyWatch
	// The failures' end is said once: the failures that repeated the
	// first one's text were not warned of.
	if got := strings.Count(logs.String(), `msg="API server answering again" resource=nodes`); got != 1 {
		t.Errorf("%d lines of the API server answering again, want 1:\n%s", got, logs.String())
	}

	failNodeRequests(f, 1)
	before := strings.Count(logs.String(), "list+watch failed")
	f.stopWatches()
	waitFor(t, "the failure after the watch", func() bool { return strings.Count(logs.String(), "list+watch failed") > before })
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	last := lines[len(lines)-1]
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "list+watch failed") {
			last = lines[i]
			break
		}
	}
	if !regexp.MustCompile(`wait=[45](\.\d+)?ms`).MatchString(last) {
		t.Errorf("after a healthy watch, want a wait of backoffBase (5ms); got %s", last)
	}
}

// TestBackoffGrowsWhileRequestsHang: an attempt that lasts healthyWatch
// but is never answered (a server that accepts connections and hangs) is
// a failure like any other: the waits keep growing.
func TestBackoffGrowsWhileRequestsHang(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("nodes", fakeNode("n", nil))
	var logs lockedBuffer
	tm := timing{backoffBase: 5 * time.Millisecond, backoffMax: time.Minute, backoffReset: time.Hour,
		healthyWatch: 50 * time.Millisecond, shortWatch: 10 * time.Millisecond, responseHeader: 100 * time.Millisecond}
	// At debug level: the repeats of one outage are (warned of once).
	c := newTestCache(t, f, Options{timing: tm, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	waitSynced(t, c)
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if req.resource != "nodes" {
			return false
		}
		<-r.Context().Done() // no answer: the client gives up after responseHeader
		return true
	})
	f.stopWatches()
	// Waits of 5, 10, 20, 40 and 80 ms, less a fifth at most: the fifth
	// failure in a row waits more than 60 ms.
	longer := regexp.MustCompile(`resource=nodes .*wait=([6-9]\d|\d{3,})ms`)
	waitFor(t, "a longer wait", func() bool { return longer.MatchString(logs.String()) })
	f.setHook(nil)
}

// failNodeRequests has the next n requests for nodes answered 502.
func failNodeRequests(f *fakeAPI, n int) {
	var mu sync.Mutex
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		mu.Lock()
		defer mu.Unlock()
		if req.resource == "nodes" && n > 0 {
			n--
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
			return true
		}
		return false
	})
}

// lockedBuffer is a bytes.Buffer for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestOutageWarnedOnce: while the API server is away, the watches' errors
// (connection refused) read the same at every retry, although each
// watch's URL has a random timeoutSeconds: warned of once, then at debug.
func TestOutageWarnedOnce(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("nodes", fakeNode("n", nil))
	var logs lockedBuffer
	tm := timing{backoffBase: 2 * time.Millisecond, backoffMax: 4 * time.Millisecond, backoffReset: time.Hour, healthyWatch: time.Hour, shortWatch: time.Millisecond}
	c := newTestCache(t, f, Options{timing: tm, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	waitSynced(t, c)
	waitFor(t, "a watch", func() bool { return len(f.requestsFor("nodes")) >= 2 })
	// Away: connections refused. (Not f.close, which waits for a watch
	// that may start meanwhile.)
	f.srv.Listener.Close()
	f.stopWatches()
	f.srv.CloseClientConnections()
	failed := regexp.MustCompile(`level=(WARN|DEBUG) msg="list\+watch failed" resource=nodes err="watch nodes at cluster scope: Get \\"http://127\.0\.0\.1:\d+/api/v1/nodes[^"]*\\": `)
	waitFor(t, "ten failed watches", func() bool { return len(failed.FindAllString(logs.String(), -1)) >= 10 })
	if n := strings.Count(logs.String(), `level=WARN msg="list+watch failed" resource=nodes err="watch nodes at cluster scope: Get`); n != 1 {
		t.Errorf("%d warnings for one outage, want 1:\n%s", n, logs.String())
	}
}

// A list whose pages never stop carrying a continue token (a proxy that
// drops the continue parameter gives back page 1 forever; a broken server
// may send a new token each time) fails, and the reflector
// backs off and lists again from page 1, rather than asking for the next
// page without end.
func TestListThatNeverEnds(t *testing.T) {
	const notContinued = "page 2 does not continue the list"
	for _, tc := range []struct {
		name   string
		token  func(n int64) string
		rv     func(n int64) int64
		wantIn string
	}{
		// A proxy that drops continue: page 1 again, on a quiet cluster,
		// and on a busy one (a new resourceVersion and token each time).
		{"same token", func(int64) string { return "SAME" }, func(int64) int64 { return 100 }, notContinued},
		{"page 1 again", func(n int64) string { return fmt.Sprint("T", n) }, func(n int64) int64 { return 100 + n }, notContinued},
		// A server that never stops sending new tokens.
		{"new tokens", func(n int64) string { return fmt.Sprint("T", n) }, func(int64) int64 { return 100 }, "the list does not end: 5 pages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(n int) { maxListPages = n }(maxListPages)
			maxListPages = 5
			f := newFakeAPI(t, false)
			var first, next atomic.Int64 // list requests without and with a continue token
			f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
				if req.resource != "services" || req.watch {
					return false
				}
				n := first.Add(0)
				if req.query.Get("continue") == "" {
					n = first.Add(1)
				} else {
					next.Add(1)
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"%d","continue":%q},"items":[]}`, tc.rv(n+next.Load()), tc.token(n+next.Load()))
				return true
			})
			c := newTestCache(t, f, Options{})
			// Each page that answers marks the API healthy, which clears
			// LastError: the failure shows between two lists.
			failed := func() bool {
				err := status(c, ResourceServices).LastError
				return err != nil && strings.Contains(err.Error(), tc.wantIn)
			}
			waitFor(t, "the list to fail, or pages past the bound", func() bool {
				return (first.Load() >= 3 && failed()) || next.Load() > 10*int64(maxListPages)
			})
			if !failed() && next.Load() > 10*int64(maxListPages) {
				t.Errorf("LastError = %v, want one saying %q", status(c, ResourceServices).LastError, tc.wantIn)
			}
			// Each list asks for page 1 once and for at most
			// maxListPages-1 more; one may be under way.
			if f, n := first.Load(), next.Load(); n > (f+1)*int64(maxListPages-1) {
				t.Errorf("%d requests for page 1 and %d with a continue token: the list does not stop at %d pages", f, n, maxListPages)
			}
			if st := status(c, ResourceServices); st.Synced {
				t.Errorf("services synced from a list that never ended: %+v", st)
			}
		})
	}
}

// TestForbiddenWhileTheServerStarts: an API server answers 403 for a
// moment while it starts, before its RBAC is loaded. kube2lb backs off
// from a 403 as from any failure, so the watch is back within the first
// backoffs, not after a fixed long wait (it was 30 s).
func TestForbiddenWhileTheServerStarts(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("services", fakeService("ns", "a", nil))
	var refused atomic.Int64
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if req.resource != "services" || refused.Add(1) > 2 {
			return false
		}
		writeStatus(w, http.StatusForbidden, "Forbidden", `services is forbidden: User "kube2lb" cannot list resource "services" in API group "" at the cluster scope`)
		return true
	})
	tm := fastTiming()
	tm.backoffBase, tm.backoffMax = 20*time.Millisecond, time.Hour
	start := time.Now()
	c := newTestCache(t, f, Options{timing: tm})
	waitSynced(t, c)
	// Two backoffs of 20 and 40 ms (jittered); anything near a fixed
	// 30 s wait is the old behaviour.
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("synced %v after two 403s, want within the first backoffs", d)
	}
}

// bearer authorizes with a fixed token.
type bearer string

func (b bearer) Authorize(r *http.Request) error {
	r.Header.Set("Authorization", "Bearer "+string(b))
	return nil
}
func (bearer) Refresh(*http.Request) {}

// TestRedirectNotFollowed checks that an API server's redirect is an
// error, not a request elsewhere with kube2lb's credentials.
func TestRedirectNotFollowed(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	t.Cleanup(elsewhere.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	u, _ := url.Parse(redirector.URL)
	cfg := &kubeconfig.Config{Server: u, Auth: bearer("secret"), Source: "test"}
	c, err := NewCache(cfg, Options{timing: fastTiming(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCache(t, c)
	waitFor(t, "a failed list", func() bool {
		for _, s := range c.Status() {
			if s.LastError != nil {
				return strings.Contains(s.LastError.Error(), "307")
			}
		}
		return false
	})
	w, err := NewWriter(cfg, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.PatchServiceStatus(context.Background(), "ns", "a", "1", nil); err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("PatchServiceStatus error = %v, want the 307", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) > 0 {
		t.Errorf("requests followed the redirect: %q", leaked)
	}
}
