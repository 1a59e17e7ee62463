package kubeapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube2lb/kube2lb/kubeconfig"
)

// fakeAPI is an API server for tests. It serves lists and watches of
// services, nodes and endpointslices from objects held in memory and
// speaks the real protocol: paginated lists with continue tokens,
// chunked watch streams of newline-delimited events, flushed one by one,
// Status bodies for errors. Tests change objects, compact the history and
// script failures through hook.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	rv       int                            // last resourceVersion handed out
	objects  map[string]map[string]*fakeObj // resource → key → object
	history  []fakeEvent                    // every event, oldest first
	watchRV  int                            // watches from before this resourceVersion get 410
	listRV   int                            // lists at a resourceVersion before this get 410
	goneHTTP bool                           // answer expired watches with HTTP 410 rather than an ERROR event
	// paginateAll makes lists at resourceVersion=0 honour limit, as an
	// apiserver without watch cache does.
	paginateAll bool
	tokens      map[string]*fakeListing // continue token → listing in progress
	nextToken   int
	cutEvents   int           // abort the connection in the middle of the next so many watch events
	wake        chan struct{} // closed and replaced on every event
	endWatches  chan struct{} // closed and replaced to end every watch cleanly
	requests    []fakeRequest
	// hook, when set, sees every request first; it returns true when it
	// answered the request itself.
	hook func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool
}

type fakeObj struct {
	key, ns string
	labels  map[string]string
	typ     string // a Service's spec.type
	raw     []byte
}

type fakeEvent struct {
	resource string
	typ      string
	rv       int
	obj      *fakeObj
	prev     *fakeObj // the object a MODIFIED event replaced
}

type fakeListing struct {
	items []*fakeObj
	rv    int
}

// fakeRequest is what the fake saw of a request.
type fakeRequest struct {
	at        time.Time
	resource  string // services, nodes, endpointslices
	namespace string
	watch     bool
	query     url.Values
	proto     string
	auth      string
	userAgent string
	accept    string
}

func (r fakeRequest) String() string {
	verb := "list"
	if r.watch {
		verb = "watch"
	}
	return fmt.Sprintf("%s %s %s", verb, r.resource, r.query.Encode())
}

// fakePrefix is a path prefix the fake accepts, as a proxy in front of an
// apiserver (Rancher, for example) requires.
const fakePrefix = "/k8s/clusters/c-1"

// newFakeAPI starts a fake API server: HTTP/1.1 over plain TCP, or
// HTTP/2 over TLS.
func newFakeAPI(t *testing.T, h2 bool) *fakeAPI { return newFakeAPITLS(t, h2, nil) }

