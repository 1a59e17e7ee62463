package controlplane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Object is a Kubernetes object as decoded JSON.
type Object = map[string]any

// Resource names a collection of API objects.
type Resource struct {
	Prefix     string // "/api/v1" or "/apis/GROUP/VERSION"
	Name       string // plural: "services"
	Namespaced bool
}

// The resources kube2lb reads.
var (
	Services       = Resource{Prefix: "/api/v1", Name: "services", Namespaced: true}
	Nodes          = Resource{Prefix: "/api/v1", Name: "nodes"}
	EndpointSlices = Resource{Prefix: "/apis/discovery.k8s.io/v1", Name: "endpointslices", Namespaced: true}
	Namespaces     = Resource{Prefix: "/api/v1", Name: "namespaces"}
)

// Path returns the URL path of the collection (name "") or of one object.
// An empty ns on a namespaced resource means all namespaces.
func (r Resource) Path(ns, name string) string {
	p := r.Prefix
	if r.Namespaced && ns != "" {
		p += "/namespaces/" + url.PathEscape(ns)
	}
	p += "/" + r.Name
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// APIError is a refusal by the API server.
type APIError struct {
	Method, Path string
	Code         int    // HTTP status
	Reason       string // Status.reason, e.g. "Forbidden", "Expired"
	Message      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, e.Reason, e.Message)
}

// User is a credential for the API server, with a small REST client. The
// methods that take a testing.TB fail the test on any error; Do and Watch
// return errors (an *APIError for refusals) for tests that expect them.
type User struct {
	Name       string // the user name the API server sees
	Token      string // bearer token; "" for a client-certificate user
	CertFile   string // client certificate and key, PEM; "" for a token user
	KeyFile    string
	Kubeconfig string // a kubeconfig file with this user as current context

	server string
	hc     *http.Client
}

// Do sends one request. body may be nil, []byte (sent as is) or a value
// encoded as JSON; PATCH bodies are JSON merge patches. A 2xx answer is
// decoded into out unless out is nil.
func (u *User) Do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.server+path, r)
	if err != nil {
		return err
	}
	u.setHeaders(req)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if method == http.MethodPatch {
			req.Header.Set("Content-Type", "application/merge-patch+json")
		}
	}
	resp, err := u.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return statusError(method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func (u *User) setHeaders(req *http.Request) {
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kube2lb-integration")
	if u.Token != "" {
		req.Header.Set("Authorization", "Bearer "+u.Token)
	}
}

func statusError(method, path string, code int, body []byte) error {
	e := &APIError{Method: method, Path: path, Code: code}
	var st struct{ Reason, Message string }
	if json.Unmarshal(body, &st) == nil && (st.Reason != "" || st.Message != "") {
		e.Reason, e.Message = st.Reason, st.Message
	} else {
		e.Message = strings.TrimSpace(string(body))
	}
	return e
}

func (u *User) must(t testing.TB, method, path string, body any) Object {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out Object
	if err := u.Do(ctx, method, path, body, &out); err != nil {
		t.Fatalf("as %s: %v", u.Name, err)
	}
	return out
}

// Create creates obj (a struct or an Object) in namespace ns ("" for
// cluster-scoped resources) and returns the stored object.
func (u *User) Create(t testing.TB, r Resource, ns string, obj any) Object {
	t.Helper()
	return u.must(t, http.MethodPost, r.Path(ns, ""), obj)
}

// Get returns one object.
func (u *User) Get(t testing.TB, r Resource, ns, name string) Object {
	t.Helper()
	return u.must(t, http.MethodGet, r.Path(ns, name), nil)
}

// List returns the list object of r in ns ("" for all namespaces).
func (u *User) List(t testing.TB, r Resource, ns string) Object {
	t.Helper()
	return u.must(t, http.MethodGet, r.Path(ns, ""), nil)
}

// Update replaces the object named by obj's metadata.name (PUT). Without a
// metadata.resourceVersion in obj the update is unconditional.
func (u *User) Update(t testing.TB, r Resource, ns string, obj any) Object {
	t.Helper()
	j, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Metadata struct{ Name string } `json:"metadata"`
	}
	if err := json.Unmarshal(j, &m); err != nil || m.Metadata.Name == "" {
		t.Fatalf("update %s: object has no metadata.name", r.Name)
	}
	return u.must(t, http.MethodPut, r.Path(ns, m.Metadata.Name), j)
}

// Patch applies a JSON merge patch (a struct, an Object or []byte).
func (u *User) Patch(t testing.TB, r Resource, ns, name string, patch any) Object {
	t.Helper()
	return u.must(t, http.MethodPatch, r.Path(ns, name), patch)
}

// PatchStatus applies a JSON merge patch to the status subresource (Node
// conditions, a Service's load-balancer ingress).
func (u *User) PatchStatus(t testing.TB, r Resource, ns, name string, patch any) Object {
	t.Helper()
	return u.must(t, http.MethodPatch, r.Path(ns, name)+"/status", patch)
}

// Delete deletes one object; deleting a missing object fails the test.
func (u *User) Delete(t testing.TB, r Resource, ns, name string) {
	t.Helper()
	u.must(t, http.MethodDelete, r.Path(ns, name), nil)
}

// Event is one watch event.
type Event struct {
	Type   string // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
	Object Object
}

// WatchStream reads the events of one watch request.
type WatchStream struct {
	body io.ReadCloser
	dec  *json.Decoder
}

// Next returns the next event; io.EOF when the server ended the watch.
func (w *WatchStream) Next() (Event, error) {
	var e Event
	err := w.dec.Decode(&e)
	return e, err
}

// Close ends the watch.
func (w *WatchStream) Close() error { return w.body.Close() }

// Watch starts a watch of r in ns from resourceVersion rv. A refused
// request (such as 410 for a compacted rv) is an *APIError; the server may
// instead accept the watch and send an ERROR event.
func (u *User) Watch(ctx context.Context, r Resource, ns, rv string) (*WatchStream, error) {
	q := url.Values{"watch": {"1"}, "resourceVersion": {rv}, "allowWatchBookmarks": {"true"}}
	path := r.Path(ns, "") + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.server+path, nil)
	if err != nil {
		return nil, err
	}
	u.setHeaders(req)
	resp, err := u.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return nil, statusError(http.MethodGet, path, resp.StatusCode, data)
	}
	return &WatchStream{body: resp.Body, dec: json.NewDecoder(bufio.NewReader(resp.Body))}, nil
}

// ResourceVersion returns obj's metadata.resourceVersion.
func ResourceVersion(obj Object) string {
	md, _ := obj["metadata"].(map[string]any)
	rv, _ := md["resourceVersion"].(string)
	return rv
}

// Via returns a copy of u that sends its requests through p, on
// connections of its own.
func (u *User) Via(p *Proxy) *User {
	v := *u
	v.server = p.URL
	v.hc = &http.Client{Transport: u.hc.Transport.(*http.Transport).Clone()}
	return &v
}
