package kubeconfig

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// env returns a Getenv over a fixed environment.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// writeFile writes a file under dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// kubeconfigYAML is a one-context kubeconfig with the given cluster and
// user bodies (indented by 4).
func kubeconfigYAML(cluster, user string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: ctx
clusters:
- name: c
  cluster:
%s
contexts:
- name: ctx
  context:
    cluster: c
    user: u
users:
- name: u
  user:
%s
`, indent(cluster), indent(user))
}

func indent(s string) string {
	if s == "" {
		return "    {}"
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

func authHeader(t *testing.T, a Authenticator) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://x/", nil)
	if err := a.Authorize(req); err != nil {
		t.Fatal(err)
	}
	return req.Header.Get("Authorization")
}

func TestLoadSources(t *testing.T) {
	dir := t.TempDir()
	ca, err := os.ReadFile("testdata/pki/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, dir, "flag.yaml", kubeconfigYAML("server: https://flag.example:6443\ncertificate-authority: "+
		mustAbs(t, "testdata/pki/ca.crt"), "token: flag-token"))
	envFile := writeFile(t, dir, "env.yaml", kubeconfigYAML("server: https://env.example", "token: env-token"))
	home := t.TempDir()
	homeFile := writeFile(t, home, ".kube/config", kubeconfigYAML("server: http://home.example", ""))
	sa := t.TempDir()
	writeFile(t, sa, "token", "sa-token\n")
	writeFile(t, sa, "ca.crt", string(ca))
	noHome := t.TempDir()

	tests := []struct {
		name       string
		opts       Options
		wantServer string
		wantAuth   string
		wantSource string
		wantTLS    bool
	}{
		{"kubecfg", Options{Kubeconfig: file, HomeDir: home, Getenv: env("KUBECONFIG", envFile)},
			"https://flag.example:6443", "Bearer flag-token", "kubeconfig " + file + ` context "ctx"`, true},
		{"kubecfg with apiserver", Options{Kubeconfig: file, APIServer: "https://override:443"},
			"https://override:443", "Bearer flag-token", "kubeconfig " + file + ` context "ctx"`, true},
		{"apiserver alone http", Options{APIServer: "http://127.0.0.1:8080", HomeDir: home, Getenv: env("KUBECONFIG", envFile)},
			"http://127.0.0.1:8080", "", "-apiserver http://127.0.0.1:8080", false},
		{"apiserver alone https", Options{APIServer: "https://api.example", HomeDir: home, Getenv: env()},
			"https://api.example", "", "-apiserver https://api.example", true},
		{"KUBECONFIG", Options{HomeDir: home, Getenv: env("KUBECONFIG", envFile, "KUBERNETES_SERVICE_HOST", "10.0.0.1")},
			"https://env.example", "Bearer env-token", "kubeconfig " + envFile + ` context "ctx"`, true},
		{"KUBECONFIG missing files skipped", Options{HomeDir: home, Getenv: env("KUBECONFIG", filepath.Join(dir, "nope")+string(filepath.ListSeparator)+envFile)},
			"https://env.example", "Bearer env-token", "kubeconfig " + envFile + ` context "ctx"`, true},
		{"in-cluster", Options{HomeDir: home, ServiceAccountDir: sa, Getenv: env("KUBERNETES_SERVICE_HOST", "10.96.0.1", "KUBERNETES_SERVICE_PORT", "443")},
			"https://10.96.0.1:443", "Bearer sa-token", "in-cluster https://10.96.0.1:443", true},
		{"in-cluster IPv6", Options{HomeDir: home, ServiceAccountDir: sa, Getenv: env("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", "KUBERNETES_SERVICE_PORT", "443")},
			"https://[fd00:10:96::1]:443", "Bearer sa-token", "in-cluster https://[fd00:10:96::1]:443", true},
		{"KUBECONFIG of missing files falls through", Options{HomeDir: home, ServiceAccountDir: sa,
			Getenv: env("KUBECONFIG", filepath.Join(dir, "nope"), "KUBERNETES_SERVICE_HOST", "10.96.0.1", "KUBERNETES_SERVICE_PORT", "443")},
			"https://10.96.0.1:443", "Bearer sa-token", "in-cluster https://10.96.0.1:443", true},
		{"home", Options{HomeDir: home, ServiceAccountDir: filepath.Join(noHome, "nope"), Getenv: env()},
			"http://home.example", "", "kubeconfig " + homeFile + ` context "ctx"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Server.String(); got != tt.wantServer {
				t.Errorf("Server = %s, want %s", got, tt.wantServer)
			}
			if got := authHeader(t, c.Auth); got != tt.wantAuth {
				t.Errorf("Authorization = %q, want %q", got, tt.wantAuth)
			}
			if c.Source != tt.wantSource {
				t.Errorf("Source = %q, want %q", c.Source, tt.wantSource)
			}
			if (c.TLS != nil) != tt.wantTLS {
				t.Errorf("TLS = %v, want set: %v", c.TLS, tt.wantTLS)
			}
		})
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLoadNothingConfigured(t *testing.T) {
	home := t.TempDir()
	_, err := Load(Options{HomeDir: home, Getenv: env()})
	want := "no API server configured: tried -kubecfg and -apiserver (not given), KUBECONFIG (not set), " +
		"in-cluster (KUBERNETES_SERVICE_HOST not set), " + filepath.Join(home, ".kube", "config") +
		" (does not exist); give -kubecfg or -apiserver"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestLoadKUBECONFIGOfMissingFiles: a KUBECONFIG replaces ~/.kube/config
// even when none of its files exists, as in client-go: out of a cluster,
// that is an error, not another cluster's kubeconfig.
func TestLoadKUBECONFIGOfMissingFiles(t *testing.T) {
	home := t.TempDir()
	writeFile(t, home, ".kube/config", kubeconfigYAML("server: http://home.example", ""))
	missing := filepath.Join(t.TempDir(), "typo.yaml")
	_, err := Load(Options{HomeDir: home, Getenv: env("KUBECONFIG", missing)})
	want := "no API server configured: KUBECONFIG=" + missing + " names no file that exists, and kube2lb does not run in-cluster"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestLoadNoCredentialsOverHTTP: as in client-go, a user's credentials go
// to an https server only; the source says they were left out.
func TestLoadNoCredentialsOverHTTP(t *testing.T) {
	dir := t.TempDir()
	for _, server := range []string{"http://api.example:8080", "api.example:8080"} {
		file := writeFile(t, dir, "k.yaml", kubeconfigYAML("server: "+server, "token: secret"))
		c, err := Load(Options{Kubeconfig: file, Getenv: env()})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", c.Server.String(), nil)
		if err := c.Auth.Authorize(req); err != nil {
			t.Fatal(err)
		}
		if h := req.Header.Get("Authorization"); h != "" || !strings.HasSuffix(c.Source, `(without user "u"'s credentials: not sent over http)`) {
			t.Errorf("server %s: Authorization %q, source %q", server, h, c.Source)
		}
	}
}

// TestLoadImpersonationOfOtherUsers: impersonation is refused only for the
// user kube2lb is to act as, and empty fields are not impersonation.
func TestLoadImpersonationOfOtherUsers(t *testing.T) {
	file := writeFile(t, t.TempDir(), "k.yaml", `apiVersion: v1
kind: Config
current-context: ctx
clusters:
- name: c
  cluster:
    server: https://x
contexts:
- name: ctx
  context: {cluster: c, user: u}
users:
- name: u
  user:
    token: t
    as: ""
    as-groups: []
    as-user-extra: {}
- name: break-glass
  user:
    token: t
    as: system:admin
`)
	if _, err := Load(Options{Kubeconfig: file, Getenv: env()}); err != nil {
		t.Error(err)
	}
}

// TestLoadYAML11Booleans: kubectl reads yes, on, y (and no, off, n) as
// booleans, as YAML 1.1 does.
func TestLoadYAML11Booleans(t *testing.T) {
	dir := t.TempDir()
	for v, want := range map[string]bool{"yes": true, "On": true, "Y": true, "no": false, "OFF": false} {
		file := writeFile(t, dir, "k.yaml", kubeconfigYAML("server: https://x\ninsecure-skip-tls-verify: "+v, ""))
		c, err := Load(Options{Kubeconfig: file, Getenv: env()})
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if c.TLS.InsecureSkipVerify != want {
			t.Errorf("insecure-skip-tls-verify: %s gave %v", v, c.TLS.InsecureSkipVerify)
		}
	}
}

// TestLoadErrors checks that what is wrong fails in Load, and that the
// error names the file, the entry and the field.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	pki := mustAbs(t, "testdata/pki")
	tests := []struct {
		name    string
		cluster string
		user    string
		opts    Options // Kubeconfig is set to the file
		want    string  // %s is the file
	}{
		{"missing key file", "server: https://x", "client-certificate: " + pki + "/client-rsa.crt\nclient-key: /x/key.pem", Options{},
			`kubeconfig %s: user "u": client-key: open /x/key.pem: no such file or directory`},
		{"missing cert file", "server: https://x", "client-certificate: cert.pem\nclient-key: " + pki + "/client-rsa.key", Options{},
			`kubeconfig %s: user "u": client-certificate: open ` + dir + `/cert.pem: no such file or directory`},
		{"key without cert", "server: https://x", "client-key-data: AAAA", Options{},
			`kubeconfig %s: user "u": client-certificate: missing, but a client key is set`},
		{"mismatched key", "server: https://x", "client-certificate: " + pki + "/client-rsa.crt\nclient-key: " + pki + "/client-ec.key", Options{},
			`kubeconfig %s: user "u": client-certificate, client-key: tls: private key type does not match public key type`},
		{"bad base64", "server: https://x\ncertificate-authority-data: '!!'", "", Options{},
			`kubeconfig %s: cluster "c": certificate-authority-data: base64: illegal base64 data at input byte 0`},
		{"bad CA", "server: https://x\ncertificate-authority-data: QUJD", "", Options{},
			`kubeconfig %s: cluster "c": certificate-authority-data: no PEM certificate found`},
		{"missing CA file", "server: https://x\ncertificate-authority: ca.crt", "", Options{},
			`kubeconfig %s: cluster "c": certificate-authority: open ` + dir + `/ca.crt: no such file or directory`},
		{"CA and insecure", "server: https://x\ncertificate-authority: " + pki + "/ca.crt\ninsecure-skip-tls-verify: true", "", Options{},
			`kubeconfig %s: cluster "c": insecure-skip-tls-verify: a certificate authority is set too; keep one`},
		{"insecure not a bool", "server: https://x\ninsecure-skip-tls-verify: 'yes'", "", Options{},
			`kubeconfig %s: cluster "c": insecure-skip-tls-verify: want true or false (line 8)`},
		{"no server", "insecure-skip-tls-verify: true", "", Options{},
			`kubeconfig %s: cluster "c": server: missing`},
		{"bad scheme", "server: ftp://x", "", Options{},
			`kubeconfig %s: cluster "c": server: scheme "ftp" is not http or https`},
		{"bad proxy", "server: https://x\nproxy-url: ftp://proxy", "", Options{},
			`kubeconfig %s: cluster "c": proxy-url: scheme "ftp" is not http, https or socks5`},
		{"missing token file", "server: https://x", "tokenFile: tok", Options{},
			`kubeconfig %s: user "u": tokenFile: open ` + dir + `/tok: no such file or directory`},
		{"token and basic", "server: https://x", "token: t\nusername: u\npassword: p", Options{},
			`kubeconfig %s: user "u": username: a token is set too; use either a token or a username and password`},
		{"auth-provider", "server: https://x", "auth-provider:\n  name: gcp\n  config: {}", Options{},
			`kubeconfig %s: user "u": auth-provider: auth-provider "gcp" is not supported; use an exec credential plugin instead, e.g. gke-gcloud-auth-plugin for gcp or kubelogin for azure and oidc`},
		{"impersonation", "server: https://x", "token: t\nas: nobody", Options{},
			`kubeconfig %s: user "u": as: impersonation is not supported: give kube2lb the identity it is to act as`},
		{"impersonated groups", "server: https://x", "token: t\nas-groups: [devs]", Options{},
			`kubeconfig %s: user "u": as-groups: impersonation is not supported: give kube2lb the identity it is to act as`},
		{"exec version", "server: https://x", "exec:\n  apiVersion: client.authentication.k8s.io/v1alpha1\n  command: x", Options{},
			`kubeconfig %s: user "u": exec: apiVersion: "client.authentication.k8s.io/v1alpha1" is not supported; use client.authentication.k8s.io/v1 or v1beta1`},
		{"exec v1 without interactiveMode", "server: https://x", "exec:\n  apiVersion: client.authentication.k8s.io/v1\n  command: x", Options{},
			`kubeconfig %s: user "u": exec: interactiveMode: missing (required by client.authentication.k8s.io/v1)`},
		{"exec Always", "server: https://x", "exec:\n  apiVersion: client.authentication.k8s.io/v1\n  command: x\n  interactiveMode: Always", Options{},
			`kubeconfig %s: user "u": exec: interactiveMode: Always needs a terminal, which kube2lb does not give plugins`},
		{"exec missing relative command", "server: https://x", "exec:\n  apiVersion: client.authentication.k8s.io/v1beta1\n  command: bin/plugin\n  installHint: get it from example.com", Options{},
			`kubeconfig %s: user "u": exec: command: exec: "` + dir + `/bin/plugin": stat ` + dir + `/bin/plugin: no such file or directory; get it from example.com`},
		{"exec env without name", "server: https://x", "exec:\n  apiVersion: client.authentication.k8s.io/v1beta1\n  command: x\n  env:\n  - value: v", Options{},
			`kubeconfig %s: user "u": exec: env[0]: missing name (line 20)`},
		{"bad -apiserver", "server: https://x", "", Options{APIServer: "ftp://x"},
			`-apiserver: scheme "ftp" is not http or https`},
		{"no such context", "server: https://x", "", Options{Context: "nope"},
			`kubeconfig %s: context "nope" not found`},
		{"syntax", "server: https://x\n  bad: indent", "", Options{},
			`kubeconfig %s:8:10: mapping values are not allowed here`},
		{"anchor", "server: &s https://x", "", Options{},
			`kubeconfig %s:7:13: anchors (&) are not supported`},
		{"wrong type", "server: [https://x]", "", Options{},
			`kubeconfig %s: cluster "c": server: want a string, found a sequence (line 7)`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, dir, fmt.Sprintf("k%d.yaml", i), kubeconfigYAML(tt.cluster, tt.user))
			tt.opts.Kubeconfig = file
			_, err := Load(tt.opts)
			want := tt.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, file)
			}
			if err == nil || err.Error() != want {
				t.Errorf("got  %v\nwant %s", err, want)
			}
		})
	}
}

func TestLoadContextErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, want string
	}{
		{"no current-context", "apiVersion: v1\nkind: Config\n", "kubeconfig %s: no current-context is set and no -context was given"},
		{"missing cluster", "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n",
			`kubeconfig %s: context "a": cluster: cluster "c" not found`},
		{"context without cluster", "current-context: a\ncontexts:\n- name: a\n  context: {user: u}\n",
			`kubeconfig %s: context "a": cluster: missing`},
		{"missing user", "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: 'http://x'}\n",
			`kubeconfig %s: context "a": user: user "u" not found`},
		{"duplicate name", "clusters:\n- name: c\n  cluster: {}\n- name: c\n  cluster: {}\n",
			`kubeconfig %s: cluster "c": name: defined twice`},
		{"nameless", "users:\n- user: {}\n", `kubeconfig %s: users[0]: missing name (line 2)`},
		{"not a mapping", "- a\n", `kubeconfig %s: want a mapping at the top, found a sequence`},
		{"wrong kind", "kind: Pod\n", `kubeconfig %s: kind: want Config, found "Pod"`},
		{"two documents", "kind: Config\n---\nkind: Config\n", `kubeconfig %s:2:1: several documents in one file are not supported`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, dir, fmt.Sprintf("k%d.yaml", i), tt.content)
			_, err := Load(Options{Kubeconfig: file})
			if want := fmt.Sprintf(tt.want, file); err == nil || err.Error() != want {
				t.Errorf("got  %v\nwant %s", err, want)
			}
		})
	}
}

func TestLoadOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"missing kubecfg", Options{Kubeconfig: "/nonexistent/kubeconfig"}, "kubeconfig: open /nonexistent/kubeconfig: no such file or directory"},
		{"apiserver with context", Options{APIServer: "http://x", Context: "c"}, "-context needs a kubeconfig (-kubecfg), not -apiserver alone"},
		{"apiserver scheme", Options{APIServer: "unix:///x"}, `-apiserver: scheme "unix" is not http or https`},
		{"apiserver userinfo", Options{APIServer: "https://u:secret@x"}, `-apiserver: user information in the URL is not supported; use a user's username and password`},
		{"in-cluster without port", Options{Getenv: env("KUBERNETES_SERVICE_HOST", "10.0.0.1")},
			"in-cluster: KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is not"},
		{"in-cluster without token", Options{ServiceAccountDir: "/nonexistent", Getenv: env("KUBERNETES_SERVICE_HOST", "10.0.0.1", "KUBERNETES_SERVICE_PORT", "443")},
			"in-cluster: ca.crt: open /nonexistent/ca.crt: no such file or directory"},
		{"in-cluster with context", Options{Context: "x", Getenv: env("KUBERNETES_SERVICE_HOST", "10.0.0.1")},
			"-context needs a kubeconfig, but none was found and kube2lb runs in-cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.HomeDir == "" {
				tt.opts.HomeDir = t.TempDir()
			}
			if tt.opts.Getenv == nil {
				tt.opts.Getenv = env()
			}
			_, err := Load(tt.opts)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestServerWithoutScheme follows kubectl: a bare host:port is https when