// newFakeAPITLS is newFakeAPI with tc as the server's TLS configuration:
// HTTP/2 over TLS, or HTTP/1.1 over TLS when !h2 and tc is not nil.
func newFakeAPITLS(t *testing.T, h2 bool, tc *tls.Config) *fakeAPI {
	f := &fakeAPI{
		t:          t,
		rv:         100,
		objects:    map[string]map[string]*fakeObj{"services": {}, "nodes": {}, "endpointslices": {}},
		tokens:     map[string]*fakeListing{},
		wake:       make(chan struct{}),
		endWatches: make(chan struct{}),
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = tc
	if h2 || tc != nil {
		f.srv.EnableHTTP2 = h2
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.close)
	return f
}

func (f *fakeAPI) close() {
	f.mu.Lock()
	close(f.endWatches)
	f.endWatches = make(chan struct{})
	f.mu.Unlock()
	f.srv.Close()
}

// config returns a client configuration for the fake at addr (the fake's
// own address when "").
func (f *fakeAPI) config(addr string, auth kubeconfig.Authenticator) *kubeconfig.Config {
	u, err := url.Parse(f.srv.URL)
	if err != nil {
		f.t.Fatal(err)
	}
	if addr != "" {
		u.Host = addr
	}
	if auth == nil {
		auth = noAuth{}
	}
	cfg := &kubeconfig.Config{Server: u, Auth: auth, Source: "test"}
	if u.Scheme == "https" {
		pool := x509.NewCertPool()
		pool.AddCert(f.srv.Certificate())
		cfg.TLS = &tls.Config{RootCAs: pool}
	}
	return cfg
}

type noAuth struct{}

func (noAuth) Authorize(*http.Request) error { return nil }
func (noAuth) Refresh(*http.Request)         {}

// put adds or replaces an object and records the event. obj must have
// metadata.name (and metadata.namespace when namespaced).
func (f *fakeAPI) put(resource string, obj map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	md := obj["metadata"].(map[string]any)
	md["resourceVersion"] = strconv.Itoa(f.rv)
	o := &fakeObj{labels: map[string]string{}}
	o.ns, _ = md["namespace"].(string)
	o.key, _ = md["name"].(string)
	if o.ns != "" {
		o.key = o.ns + "/" + o.key
	}
	if l, ok := md["labels"].(map[string]string); ok {
		o.labels = l
	}
	if spec, ok := obj["spec"].(map[string]any); ok {
		o.typ, _ = spec["type"].(string)
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		f.t.Error(err)
	}
	o.raw = raw
	typ := "ADDED"
	prev, ok := f.objects[resource][o.key]
	if ok {
		typ = "MODIFIED"
	}
	f.objects[resource][o.key] = o
	f.recordLocked(fakeEvent{resource: resource, typ: typ, rv: f.rv, obj: o, prev: prev})
}

// remove deletes an object and records the event.
func (f *fakeAPI) remove(resource, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objects[resource][key]
	if !ok {
		f.t.Fatalf("remove %s %s: no such object", resource, key)
	}
	f.rv++
	delete(f.objects[resource], key)
	f.recordLocked(fakeEvent{resource: resource, typ: "DELETED", rv: f.rv, obj: o.at(f.rv)})
}

// at returns a copy of o at resourceVersion rv, as a deletion sends it.
func (o *fakeObj) at(rv int) *fakeObj {
	var obj map[string]any
	json.Unmarshal(o.raw, &obj)
	obj["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(rv)
	d := *o
	d.raw, _ = json.Marshal(obj)
	return &d
}

// bookmark sends a bookmark at the current resourceVersion to the watches
// of resource.
func (f *fakeAPI) bookmark(resource string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recordLocked(fakeEvent{resource: resource, typ: "BOOKMARK", rv: f.rv})
}

func (f *fakeAPI) recordLocked(ev fakeEvent) {
	f.history = append(f.history, ev)
	close(f.wake)
	f.wake = make(chan struct{})
}

// compact forgets the history: watches from an older resourceVersion get
// 410, and so do lists at an older one when lists is set.
func (f *fakeAPI) compact(lists bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	f.watchRV = f.rv
	if lists {
		f.listRV = f.rv
	}
	for k := range f.tokens {
		delete(f.tokens, k)
	}
}

// stopWatches ends every open watch cleanly.
func (f *fakeAPI) stopWatches() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.endWatches)
	f.endWatches = make(chan struct{})
}

func (f *fakeAPI) setHook(h func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

// requestsFor returns the requests seen for resource ("" for all).
func (f *fakeAPI) requestsFor(resource string) []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeRequest
	for _, r := range f.requests {
		if resource == "" || r.resource == resource {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeAPI) currentRV() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rv
}

// writeStatus answers with a Status, as the apiserver does.
func writeStatus(w http.ResponseWriter, code int, reason, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": message, "reason": reason, "code": code,
	})
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	req := fakeRequest{
		at:        time.Now(),
		query:     r.URL.Query(),
		proto:     r.Proto,
		auth:      r.Header.Get("Authorization"),
		userAgent: r.Header.Get("User-Agent"),
		accept:    r.Header.Get("Accept"),
	}
	req.watch = req.query.Get("watch") == "1" || req.query.Get("watch") == "true"
	p := strings.TrimPrefix(r.URL.Path, fakePrefix) // a server URL may have a path
	switch {
	case strings.HasPrefix(p, "/api/v1/"):
		p = strings.TrimPrefix(p, "/api/v1/")
	case strings.HasPrefix(p, "/apis/discovery.k8s.io/v1/"):
		p = strings.TrimPrefix(p, "/apis/discovery.k8s.io/v1/")
	default:
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(p, "/")
	if len(parts) == 3 && parts[0] == "namespaces" {
		req.namespace, parts = parts[1], parts[2:]
	}
	if len(parts) != 1 {
		http.NotFound(w, r)
		return
	}
	req.resource = parts[0]
	f.mu.Lock()
	f.requests = append(f.requests, req)
	hook := f.hook
	_, known := f.objects[req.resource]
	f.mu.Unlock()
	if !known {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		writeStatus(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "only GET")
		return
	}
	if hook != nil && hook(w, r, req) {
		return
	}
	if req.watch {
		f.serveWatch(w, r, req)
	} else {
		f.serveList(w, req)
	}
}

// sees returns ev as a watch of req sees it, and whether it sees it: as
// the API server's watch cache, an object that comes into req's selectors
// is ADDED, one that leaves them DELETED, in its former state at the
// event's resourceVersion.
func (req fakeRequest) sees(ev fakeEvent) (fakeEvent, bool) {
	if ev.obj == nil {
		return ev, true
	}
	now := req.matches(ev.obj)
	if ev.typ != "MODIFIED" {
		return ev, now
	}
	before := req.matches(ev.prev)
	switch {
	case now && !before:
		ev.typ = "ADDED"
	case before && !now:
		ev.typ, ev.obj = "DELETED", ev.prev.at(ev.rv)
	}
	return ev, now || before
}

