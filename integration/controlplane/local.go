package controlplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// How long a process has to become ready. Generous: the machines that run
// the suite are shared.
const readyTimeout = 90 * time.Second

func (cp *ControlPlane) startEtcd(clientPort, peerPort int) error {
	cp.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	args := []string{
		"--name=integration",
		"--data-dir=" + cp.EtcdDir(),
		"--listen-client-urls=" + cp.EtcdURL,
		"--advertise-client-urls=" + cp.EtcdURL,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=integration=" + peer,
		"--log-level=warn",
		"--unsafe-no-fsync", // test data: speed over durability
	}
	p, err := startProcess("etcd", cp.bins.Etcd, args, filepath.Join(cp.Dir, "etcd.log"))
	if err != nil {
		return err
	}
	cp.mu.Lock()
	cp.etcd = p
	cp.mu.Unlock()
	return waitReady(p, func(ctx context.Context) bool {
		var h struct{ Health string }
		return getJSON(ctx, http.DefaultClient, cp.EtcdURL+"/health", &h) == nil && h.Health == "true"
	})
}

func (cp *ControlPlane) startAPIServer() error {
	p, err := startProcess("kube-apiserver", cp.bins.KubeAPIServer, cp.apiArgs, filepath.Join(cp.Dir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	cp.mu.Lock()
	cp.apiserver = p
	cp.mu.Unlock()
	return waitReady(p, func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cp.URL+"/readyz", nil)
		resp, err := cp.Admin.hc.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// waitReady polls ready until it answers true, p exits or readyTimeout
// passes.
func waitReady(p *process, ready func(context.Context) bool) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok := ready(ctx)
		cancel()
		if ok {
			return nil
		}
		if p.exited() {
			return p.exitError()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s; end of %s:\n%s", p.name, readyTimeout, p.log, p.logTail(20))
		}
		select {
		case <-p.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (cp *ControlPlane) needLocal(t testing.TB, what string) {
	t.Helper()
	if cp.Provider != "local" {
		t.Skipf("%s needs KUBE2LB_E2E_PROVIDER=local (this is %s)", what, cp.Provider)
	}
}

// StopAPIServer stops kube-apiserver gracefully (SIGTERM; SIGKILL after 15 s)
// and returns once it has exited; etcd keeps running with its data.
// Local provider only: other providers skip the test.
func (cp *ControlPlane) StopAPIServer(t testing.TB) {
	t.Helper()
	cp.needLocal(t, "StopAPIServer")
	cp.mu.Lock()
	p := cp.apiserver
	cp.mu.Unlock()
	p.stop(15 * time.Second)
}

// KillAPIServer kills kube-apiserver at once (SIGKILL), as a crash would.
func (cp *ControlPlane) KillAPIServer(t testing.TB) {
	t.Helper()
	cp.needLocal(t, "KillAPIServer")
	cp.mu.Lock()
	p := cp.apiserver
	cp.mu.Unlock()
	p.stop(0)
}

// StartAPIServer starts kube-apiserver again, on the same port with the
// same flags and etcd, and returns once it is ready.
func (cp *ControlPlane) StartAPIServer(t testing.TB) {
	t.Helper()
	cp.needLocal(t, "StartAPIServer")
	cp.mu.Lock()
	running := cp.apiserver != nil && !cp.apiserver.exited()
	cp.mu.Unlock()
	if running {
		t.Fatal("StartAPIServer: kube-apiserver is running")
	}
	begin := time.Now()
	if err := cp.startAPIServer(); err != nil {
		t.Fatalf("restart kube-apiserver: %v", err)
	}
	t.Logf("control plane: kube-apiserver restarted in %s", time.Since(begin).Round(time.Millisecond))
}

// EtcdRevision returns etcd's current revision (which Kubernetes shows as
// resourceVersion).
func (cp *ControlPlane) EtcdRevision(t testing.TB) int64 {
	t.Helper()
	cp.needLocal(t, "EtcdRevision")
	var resp struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	// Key "/" with limit 1: any range answers with the store's revision.
	body := map[string]any{"key": base64.StdEncoding.EncodeToString([]byte("/")), "limit": 1}
	if err := postJSON(cp.EtcdURL+"/v3/kv/range", body, &resp); err != nil {
		t.Fatalf("etcd revision: %v", err)
	}
	rev, err := strconv.ParseInt(resp.Header.Revision, 10, 64)
	if err != nil {
		t.Fatalf("etcd revision %q: %v", resp.Header.Revision, err)
	}
	return rev
}

// CompactEtcd makes every resourceVersion the API server has handed out
// so far too old to watch from, and returns the revision it compacted at.
// A watch from version V starts at V+1, and etcd refuses only starts below
// the compaction revision, so CompactEtcd first writes a key outside the
// API server's /registry prefix twice, then compacts etcd at the current
// revision, physically (the space is reclaimed before it returns). A watch
// that etcd serves then fails with 410 Gone; a watch served by the API
// server's watch cache may not (see Options.DisableWatchCache).
func (cp *ControlPlane) CompactEtcd(t testing.TB) int64 {
	t.Helper()
	cp.needLocal(t, "CompactEtcd")
	for i := range 2 {
		put := map[string]any{
			"key":   base64.StdEncoding.EncodeToString([]byte("/kube2lb-integration/compact")),
			"value": base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(i))),
		}
		if err := postJSON(cp.EtcdURL+"/v3/kv/put", put, nil); err != nil {
			t.Fatalf("compact etcd: %v", err)
		}
	}
	rev := cp.EtcdRevision(t)
	body := map[string]any{"revision": strconv.FormatInt(rev, 10), "physical": true}
	if err := postJSON(cp.EtcdURL+"/v3/kv/compaction", body, nil); err != nil {
		t.Fatalf("compact etcd at %d: %v", rev, err)
	}
	return rev
}

func postJSON(url string, body, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return doJSON(http.DefaultClient, req, out)
}

func getJSON(ctx context.Context, hc *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return doJSON(hc, req, out)
}

func doJSON(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL, resp.Status, bytes.TrimSpace(data))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeKubeconfigs writes a kubeconfig file for each user into cp.Dir.
func (cp *ControlPlane) writeKubeconfigs() error {
	for _, u := range []*User{cp.Admin, cp.Minimal, cp.NoEndpointSlices} {
		u.Kubeconfig = filepath.Join(cp.Dir, u.Name+".kubeconfig")
		if err := os.WriteFile(u.Kubeconfig, kubeconfigYAML(cp.URL, cp.CAFile, u), 0o600); err != nil {
			return fmt.Errorf("write kubeconfig: %w", err)
		}
	}
	return nil
}

// kubeconfigYAML renders a kubeconfig whose current context is u on
// server. Strings are double-quoted (JSON escapes are valid YAML).
func kubeconfigYAML(server, caFile string, u *User) []byte {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var b bytes.Buffer
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Config\nclusters:\n- name: integration\n  cluster:\n    server: %s\n    certificate-authority: %s\n", q(server), q(caFile))
	fmt.Fprintf(&b, "users:\n- name: %s\n  user:\n", q(u.Name))
	if u.Token != "" {
		fmt.Fprintf(&b, "    token: %s\n", q(u.Token))
	}
	if u.CertFile != "" {
		fmt.Fprintf(&b, "    client-certificate: %s\n    client-key: %s\n", q(u.CertFile), q(u.KeyFile))
	}
	fmt.Fprintf(&b, "contexts:\n- name: integration\n  context:\n    cluster: integration\n    user: %s\ncurrent-context: integration\n", q(u.Name))
	return b.Bytes()
}