// the cluster has TLS settings, http otherwise.
func TestServerWithoutScheme(t *testing.T) {
	for _, tt := range []struct {
		server string
		tls    bool
		want   string
	}{
		{"10.0.0.1:6443", true, "https://10.0.0.1:6443"},
		{"localhost:8080", false, "http://localhost:8080"},
		{"https://[::1]:6443/p", false, "https://[::1]:6443/p"},
	} {
		u, err := parseServer(tt.server, tt.tls)
		if err != nil || u.String() != tt.want {
			t.Errorf("parseServer(%q, %v) = %v, %v; want %s", tt.server, tt.tls, u, err, tt.want)
		}
	}
}

// TestNoSecretsInErrors loads broken kubeconfigs full of secrets and checks
// that no error, Source or printed Authenticator shows one.
func TestNoSecretsInErrors(t *testing.T) {
	const secret = "SECRETvalue42"
	dir := t.TempDir()
	pki := mustAbs(t, "testdata/pki")
	tests := []struct{ cluster, user string }{
		{"server: https://x\ncertificate-authority-data: " + secret, "token: " + secret},
		{"server: https://x", "token: \"" + secret + "\\n\""},
		{"server: https://x", "username: admin\npassword: \"" + secret + "\\r\""},
		{"server: https://x", "token: " + secret + "\nusername: u\npassword: " + secret},
		{"server: https://x", "client-certificate-data: " + secret + "\nclient-key-data: " + secret},
		{"server: https://x", "client-certificate: " + pki + "/client-rsa.crt\nclient-key-data: " + secret + "AAAA"},
		{"server: \"https://user:" + secret + "@x\"", ""},
		{"server: https://x\nproxy-url: \"http://user:" + secret + "@proxy:bad\"", ""},
		{"server: https://x", "token: " + secret + "\nauth-provider: {name: oidc, config: {client-secret: " + secret + "}}"},
		{"server: https://x", "exec:\n  apiVersion: v9\n  command: x\n  args: [" + secret + "]\n  env: [{name: K, value: " + secret + "}]"},
		{"server: https://x", "token: &a " + secret},
		{"server: https://x", "token: \"" + secret},
		{"server: https://x", "password: " + secret + ": x"},
	}
	for i, tt := range tests {
		file := writeFile(t, dir, fmt.Sprintf("k%d.yaml", i), kubeconfigYAML(tt.cluster, tt.user))
		_, err := Load(Options{Kubeconfig: file})
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("case %d: error shows the secret: %v", i, err)
		}
	}

	// Loaded configurations: Source and the Authenticator's printed forms.
	tokFile := writeFile(t, dir, "tok", secret)
	for i, user := range []string{"token: " + secret, "username: u\npassword: " + secret, "tokenFile: " + tokFile} {
		file := writeFile(t, dir, fmt.Sprintf("ok%d.yaml", i), kubeconfigYAML("server: https://x", user))
		c, err := Load(Options{Kubeconfig: file})
		if err != nil {
			t.Fatal(err)
		}
		authHeader(t, c.Auth)
		for _, s := range []string{c.Source, fmt.Sprintf("%v %+v %#v %s", c.Auth, c.Auth, c.Auth, c.Auth)} {
			if strings.Contains(s, secret) {
				t.Errorf("ok%d: %q shows the secret", i, s)
			}
		}
	}
}
