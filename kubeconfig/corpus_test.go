package kubeconfig

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/corpus/golden files")

// corpus lists the kubeconfigs under testdata/corpus, as the tools write
// them, with the context to pick. Each has its expected result in
// testdata/corpus/golden/NAME.json.
var corpus = []struct {
	name    string
	files   []string // KUBECONFIG, relative to testdata/corpus
	context string
}{
	{"kubectl-embedded", []string{"kubectl-embedded.yaml"}, ""},
	{"kubectl-embedded-staging", []string{"kubectl-embedded.yaml"}, "lb@staging"},
	{"kind", []string{"kind.yaml"}, ""},
	{"k3s", []string{"k3s.yaml"}, ""},
	{"minikube", []string{"minikube.yaml"}, ""},
	{"eks", []string{"eks.yaml"}, ""},
	{"gke", []string{"gke.yaml"}, ""},
	{"aks", []string{"aks.yaml"}, ""},
	{"quoting", []string{"quoting.yaml"}, ""},
	{"quoting-other", []string{"quoting.yaml"}, "other"},
	{"basic-crlf", []string{"basic-crlf.yaml"}, ""},
	{"kubectl-json", []string{"kubectl.json"}, ""},
	{"merge", []string{"merge/a.yaml", "merge/c.yaml", "merge/b.yaml"}, ""},
	{"merge-b-only", []string{"merge/a.yaml", "merge/b.yaml"}, "b-only"},
	{"merge-reversed", []string{"merge/b.yaml", "merge/a.yaml"}, "from-b"},
}

// view is what a kubeconfig resolves to, in a form that both the loader
// and kubectl's output can be turned into. Certificates and keys are named
// by the testdata/pki file holding the same bytes; paths are relative to
// testdata.
type view struct {
	Context               string    `json:"context"`
	Server                string    `json:"server"`
	CA                    string    `json:"ca,omitempty"`
	InsecureSkipTLSVerify bool      `json:"insecureSkipTLSVerify,omitempty"`
	TLSServerName         string    `json:"tlsServerName,omitempty"`
	ProxyURL              string    `json:"proxyURL,omitempty"`
	ClientCertificate     string    `json:"clientCertificate,omitempty"`
	ClientKey             string    `json:"clientKey,omitempty"`
	Token                 string    `json:"token,omitempty"`
	TokenFile             string    `json:"tokenFile,omitempty"`
	Username              string    `json:"username,omitempty"`
	Password              string    `json:"password,omitempty"`
	Exec                  *viewExec `json:"exec,omitempty"`
}

type viewExec struct {
	APIVersion         string     `json:"apiVersion"`
	Command            string     `json:"command"`
	Args               []string   `json:"args,omitempty"`
	Env                [][]string `json:"env,omitempty"`
	InstallHint        string     `json:"installHint,omitempty"`
	ProvideClusterInfo bool       `json:"provideClusterInfo,omitempty"`
	InteractiveMode    string     `json:"interactiveMode,omitempty"`
}

// pkiName names the testdata/pki file whose content is b.
func pkiName(t *testing.T, b []byte) string {
	t.Helper()
	if b == nil {
		return ""
	}
	files, err := filepath.Glob("testdata/pki/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		c, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(bytes.TrimSpace(c), bytes.TrimSpace(b)) {
			return filepath.Base(f)
		}
	}
	return "unknown"
}

