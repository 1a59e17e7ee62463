package kubeapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kube2lb/kube2lb/kubeconfig"
)

// clientCert makes a self-signed client certificate whose subject's
// common name is cn.
func clientCert(t *testing.T, cn string, serial int64) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestClientCertificateRotated checks that a client certificate the API
// server stops accepting (expired, the renewed one already on disk or
// from the exec plugin) is replaced on the connection the watches hold
// open: a certificate goes with a connection's handshake, and an HTTP/2
// connection carrying watches is never idle. (Over HTTP/1.1, whether the
// next watch reuses a kept-alive connection or dials is the transport's
// choice: the test could pass without the fix. The Writer's test covers
// the kept-alive connection.)
func TestClientCertificateRotated(t *testing.T) {
	f := newFakeAPITLS(t, true, &tls.Config{ClientAuth: tls.RequestClientCert})
	f.put("services", fakeService("ns", "a", nil))
	var expired atomic.Bool
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		certs := r.TLS.PeerCertificates
		if len(certs) == 0 || certs[0].Subject.CommonName == "old" && expired.Load() {
			writeStatus(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
			return true
		}
		return false
	})
	var current atomic.Pointer[tls.Certificate]
	current.Store(clientCert(t, "old", 1))
	cfg := f.config("", nil)
	cfg.TLS.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return current.Load(), nil
	}
	c, err := NewCache(cfg, Options{timing: fastTiming(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCache(t, c)
	waitSynced(t, c)

	current.Store(clientCert(t, "new", 2))
	expired.Store(true)
	f.stopWatches() // the watches start again, on the connections they had
	f.put("services", fakeService("ns", "b", nil))
	waitFor(t, "the service created after the rotation", func() bool {
		return slices.Contains(serviceKeys(c), "ns/b")
	})
}

// TestWriterClientCertificateRotated is TestClientCertificateRotated for
// the Writer's status writes, over its own keep-alive connection.
func TestWriterClientCertificateRotated(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		t.Run(map[bool]string{true: "http2", false: "http1.1"}[h2], func(t *testing.T) {
			var expired atomic.Bool
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				if certs := r.TLS.PeerCertificates; len(certs) == 0 || certs[0].Subject.CommonName == "old" && expired.Load() {
					w.WriteHeader(http.StatusUnauthorized)
					io.WriteString(w, `{"kind":"Status","reason":"Unauthorized","code":401}`)
					return
				}
				io.WriteString(w, patchedService)
			}))
			srv.EnableHTTP2 = h2
			srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			u, _ := url.Parse(srv.URL)
			pool := x509.NewCertPool()
			pool.AddCert(srv.Certificate())
			var current atomic.Pointer[tls.Certificate]
			current.Store(clientCert(t, "old", 1))
			tc := &tls.Config{RootCAs: pool, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return current.Load(), nil
			}}
			w, err := NewWriter(&kubeconfig.Config{Server: u, TLS: tc, Auth: noAuth{}, Source: "test"}, "")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(w.Close)
			if _, err := w.PatchServiceStatus(context.Background(), "ns", "web", "", nil); err != nil {
				t.Fatal(err)
			}
			current.Store(clientCert(t, "new", 2))
			expired.Store(true)
			if _, err := w.PatchServiceStatus(context.Background(), "ns", "web", "", nil); err != nil {
				t.Errorf("after the rotation: %v", err)
			}
		})
	}
}

// rotatingAuth sends the token it read last; Refresh reads the current
// one from source.
type rotatingAuth struct {
	mu     sync.Mutex
	token  string
	source func() string
}

func (a *rotatingAuth) Authorize(req *http.Request) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	req.Header.Set("Authorization", "Bearer "+a.token)
	return nil
}

func (a *rotatingAuth) Refresh(*http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.token = a.source()
}

// TestTokenRotatedTwice checks that every rotation of the credentials
// costs one refused request and no wait: a 401 after a watch that worked
// is refreshed and tried again at once, like the first one. (The backoff
// here is an hour: a wait would never end within the test.)
func TestTokenRotatedTwice(t *testing.T) {
	f := newFakeAPI(t, false)
	f.put("services", fakeService("ns", "a", nil))
	var valid atomic.Pointer[string]
	setValid := func(s string) { valid.Store(&s) }
	setValid("one")
	f.setHook(func(w http.ResponseWriter, r *http.Request, req fakeRequest) bool {
		if req.auth != "Bearer "+*valid.Load() {
			writeStatus(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
			return true
		}
		return false
	})
	auth := &rotatingAuth{token: "one", source: func() string { return *valid.Load() }}
	tm := fastTiming()
	tm.backoffBase, tm.backoffMax = time.Hour, time.Hour
	tm.shortWatch = time.Nanosecond // a watch that the test ends is not a failure
	c, err := NewCache(f.config("", auth), Options{timing: tm, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCache(t, c)
	waitSynced(t, c)
	for i, token := range []string{"two", "three"} {
		waitFor(t, "a watch", func() bool { return status(c, ResourceServices).Watching })
		setValid(token)
		f.stopWatches() // the next watches are refused
		name := fmt.Sprintf("rotated-%d", i)
		f.put("services", fakeService("ns", name, nil))
		waitFor(t, "the service created after rotation "+token, func() bool {
			return slices.Contains(serviceKeys(c), "ns/"+name)
		})
	}
}

// TestCloseGeneration: the requests refused on the old connections close
// them once; the connections opened since, with the renewed certificate,
// stay open.
func TestCloseGeneration(t *testing.T) {
	tr := newConnTracker()
	open := func() (net.Conn, net.Conn) {
		client, server := net.Pipe()
		c, err := tr.add(client)
		if err != nil {
			t.Fatal(err)
		}
		return c, server
	}
	closed := func(server net.Conn) bool {
		server.SetReadDeadline(time.Now().Add(time.Second))
		_, err := server.Read(make([]byte, 1))
		return errors.Is(err, io.EOF)
	}
	g := tr.generation()
	_, old1 := open()
	_, old2 := open()
	tr.closeGeneration(g) // the first refused request
	if !closed(old1) || !closed(old2) {
		t.Fatal("the old connections were not closed")
	}
	c, fresh := open()
	defer c.Close()
	tr.closeGeneration(g) // another request refused on an old connection
	go c.Write([]byte("x"))
	if closed(fresh) {
		t.Error("a request refused on an old connection closed a new one")
	}
	if tr.generation() != g+1 {
		t.Errorf("generation %d, want %d", tr.generation(), g+1)
	}
}