func (req fakeRequest) matches(o *fakeObj) bool {
	if req.namespace != "" && o.ns != req.namespace {
		return false
	}
	// The field selector of Services on their type, as Kubernetes 1.31
	// has it (a watch's object that leaves it is not sent).
	for _, term := range strings.Split(req.query.Get("fieldSelector"), ",") {
		if t, ok := strings.CutPrefix(term, "spec.type!="); ok && o.typ == t {
			return false
		}
	}
	sel := req.query.Get("labelSelector")
	if sel == "" {
		return true
	}
	for _, term := range strings.Split(sel, ",") {
		k, v, _ := strings.Cut(term, "=")
		if o.labels[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeAPI) serveList(w http.ResponseWriter, req fakeRequest) {
	limit, _ := strconv.Atoi(req.query.Get("limit"))
	f.mu.Lock()
	var l *fakeListing
	if tok := req.query.Get("continue"); tok != "" {
		if req.query.Has("resourceVersion") {
			f.mu.Unlock()
			writeStatus(w, http.StatusBadRequest, "BadRequest", "specifying resource version is not allowed when using continue")
			return
		}
		l = f.tokens[tok]
		delete(f.tokens, tok)
		if l == nil {
			f.mu.Unlock()
			writeStatus(w, http.StatusGone, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
			return
		}
	} else {
		rvq := req.query.Get("resourceVersion")
		if rvq != "" && rvq != "0" {
			n, err := strconv.Atoi(rvq)
			switch {
			case err != nil:
				f.mu.Unlock()
				writeStatus(w, http.StatusBadRequest, "BadRequest", "invalid resource version")
				return
			case n < f.listRV && req.query.Get("resourceVersionMatch") != "NotOlderThan":
				msg := fmt.Sprintf("too old resource version: %d (%d)", n, f.listRV) // under the lock
				f.mu.Unlock()
				writeStatus(w, http.StatusGone, "Expired", msg)
				return
			case n > f.rv:
				msg := fmt.Sprintf("Too large resource version: %d, current: %d", n, f.rv)
				f.mu.Unlock()
				writeStatus(w, http.StatusGatewayTimeout, "Timeout", msg)
				return
			}
		}
		l = &fakeListing{rv: f.rv}
		for _, o := range f.objects[req.resource] {
			if req.matches(o) {
				l.items = append(l.items, o)
			}
		}
		slices.SortFunc(l.items, func(a, b *fakeObj) int { return strings.Compare(a.key, b.key) })
		if rvq == "0" && !f.paginateAll {
			limit = 0 // the watch cache ignores limit
		}
	}
	page := l.items
	next := ""
	if limit > 0 && len(page) > limit {
		page = page[:limit]
		f.nextToken++
		next = fmt.Sprintf("token-%d", f.nextToken)
		f.tokens[next] = &fakeListing{items: l.items[limit:], rv: l.rv}
	}
	f.mu.Unlock()

	// Chunked (no Content-Length), metadata last on purpose: the decoder
	// must not depend on key order.
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"kind":"List","apiVersion":"v1","items":[`)
	for i, o := range page {
		if i > 0 {
			w.Write([]byte(","))
		}
		w.Write(o.raw)
	}
	md, _ := json.Marshal(map[string]string{"resourceVersion": strconv.Itoa(l.rv), "continue": next})
	fmt.Fprintf(w, `],"metadata":%s}`, md)
}

func (f *fakeAPI) serveWatch(w http.ResponseWriter, r *http.Request, req fakeRequest) {
	from, err := strconv.Atoi(req.query.Get("resourceVersion"))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest", "the fake only watches from a numeric resourceVersion")
		return
	}
	f.mu.Lock()
	gone := from < f.watchRV
	goneHTTP := f.goneHTTP
	end := f.endWatches
	goneMsg := fmt.Sprintf("too old resource version: %d (%d)", from, f.watchRV) // read under the lock: compact writes it
	f.mu.Unlock()
	if gone && goneHTTP {
		writeStatus(w, http.StatusGone, "Expired", goneMsg)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	enc := json.NewEncoder(w)
	if gone {
		enc.Encode(map[string]any{"type": "ERROR", "object": map[string]any{
			"kind": "Status", "apiVersion": "v1", "status": "Failure",
			"message": goneMsg, "reason": "Expired", "code": 410,
		}})
		fl.Flush()
		return
	}
	pos := 0
	for {
		f.mu.Lock()
		var evs []fakeEvent
		for ; pos < len(f.history); pos++ {
			ev, ok := req.sees(f.history[pos])
			if ok && ev.resource == req.resource && ev.rv >= from && (ev.typ == "BOOKMARK" || ev.rv != from) {
				evs = append(evs, ev)
			}
		}
		wake := f.wake
		f.mu.Unlock()
		for _, ev := range evs {
			var line []byte
			if ev.typ == "BOOKMARK" {
				line = fmt.Appendf(nil, `{"type":"BOOKMARK","object":{"kind":"Service","apiVersion":"v1","metadata":{"resourceVersion":"%d"}}}`+"\n", ev.rv)
			} else {
				line = fmt.Appendf(nil, `{"type":%q,"object":%s}`+"\n", ev.typ, ev.obj.raw)
			}
			f.mu.Lock()
			cut := f.cutEvents > 0
			if cut {
				f.cutEvents--
			}
			f.mu.Unlock()
			if cut {
				w.Write(line[:len(line)/2])
				fl.Flush()
				panic(http.ErrAbortHandler) // drop the connection mid-event
			}
			w.Write(line)
			fl.Flush()
		}
		select {
		case <-wake:
		case <-end:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// Objects for tests: realistic JSON, managedFields included, so that
// decoding skips what kube2lb does not keep.

func managedFields() []any {
	return []any{map[string]any{
		"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
		"time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
		"fieldsV1": map[string]any{"f:metadata": map[string]any{"f:annotations": map[string]any{
			".": map[string]any{}, "f:kubectl.kubernetes.io/last-applied-configuration": map[string]any{}}},
			"f:spec": map[string]any{"f:ports": map[string]any{".": map[string]any{},
				`k:{"port":80,"protocol":"TCP"}`: map[string]any{".": map[string]any{}, "f:name": map[string]any{},
					"f:port": map[string]any{}, "f:protocol": map[string]any{}, "f:targetPort": map[string]any{}}}}},
	}}
}

func fakeService(ns, name string, labels map[string]string) map[string]any {
	return map[string]any{
		"kind": "Service", "apiVersion": "v1",
		"metadata": map[string]any{
			"name": name, "namespace": ns, "uid": "uid-" + ns + "-" + name,
			"creationTimestamp": "2024-01-02T03:04:05Z", "labels": labels,
			"annotations": map[string]string{
				"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"` + name + `"}}`,
			},
			"managedFields": managedFields(),
		},
		"spec": map[string]any{
			"type":                  "NodePort",
			"ports":                 []any{map[string]any{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http", "nodePort": 30080}},
			"selector":              map[string]string{"app": name},
			"clusterIP":             "10.96.0.10",
			"clusterIPs":            []string{"10.96.0.10"},
			"sessionAffinity":       "None",
			"ipFamilies":            []string{"IPv4"},
			"ipFamilyPolicy":        "SingleStack",
			"externalTrafficPolicy": "Cluster",
			"internalTrafficPolicy": "Cluster",
		},
		"status": map[string]any{"loadBalancer": map[string]any{}},
	}
}

func fakeNode(name string, labels map[string]string) map[string]any {
	return map[string]any{
		"kind": "Node", "apiVersion": "v1",
		"metadata": map[string]any{
			"name": name, "uid": "uid-" + name, "creationTimestamp": "2024-01-02T03:04:05Z",
			"labels": labels, "managedFields": managedFields(),
		},
		"spec": map[string]any{"podCIDR": "10.244.0.0/24"},
		"status": map[string]any{
			"addresses": []any{
				map[string]any{"type": "InternalIP", "address": "192.168.1.10"},
				map[string]any{"type": "Hostname", "address": name},
			},
			"conditions": []any{
				map[string]any{"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
				map[string]any{"type": "Ready", "status": "True", "reason": "KubeletReady"},
			},
			"images": []any{map[string]any{"names": []string{"registry.k8s.io/pause:3.9"}, "sizeBytes": 321520}},
		},
	}
}

func fakeSlice(ns, name, service string) map[string]any {
	return map[string]any{
		"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
		"metadata": map[string]any{
			"name": name, "namespace": ns, "creationTimestamp": "2024-01-02T03:04:05Z",
			"labels": map[string]string{"kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
		},
		"addressType": "IPv4",
		"endpoints": []any{map[string]any{
			"addresses":  []string{"10.244.1.5"},
			"conditions": map[string]any{"ready": true, "serving": true, "terminating": false},
			"nodeName":   "node-1",
			"targetRef":  map[string]any{"kind": "Pod", "namespace": ns, "name": service + "-abc", "uid": "x"},
		}},
		"ports": []any{map[string]any{"name": "http", "protocol": "TCP", "port": 8080}},
	}
}
