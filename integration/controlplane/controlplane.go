// Package controlplane runs a real Kubernetes control plane for the
// integration suite: by default ("local") an etcd and a kube-apiserver built
// from the versions pinned under tools/ and started on 127.0.0.1 with TLS
// from a generated CA, RBAC, a client-certificate admin and two token users;
// or, with KUBE2LB_E2E_PROVIDER=kind, a kind cluster. Everything is torn
// down by the test's cleanup, also when the test fails. Tests that cannot
// get a control plane skip on a developer's machine and fail when CI is set.
package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Names of the token users of the local provider.
const (
	MinimalUser          = "kube2lb-test"
	NoEndpointSlicesUser = "kube2lb-no-endpointslices"
)

// Options change how Start runs the control plane.
type Options struct {
	// DisableWatchCache runs kube-apiserver with --watch-cache=false, so
	// that watches are served by etcd: a watch from a compacted
	// resourceVersion then fails as soon as etcd is compacted. With the
	// watch cache (the default, as in real clusters) the API server keeps
	// recent events itself and answers 410 only for versions older than
	// its window (always the case after it restarts).
	DisableWatchCache bool

	// APIServerFlags are added to kube-apiserver's command line (local).
	APIServerFlags []string

	// EtcdDataDir, when set, is etcd's data directory (local), used as it
	// is: a directory saved from an earlier control plane (see Shutdown)
	// starts with its objects. The caller owns it; it is not removed.
	// "" starts an empty etcd in Dir.
	EtcdDataDir string
}

// ControlPlane is a running API server and its users.
type ControlPlane struct {
	Provider string // "local" or "kind"
	URL      string // https://127.0.0.1:PORT
	CAFile   string // the CA that signed the serving certificate, PEM
	Dir      string // where files and logs are (a t.TempDir)

	// Admin is a client-certificate user in group system:masters.
	Admin *User
	// Minimal is a token user bound to the ClusterRoles that the shipped
	// examples/kubernetes/rbac.yaml binds.
	Minimal *User
	// NoEndpointSlices is a token user that may get, list and watch
	// Services and Nodes but not list EndpointSlices.
	NoEndpointSlices *User

	// EtcdURL is etcd's client URL (local only).
	EtcdURL string

	opts      Options
	bins      Binaries
	pki       *pki
	apiArgs   []string
	mu        sync.Mutex
	etcd      *process
	apiserver *process
	teardown  func()
}

// Start runs a control plane for t with default Options.
func Start(t testing.TB) *ControlPlane {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith runs a control plane for t, chosen by KUBE2LB_E2E_PROVIDER
// ("local", the default, or "kind"), and stops it in t's cleanup.
func StartWith(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	switch p := ProviderName(); p {
	case "kind":
		return startKind(t, opts)
	case "local":
		return startLocal(t, opts)
	default:
		t.Fatalf("KUBE2LB_E2E_PROVIDER=%q: want local or kind", p)
		return nil
	}
}

// skipOrFatal skips t on a developer's machine and fails it when the
// environment variable CI is set: CI never skips silently.
func skipOrFatal(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

var (
	buildMu  sync.Mutex
	buildErr error // a failed build is not tried again by the same test binary
)

// binaries returns the built control plane, building it on first use.
func binaries(t testing.TB) Binaries {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildErr != nil {
		skipOrFatal(t, "control plane: %v", buildErr)
	}
	b, missing, err := Locate()
	if err != nil {
		skipOrFatal(t, "control plane: %v", err)
	}
	if len(missing) == 0 {
		return b
	}
	t.Logf("control plane: %s not built yet: building %s now (several minutes; `cd integration && go run ./cmd/build-controlplane` builds ahead of the tests)",
		strings.Join(missing, " and "), versions())
	start := time.Now()
	b, err = Build(context.Background(), testLogWriter{t})
	if err != nil {
		buildErr = err
		skipOrFatal(t, "control plane: %v", err)
	}
	t.Logf("control plane: built in %s", time.Since(start).Round(time.Second))
	return b
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startLocal(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	bins := binaries(t)
	begin := time.Now()
	cp := &ControlPlane{Provider: "local", Dir: t.TempDir(), opts: opts, bins: bins}
	t.Cleanup(func() { cp.stop(t) })

	var err error
	if cp.pki, err = newPKI(cp.Dir); err != nil {
		t.Fatalf("control plane: %v", err)
	}
	cp.CAFile = cp.pki.CAFile
	// A free port may be taken by another process before the server
	// binds it: then try other ports.
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(2)
		if err == nil {
			err = cp.startEtcd(ports[0], ports[1])
		}
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("control plane: %v", err)
		}
		if opts.EtcdDataDir == "" {
			os.RemoveAll(filepath.Join(cp.Dir, "etcd"))
		}
	}

	tokens := map[string]string{
		MinimalUser:          randomToken(),
		NoEndpointSlicesUser: randomToken(),
	}
	tokenFile := filepath.Join(cp.Dir, "tokens.csv")
	var csv strings.Builder
	for _, name := range []string{MinimalUser, NoEndpointSlicesUser} {
		fmt.Fprintf(&csv, "%s,%s,%s\n", tokens[name], name, name)
	}
	if err := os.WriteFile(tokenFile, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cp.Admin = cp.newUser(t, "kube2lb-admin", "", cp.pki.AdminCert, cp.pki.AdminKey)
	cp.Minimal = cp.newUser(t, MinimalUser, tokens[MinimalUser], "", "")
	cp.NoEndpointSlices = cp.newUser(t, NoEndpointSlicesUser, tokens[NoEndpointSlicesUser], "", "")
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(1)
		if err == nil {
			cp.setAPIServerArgs(ports[0], tokenFile)
			err = cp.startAPIServer()
		}
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("control plane: %v", err)
		}
	}
	cp.grant(t, func(name string) Object {
		return Object{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}
	})
	if err := cp.writeKubeconfigs(); err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane: local (%s) ready at %s in %s", versions(), cp.URL, time.Since(begin).Round(time.Millisecond))
	return cp
}

