package controlplane

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/yaml"
)

// kindNamespace holds the kind provider's service accounts.
const kindNamespace = "kube2lb-e2e"

var (
	providerOnce sync.Once
	providerName string
)

// ProviderName returns the provider the suite uses: KUBE2LB_E2E_PROVIDER
// ("local" when unset). When it asks for "kind" but no Docker engine
// answers, it says so in one line on stderr and returns "local".
func ProviderName() string {
	providerOnce.Do(func() {
		providerName = os.Getenv("KUBE2LB_E2E_PROVIDER")
		switch providerName {
		case "", "local":
			providerName = "local"
		case "kind":
			if err := dockerAnswers(); err != nil {
				fmt.Fprintf(os.Stderr, "KUBE2LB_E2E_PROVIDER=kind: no Docker engine answers (%v); using local\n", err)
				providerName = "local"
			}
		}
	})
	return providerName
}

func dockerAnswers() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg == "" {
			return err
		}
		return errors.New(msg)
	}
	return nil
}

// startKind creates a kind cluster (or uses the one named by
// KUBE2LB_KIND_CLUSTER, which it leaves running) and sets up the same
// users as the local provider, with service-account tokens.
// KUBE2LB_KIND_IMAGE picks the node image.
func startKind(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	begin := time.Now()
	cp := &ControlPlane{Provider: "kind", Dir: t.TempDir(), opts: opts}
	t.Cleanup(func() { cp.stop(t) })
	provider := cluster.NewProvider(cluster.ProviderWithDocker())
	name := os.Getenv("KUBE2LB_KIND_CLUSTER")
	if name == "" {
		name = "kube2lb-e2e-" + randomToken()[:8]
		createOpts := []cluster.CreateOption{
			cluster.CreateWithKubeconfigPath(filepath.Join(cp.Dir, "kind.kubeconfig")),
			cluster.CreateWithWaitForReady(3 * time.Minute),
			cluster.CreateWithDisplayUsage(false),
			cluster.CreateWithDisplaySalutation(false),
		}
		if img := os.Getenv("KUBE2LB_KIND_IMAGE"); img != "" {
			createOpts = append(createOpts, cluster.CreateWithNodeImage(img))
		}
		if err := provider.Create(name, createOpts...); err != nil {
			skipOrFatal(t, "control plane: create kind cluster: %v", err)
		}
		cp.teardown = func() {
			if err := provider.Delete(name, filepath.Join(cp.Dir, "kind.kubeconfig")); err != nil {
				t.Logf("control plane: delete kind cluster %s: %v", name, err)
			}
		}
	}
	raw, err := provider.KubeConfig(name, false)
	if err != nil {
		t.Fatalf("control plane: kind kubeconfig: %v", err)
	}
	if err := cp.adoptKubeconfig(raw); err != nil {
		t.Fatalf("control plane: kind kubeconfig: %v", err)
	}
	cp.Admin = cp.newUser(t, "kind-admin", "", filepath.Join(cp.Dir, "admin.crt"), filepath.Join(cp.Dir, "admin.key"))

	apply(t, cp.Admin, Namespaces, "", Object{"metadata": Object{"name": kindNamespace}})
	saUser := func(sa string) *User {
		apply(t, cp.Admin, Resource{Prefix: "/api/v1", Name: "serviceaccounts", Namespaced: true}, kindNamespace,
			Object{"metadata": Object{"name": sa}})
		var tr struct {
			Status struct{ Token string } `json:"status"`
		}
		path := "/api/v1/namespaces/" + kindNamespace + "/serviceaccounts/" + sa + "/token"
		req := Object{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": Object{"expirationSeconds": 86400}}
		if err := cp.Admin.Do(t.Context(), http.MethodPost, path, req, &tr); err != nil {
			t.Fatalf("control plane: token for %s: %v", sa, err)
		}
		return cp.newUser(t, "system:serviceaccount:"+kindNamespace+":"+sa, tr.Status.Token, "", "")
	}
	cp.Minimal = saUser(MinimalUser)
	cp.NoEndpointSlices = saUser(NoEndpointSlicesUser)
	cp.grant(t, func(user string) Object {
		return Object{"kind": "ServiceAccount", "name": user[strings.LastIndexByte(user, ':')+1:], "namespace": kindNamespace}
	})
	if err := cp.writeKubeconfigs(); err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane: kind cluster %s ready at %s in %s", name, cp.URL, time.Since(begin).Round(time.Millisecond))
	return cp
}

// adoptKubeconfig takes the server, CA and admin client certificate of a
// kind kubeconfig and writes them as files into cp.Dir.
func (cp *ControlPlane) adoptKubeconfig(raw string) error {
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CAData string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				CertData string `json:"client-certificate-data"`
				KeyData  string `json:"client-key-data"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := yaml.Unmarshal([]byte(raw), &kc); err != nil {
		return err
	}
	if len(kc.Clusters) != 1 || len(kc.Users) != 1 {
		return fmt.Errorf("want one cluster and one user, have %d and %d", len(kc.Clusters), len(kc.Users))
	}
	cp.URL = kc.Clusters[0].Cluster.Server
	cp.CAFile = filepath.Join(cp.Dir, "ca.crt")
	for file, data := range map[string]string{
		cp.CAFile:                          kc.Clusters[0].Cluster.CAData,
		filepath.Join(cp.Dir, "admin.crt"): kc.Users[0].User.CertData,
		filepath.Join(cp.Dir, "admin.key"): kc.Users[0].User.KeyData,
	} {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(file), err)
		}
		if err := os.WriteFile(file, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// apply creates obj, or replaces it when it exists (a reused cluster).
func apply(t testing.TB, u *User, r Resource, ns string, obj Object) {
	t.Helper()
	err := u.Do(t.Context(), http.MethodPost, r.Path(ns, ""), obj, nil)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == http.StatusConflict {
		name := obj["metadata"].(Object)["name"].(string)
		err = u.Do(t.Context(), http.MethodPut, r.Path(ns, name), obj, nil)
	}
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
}
