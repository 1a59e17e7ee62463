package kubeapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kube2lb/kube2lb/kubeconfig"
)

// writeRequest is what the fake server saw of one request.
type writeRequest struct {
	Method, Path, ContentType, Auth, Body string
}

// newWriteServer answers requests with answer(i, request) → status code
// and body, recording each.
func newWriteServer(t *testing.T, answer func(i int, r writeRequest) (int, string)) (*Writer, *fakeAuth, func() []writeRequest) {
	t.Helper()
	var (
		mu   sync.Mutex
		reqs []writeRequest
	)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		wr := writeRequest{r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(body)}
		mu.Lock()
		i := len(reqs)
		reqs = append(reqs, wr)
		mu.Unlock()
		code, out := answer(i, wr)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, out)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	auth := &fakeAuth{}
	w, err := NewWriter(&kubeconfig.Config{Server: u, TLS: &tls.Config{RootCAs: pool}, Auth: auth, Source: "test"}, "kube2lb/test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w, auth, func() []writeRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]writeRequest(nil), reqs...)
	}
}

const patchedService = `{"kind":"Service","metadata":{"name":"web","namespace":"a b","resourceVersion":"8"},
"spec":{"type":"LoadBalancer"},"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.1","ipMode":"Proxy"}]}}}`

func TestPatchServiceStatus(t *testing.T) {
	proxy := IPModeProxy
	tests := []struct {
		name    string
		rv      string
		ingress []LoadBalancerIngress
		body    string
	}{
		{
			name:    "set, conditional",
			rv:      "7",
			ingress: []LoadBalancerIngress{{IP: "192.0.2.1", IPMode: &proxy}, {IP: "2001:db8::1", IPMode: &proxy}},
			body:    `{"metadata":{"resourceVersion":"7"},"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.1","ipMode":"Proxy"},{"ip":"2001:db8::1","ipMode":"Proxy"}]}}}`,
		},
		{
			name: "clear, unconditional",
			body: `{"status":{"loadBalancer":{"ingress":null}}}`,
		},
		{
			name:    "host names, no ipMode",
			ingress: []LoadBalancerIngress{{Hostname: "lb.example.com"}, {IP: "192.0.2.2", Hostname: `a"b`}},
			body:    `{"status":{"loadBalancer":{"ingress":[{"hostname":"lb.example.com"},{"ip":"192.0.2.2","hostname":"a\"b"}]}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _, reqs := newWriteServer(t, func(int, writeRequest) (int, string) { return 200, patchedService })
			svc, err := w.PatchServiceStatus(context.Background(), "a b", "web", tt.rv, tt.ingress)
			if err != nil {
				t.Fatal(err)
			}
			want := []writeRequest{{
				Method:      "PATCH",
				Path:        "/api/v1/namespaces/a%20b/services/web/status",
				ContentType: "application/merge-patch+json",
				Auth:        "Bearer old",
				Body:        tt.body,
			}}
			if diff := cmp.Diff(want, reqs()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if svc.Metadata.ResourceVersion != "8" || len(svc.Status.LoadBalancer.Ingress) != 1 || *svc.Status.LoadBalancer.Ingress[0].IPMode != "Proxy" {
				t.Errorf("returned service %+v", svc)
			}
		})
	}
}

func TestPatchServiceStatusErrors(t *testing.T) {
	t.Run("conflict", func(t *testing.T) {
		w, _, _ := newWriteServer(t, func(int, writeRequest) (int, string) {
			return 409, `{"kind":"Status","status":"Failure","reason":"Conflict","code":409,"message":"the object has been modified"}`
		})
		_, err := w.PatchServiceStatus(context.Background(), "ns", "web", "7", nil)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 409 || se.Reason != "Conflict" {
			t.Fatalf("err = %v, want a 409 Conflict", err)
		}
		if want := "patch services/status ns/web: 409 Conflict: the object has been modified"; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	})
	t.Run("forbidden", func(t *testing.T) {
		w, _, _ := newWriteServer(t, func(int, writeRequest) (int, string) {
			return 403, `{"kind":"Status","reason":"Forbidden","code":403,"message":"no"}`
		})
		_, err := w.PatchServiceStatus(context.Background(), "ns", "web", "", nil)
		if want := "forbidden: patch services/status ns/web: no"; err == nil || err.Error() != want {
			t.Errorf("err = %v, want %q", err, want)
		}
	})
	t.Run("401 refreshes the credentials once", func(t *testing.T) {
		w, auth, reqs := newWriteServer(t, func(_ int, r writeRequest) (int, string) {
			if r.Auth != "Bearer new" {
				return 401, `{"kind":"Status","reason":"Unauthorized","code":401}`
			}
			return 200, patchedService
		})
		if _, err := w.PatchServiceStatus(context.Background(), "ns", "web", "", nil); err != nil {
			t.Fatal(err)
		}
		got := reqs()
		if len(got) != 2 || got[0].Auth != "Bearer old" || got[1].Auth != "Bearer new" || got[1].Body != got[0].Body || auth.refreshed != 1 {
			t.Errorf("requests %+v, refreshed %d", got, auth.refreshed)
		}
		if len(auth.failed) != 1 || auth.failed[0] != "Bearer old" {
			t.Errorf("Refresh given %q, want the refused request", auth.failed)
		}
	})
	t.Run("401 twice is an error", func(t *testing.T) {
		w, _, reqs := newWriteServer(t, func(int, writeRequest) (int, string) {
			return 401, `{"kind":"Status","reason":"Unauthorized","code":401}`
		})
		_, err := w.PatchServiceStatus(context.Background(), "ns", "web", "", nil)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 401 || len(reqs()) != 2 {
			t.Errorf("err = %v after %d requests", err, len(reqs()))
		}
	})
}

func TestGetService(t *testing.T) {
	w, _, reqs := newWriteServer(t, func(i int, _ writeRequest) (int, string) {
		if i == 0 {
			return 200, patchedService
		}
		return 404, `{"kind":"Status","reason":"NotFound","code":404,"message":"services \"gone\" not found"}`
	})
	svc, err := w.GetService(context.Background(), "a b", "web")
	if err != nil {
		t.Fatal(err)
	}
	if svc.Metadata.Key() != "a b/web" || svc.Status.LoadBalancer.Ingress[0].IP != "192.0.2.1" {
		t.Errorf("service %+v", svc)
	}
	_, err = w.GetService(context.Background(), "ns", "gone")
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("err = %v, want a 404", err)
	}
	if got := reqs(); got[0].Method != "GET" || got[0].Path != "/api/v1/namespaces/a%20b/services/web" || got[0].Body != "" {
		t.Errorf("request %+v", got[0])
	}
}