// setAPIServerArgs sets the URL (also the users') and kube-apiserver's
// command line for port.
func (cp *ControlPlane) setAPIServerArgs(port int, tokenFile string) {
	cp.URL = "https://127.0.0.1:" + strconv.Itoa(port)
	for _, u := range []*User{cp.Admin, cp.Minimal, cp.NoEndpointSlices} {
		u.server = cp.URL
	}
	cp.apiArgs = []string{
		"--etcd-servers=" + cp.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + cp.pki.ServerCert,
		"--tls-private-key-file=" + cp.pki.ServerKey,
		"--client-ca-file=" + cp.pki.CAFile,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--anonymous-auth=false",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + cp.pki.SAPublicKey,
		"--service-account-signing-key-file=" + cp.pki.SASigningKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--shutdown-delay-duration=0s",
		"--profiling=false",
		"--enable-priority-and-fairness=false",
		"--cert-dir=" + filepath.Join(cp.Dir, "apiserver-certs"),
	}
	if cp.opts.DisableWatchCache {
		cp.apiArgs = append(cp.apiArgs, "--watch-cache=false")
	}
	cp.apiArgs = append(cp.apiArgs, cp.opts.APIServerFlags...)
}

// grant binds the Minimal user to the roles the shipped example binds and the
// NoEndpointSlices user to a role without endpointslices.
func (cp *ControlPlane) grant(t testing.TB, subject func(name string) Object) {
	t.Helper()
	roles, note, err := minimalRoles()
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	if note != "" {
		t.Logf("control plane: %s", note)
	}
	for _, r := range roles {
		apply(t, cp.Admin, clusterRoles, "", clusterRoleObject(r.Name, r.Rules))
		if !r.Bound {
			continue
		}
		apply(t, cp.Admin, clusterRoleBindings, "", clusterRoleBindingObject(MinimalUser+"-"+r.Name, r.Name, subject(cp.Minimal.Name)))
	}
	apply(t, cp.Admin, clusterRoles, "", clusterRoleObject(NoEndpointSlicesUser, noEndpointSliceRules))
	apply(t, cp.Admin, clusterRoleBindings, "", clusterRoleBindingObject(NoEndpointSlicesUser, NoEndpointSlicesUser, subject(cp.NoEndpointSlices.Name)))
}

func (cp *ControlPlane) newUser(t testing.TB, name, token, certFile, keyFile string) *User {
	t.Helper()
	u := &User{Name: name, Token: token, CertFile: certFile, KeyFile: keyFile, server: cp.URL}
	hc, err := cp.httpClient(u)
	if err != nil {
		t.Fatalf("control plane: user %s: %v", name, err)
	}
	u.hc = hc
	return u
}

// httpClient returns a client trusting the CA, with u's client certificate.
func (cp *ControlPlane) httpClient(u *User) (*http.Client, error) {
	ca, err := os.ReadFile(cp.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", cp.CAFile)
	}
	cfg := &tls.Config{RootCAs: pool}
	if u.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(u.CertFile, u.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}, nil
}

// TLSConfig returns a client TLS configuration for u: the CA as root and
// u's client certificate, if any.
func (cp *ControlPlane) TLSConfig(u *User) (*tls.Config, error) {
	hc, err := cp.httpClient(u)
	if err != nil {
		return nil, err
	}
	return hc.Transport.(*http.Transport).TLSClientConfig.Clone(), nil
}

// Shutdown stops kube-apiserver, then etcd, gracefully (SIGTERM; SIGKILL
// after 15 s each) and returns once both have exited, so that etcd's data
// directory (EtcdDataDir, else Dir/etcd) can be copied and reused.
// Local provider only: other providers skip the test.
func (cp *ControlPlane) Shutdown(t testing.TB) {
	t.Helper()
	cp.needLocal(t, "Shutdown")
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, p := range []*process{cp.apiserver, cp.etcd} {
		if p != nil {
			p.stop(15 * time.Second)
		}
	}
}

// EtcdDir returns etcd's data directory (local provider).
func (cp *ControlPlane) EtcdDir() string {
	if cp.opts.EtcdDataDir != "" {
		return cp.opts.EtcdDataDir
	}
	return filepath.Join(cp.Dir, "etcd")
}

func (cp *ControlPlane) stop(t testing.TB) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, p := range []*process{cp.apiserver, cp.etcd} {
		if p == nil {
			continue
		}
		if t.Failed() {
			t.Logf("control plane: end of %s:\n%s", p.log, p.logTail(30))
		}
		p.stop(0)
	}
	if cp.teardown != nil {
		cp.teardown()
	}
}