// relTestdata makes an absolute path relative to testdata.
func relTestdata(t *testing.T, path string) string {
	t.Helper()
	if path == "" || !filepath.IsAbs(path) {
		return path
	}
	td, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(td, path)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func readOrNil(t *testing.T, path string, data []byte) []byte {
	t.Helper()
	if path == "" {
		return data
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// viewOf describes what the loader resolved.
func viewOf(t *testing.T, r *resolved) view {
	u := r.u
	v := view{
		Context:               r.context,
		Server:                r.server,
		CA:                    pkiName(t, r.ca),
		InsecureSkipTLSVerify: r.cl.insecureSkipTLSVerify,
		TLSServerName:         r.cl.tlsServerName,
		ProxyURL:              r.cl.proxyURL,
		ClientCertificate:     pkiName(t, readOrNil(t, u.clientCertificate, u.clientCertificateData)),
		ClientKey:             pkiName(t, readOrNil(t, u.clientKey, u.clientKeyData)),
		Token:                 u.token,
		TokenFile:             relTestdata(t, u.tokenFile),
		Username:              u.username,
		Password:              u.password,
	}
	if ex := u.exec; ex != nil {
		v.Exec = &viewExec{
			APIVersion:         ex.apiVersion,
			Command:            relTestdata(t, ex.command),
			Args:               ex.args,
			InstallHint:        ex.installHint,
			ProvideClusterInfo: ex.provideClusterInfo,
			InteractiveMode:    ex.interactiveMode,
		}
		for _, kv := range ex.env {
			v.Exec.Env = append(v.Exec.Env, []string{kv[0], kv[1]})
		}
	}
	return v
}

func corpusList(files []string) string {
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join("testdata", "corpus", f))
	}
	return strings.Join(paths, string(filepath.ListSeparator))
}

func resolveCorpus(t *testing.T, files []string, context string) *resolved {
	t.Helper()
	kc, desc, err := readKubeconfigList(corpusList(files))
	if err != nil {
		t.Fatal(err)
	}
	r, err := kc.resolve(desc, context, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCorpus(t *testing.T) {
	for _, tt := range corpus {
		t.Run(tt.name, func(t *testing.T) {
			got := viewOf(t, resolveCorpus(t, tt.files, tt.context))
			golden := filepath.Join("testdata", "corpus", "golden", tt.name+".json")
			if *update {
				b, err := json.MarshalIndent(got, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			var want view
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// needProgram finds an outside program. Without it the test skips on a
// developer's machine, and fails in CI, which never skips.
func needProgram(t *testing.T, name, why string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is needed %s: %v", name, why, err)
		}
		t.Skipf("%s is needed %s: %v", name, why, err)
	}
	return path
}

// kubectlConfig is the part of `kubectl config view -o json` compared.
type kubectlConfig struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthorityData []byte `json:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
			TLSServerName            string `json:"tls-server-name"`
			ProxyURL                 string `json:"proxy-url"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		User struct {
			ClientCertificateData []byte `json:"client-certificate-data"`
			ClientKeyData         []byte `json:"client-key-data"`
			Token                 string `json:"token"`
			TokenFile             string `json:"tokenFile"`
			Username              string `json:"username"`
			Password              string `json:"password"`
			Exec                  *struct {
				APIVersion string   `json:"apiVersion"`
				Command    string   `json:"command"`
				Args       []string `json:"args"`
				Env        []struct {
					Name  string `json:"name"`
					Value string `json:"value"`
				} `json:"env"`
				InstallHint        string `json:"installHint"`
				ProvideClusterInfo bool   `json:"provideClusterInfo"`
				InteractiveMode    string `json:"interactiveMode"`
			} `json:"exec"`
		} `json:"user"`
	} `json:"users"`
}

// TestKubectlDifferential checks that the loader reads every corpus entry
// as `kubectl config view --raw --minify --flatten` does.
func TestKubectlDifferential(t *testing.T) {
	kubectl := needProgram(t, "kubectl", "for the differential test against kubectl (Debian package kubernetes-client)")
	// kubectl must not find exec plugins or a real kubeconfig: some
	// kubectl wrappers run plugins to pick a version.
	empty := t.TempDir()
	for _, tt := range corpus {
		t.Run(tt.name, func(t *testing.T) {
			list, err := absList(corpusList(tt.files))
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"config", "view", "--raw", "--minify", "--flatten", "-o", "json"}
			if tt.context != "" {
				args = append(args, "--context", tt.context)
			}
			cmd := exec.Command(kubectl, args...)
			cmd.Env = []string{"PATH=" + empty, "HOME=" + empty, "KUBECONFIG=" + list}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl: %v: %s", err, stderr.Bytes())
			}
			var kc kubectlConfig
			if err := json.Unmarshal(out, &kc); err != nil {
				t.Fatalf("kubectl output: %v", err)
			}
			if len(kc.Clusters) != 1 || len(kc.Users) > 1 {
				t.Fatalf("kubectl --minify gave %d clusters and %d users", len(kc.Clusters), len(kc.Users))
			}
			cl := kc.Clusters[0].Cluster
			want := view{
				Context:               kc.CurrentContext,
				Server:                cl.Server,
				CA:                    pkiName(t, cl.CertificateAuthorityData),
				InsecureSkipTLSVerify: cl.InsecureSkipTLSVerify,
				TLSServerName:         cl.TLSServerName,
				ProxyURL:              cl.ProxyURL,
			}
			// kubectl leaves tokenFile and exec command paths as written:
			// they are relative to the (only) file.
			dir := filepath.Dir(strings.Split(list, string(filepath.ListSeparator))[0])
			if len(kc.Users) == 1 {
				u := kc.Users[0].User
				want.ClientCertificate = pkiName(t, u.ClientCertificateData)
				want.ClientKey = pkiName(t, u.ClientKeyData)
				want.Token = u.Token
				want.TokenFile = relTestdata(t, resolve(filepath.Join(dir, "x"), u.TokenFile))
				want.Username = u.Username
				want.Password = u.Password
				if ex := u.Exec; ex != nil {
					want.Exec = &viewExec{
						APIVersion:         ex.APIVersion,
						Command:            ex.Command,
						Args:               ex.Args,
						InstallHint:        ex.InstallHint,
						ProvideClusterInfo: ex.ProvideClusterInfo,
						InteractiveMode:    ex.InteractiveMode,
					}
					if strings.ContainsRune(ex.Command, filepath.Separator) {
						want.Exec.Command = relTestdata(t, resolve(filepath.Join(dir, "x"), ex.Command))
					}
					for _, e := range ex.Env {
						want.Exec.Env = append(want.Exec.Env, []string{e.Name, e.Value})
					}
				}
			}
			got := viewOf(t, resolveCorpus(t, tt.files, tt.context))
			if got.Exec != nil && want.Exec != nil && got.Exec.InteractiveMode == "" {
				// kubectl fills in v1beta1's default.
				want.Exec.InteractiveMode = ""
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-kubectl +loader):\n%s", diff)
			}
		})
	}
}

func absList(list string) (string, error) {
	var out []string
	for _, p := range filepath.SplitList(list) {
		a, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		out = append(out, a)
	}
	return strings.Join(out, string(filepath.ListSeparator)), nil
}

// TestCorpusLoad runs Load on every corpus entry, certificates and keys
// included. No exec plugin is installed (PATH is empty), so those entries
// fail with the plugin's install hint.
func TestCorpusLoad(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	wantErr := map[string]string{
		"eks": `exec: command: exec: "aws": executable file not found in $PATH`,
		"gke": `exec: command: exec: "gke-gcloud-auth-plugin": executable file not found in $PATH; ` +
			`Install gke-gcloud-auth-plugin for use with kubectl by following https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin`,
		"aks": `exec: command: exec: "kubelogin": executable file not found in $PATH; ` +
			`kubelogin is not installed which is required to connect to AAD enabled cluster. To learn more, please go to https://aka.ms/aks/kubelogin`,
	}
	// The Authorization header each entry sends; kubectl's precedence
	// puts tokenFile before token.
	wantAuth := map[string]string{
		"quoting":        "Bearer file-token-0123456789",
		"basic-crlf":     "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:p@ss word#1")),
		"merge":          "Bearer token-from-a",
		"merge-reversed": "Bearer token-from-b",
	}
	for _, tt := range corpus {
		t.Run(tt.name, func(t *testing.T) {
			list, err := absList(corpusList(tt.files))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(Options{Context: tt.context, HomeDir: t.TempDir(), Getenv: env("KUBECONFIG", list)})
			if want, ok := wantErr[tt.name]; ok {
				if err == nil || !strings.HasSuffix(err.Error(), want) {
					t.Fatalf("got %v, want an error ending in %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("context %q", viewOf(t, resolveCorpus(t, tt.files, tt.context)).Context); !strings.HasSuffix(cfg.Source, want) {
				t.Errorf("Source = %q, want it to end in %s", cfg.Source, want)
			}
			if (cfg.TLS != nil) != (cfg.Server.Scheme == "https") {
				t.Errorf("TLS = %v for %s", cfg.TLS, cfg.Server)
			}
			if got := authHeader(t, cfg.Auth); got != wantAuth[tt.name] {
				t.Errorf("Authorization = %q, want %q", got, wantAuth[tt.name])
			}
			if cfg.TLS != nil && cfg.TLS.GetClientCertificate != nil {
				c, err := cfg.TLS.GetClientCertificate(&tls.CertificateRequestInfo{})
				if err != nil || c.Leaf == nil {
					t.Errorf("client certificate: %v, %v", c, err)
				}
			}
		})
	}
}
