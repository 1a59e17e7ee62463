package kubeconfig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the exec credential plugin: with
// KUBE2LB_TEST_PLUGIN set, TestMain acts as the plugin instead of running
// tests, so no separate program needs building.
func TestMain(m *testing.M) {
	if mode := os.Getenv("KUBE2LB_TEST_PLUGIN"); mode != "" {
		os.Exit(testPlugin(mode))
	}
	os.Exit(m.Run())
}

// testPlugin is the exec plugin. It counts its runs in $PLUGIN_DIR/count,
// records its KUBERNETES_EXEC_INFO and arguments in $PLUGIN_DIR/info-N.json,
// and answers token-N, or a client certificate, or misbehaves, by mode.
func testPlugin(mode string) int {
	dir := os.Getenv("PLUGIN_DIR")
	n := 1
	if b, err := os.ReadFile(filepath.Join(dir, "count")); err == nil {
		n, _ = strconv.Atoi(string(b))
		n++
	}
	os.WriteFile(filepath.Join(dir, "count"), []byte(strconv.Itoa(n)), 0o600)
	info, _ := json.Marshal(map[string]any{
		"execInfo":  os.Getenv("KUBERNETES_EXEC_INFO"),
		"args":      os.Args[1:],
		"inherited": os.Getenv("KUBE2LB_TEST_INHERITED"),
	})
	os.WriteFile(filepath.Join(dir, fmt.Sprintf("info-%d.json", n)), info, 0o600)
	api := os.Getenv("PLUGIN_API")
	status := map[string]any{}
	switch mode {
	case "token":
		status["token"] = fmt.Sprintf("token-%d", n)
		if exp := os.Getenv("PLUGIN_EXPIRES"); exp != "" {
			status["expirationTimestamp"] = exp
		}
	case "cert":
		c, _ := os.ReadFile(os.Getenv("PLUGIN_CERT"))
		k, _ := os.ReadFile(os.Getenv("PLUGIN_KEY"))
		status["clientCertificateData"] = string(c)
		status["clientKeyData"] = string(k)
	case "hang":
		time.Sleep(time.Hour)
	case "fail":
		fmt.Fprintln(os.Stderr, "error: your cloud login expired; log in again")
		return 3
	case "garbage":
		fmt.Print(`{"apiVersion": "` + api + `", "status": {"token": "SECRETvalue42"`)
		return 0
	case "wrongversion":
		api = "client.authentication.k8s.io/v1alpha1"
		status["token"] = "SECRETvalue42"
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"apiVersion": api,
		"kind":       "ExecCredential",
		"status":     status,
	})
	return 0
}

// get makes a request with cfg as kube2lb would, and returns the status
// code and body.
func get(t *testing.T, cfg *Config) (int, string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg.TLS, Proxy: cfg.Proxy, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest("GET", cfg.Server.String()+"/api", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Auth.Authorize(req); err != nil {
		return 0, "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// echoServer answers with the request's Authorization header and the
// client certificate's common name.
func echoServer(t *testing.T, clientCAs *x509.CertPool) *httptest.Server {
	t.Helper()
	return echoServerAuth(t, clientCAs, tls.RequireAndVerifyClientCert)
}

// echoServerAuth is echoServer with auth as its ClientAuth when clientCAs
// is set (kube-apiserver's is VerifyClientCertIfGiven).
func echoServerAuth(t *testing.T, clientCAs *x509.CertPool, auth tls.ClientAuthType) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "auth=%s cn=%s", r.Header.Get("Authorization"), cn)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.TLS = &tls.Config{}
	if clientCAs != nil {
		srv.TLS.ClientAuth = auth
		srv.TLS.ClientCAs = clientCAs
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// serverCA writes the test server's certificate as a CA file.
func serverCA(t *testing.T, dir string, srv *httptest.Server) string {
	t.Helper()
	return writeFile(t, dir, "server-ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
}

func testPKI(t *testing.T) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile("testdata/pki/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := certPool(b)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func load(t *testing.T, dir, cluster, user string) *Config {
	t.Helper()
	file := writeFile(t, dir, "kubeconfig", kubeconfigYAML(cluster, user))
	cfg, err := Load(Options{Kubeconfig: file})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestE2EServerVerification(t *testing.T) {
	srv := echoServer(t, nil)
	dir := t.TempDir()
	ca := serverCA(t, dir, srv)
	pki := mustAbs(t, "testdata/pki")
	tests := []struct {
		name    string
		cluster string
		wantErr string
	}{
		{"CA file", "certificate-authority: " + ca, ""},
		{"wrong CA", "certificate-authority: " + pki + "/ca.crt", "certificate signed by unknown authority"},
		{"system roots", "", "certificate signed by unknown authority"},
		{"insecure", "insecure-skip-tls-verify: true", ""},
		{"tls-server-name", "certificate-authority: " + ca + "\ntls-server-name: example.com", ""},
		{"wrong tls-server-name", "certificate-authority: " + ca + "\ntls-server-name: wrong.example.org", "not wrong.example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := load(t, t.TempDir(), "server: "+srv.URL+"\n"+tt.cluster, "token: tok")
			code, body, err := get(t, cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || code != 200 || body != "auth=Bearer tok cn=" {
				t.Fatalf("got %d %q %v", code, body, err)
			}
		})
	}
}

func TestE2EClientCertificates(t *testing.T) {
	srv := echoServer(t, testPKI(t))
	dir := t.TempDir()
	ca := serverCA(t, dir, srv)
	pki := mustAbs(t, "testdata/pki")
	b64 := func(f string) string {
		b, err := os.ReadFile(filepath.Join(pki, f))
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	tests := []struct {
		name, user, wantCN string
	}{
		{"RSA PKCS#1 files", "client-certificate: " + pki + "/client-rsa.crt\nclient-key: " + pki + "/client-rsa.key", "client-rsa"},
		{"RSA PKCS#8 data", "client-certificate-data: " + b64("client-rsa-pkcs8.crt") + "\nclient-key-data: " + b64("client-rsa-pkcs8.key"), "client-rsa-pkcs8"},
		{"ECDSA SEC1", "client-certificate-data: " + b64("client-ec.crt") + "\nclient-key: " + pki + "/client-ec.key", "client-ec"},
		{"ECDSA PKCS#8", "client-certificate: " + pki + "/client-ec.crt\nclient-key-data: " + b64("client-ec-pkcs8.key"), "client-ec"},
		{"Ed25519", "client-certificate: " + pki + "/client-ed25519.crt\nclient-key: " + pki + "/client-ed25519.key", "client-ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := load(t, t.TempDir(), "server: "+srv.URL+"\ncertificate-authority: "+ca, tt.user)
			code, body, err := get(t, cfg)
			if err != nil || code != 200 || body != "auth= cn="+tt.wantCN {
				t.Fatalf("got %d %q %v", code, body, err)
			}
		})
	}

	t.Run("no certificate", func(t *testing.T) {
		cfg := load(t, t.TempDir(), "server: "+srv.URL+"\ncertificate-authority: "+ca, "token: x")
		if _, _, err := get(t, cfg); err == nil {
			t.Fatal("the server accepted a client without a certificate")
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestE2EClientCertificateRotation replaces the certificate files between
// connections: the next handshake uses the new ones.
func TestE2EClientCertificateRotation(t *testing.T) {
	srv := echoServer(t, testPKI(t))
	dir := t.TempDir()
	ca := serverCA(t, dir, srv)
	crt, key := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	copyFile(t, "testdata/pki/client-rsa.crt", crt)
	copyFile(t, "testdata/pki/client-rsa.key", key)
	cfg := load(t, dir, "server: "+srv.URL+"\ncertificate-authority: "+ca, "client-certificate: client.crt\nclient-key: client.key")
	if _, body, err := get(t, cfg); err != nil || body != "auth= cn=client-rsa" {
		t.Fatalf("got %q %v", body, err)
	}

	// Half a rotation (new certificate, old key) keeps the old pair.
	copyFile(t, "testdata/pki/client-ec.crt", crt)
	if _, body, err := get(t, cfg); err != nil || body != "auth= cn=client-rsa" {
		t.Fatalf("mid-rotation: got %q %v", body, err)
	}
	copyFile(t, "testdata/pki/client-ec.key", key)
	if _, body, err := get(t, cfg); err != nil || body != "auth= cn=client-ec" {
		t.Fatalf("after rotation: got %q %v", body, err)
	}
	if !cfg.CertificateAuth() {
		t.Error("CertificateAuth false with certificate files")
	}
}

func TestE2ETokenFileRotation(t *testing.T) {
	srv := echoServer(t, nil)
	dir := t.TempDir()
	ca := serverCA(t, dir, srv)
	tok := writeFile(t, dir, "token", "one\n")
	cfg := load(t, dir, "server: "+srv.URL+"\ncertificate-authority: "+ca, "tokenFile: token")
	ft := cfg.Auth.(*fileToken)
	now := time.Now()
	ft.now = func() time.Time { return now }

	check := func(want string) {
		t.Helper()
		if _, body, err := get(t, cfg); err != nil || body != "auth=Bearer "+want+" cn=" {
			t.Fatalf("got %q %v, want token %s", body, err, want)
		}
	}
	check("one")
	writeFile(t, dir, "token", "two")
	check("one") // cached
	now = now.Add(tokenFileMaxAge)
	check("two") // read again after a minute
	writeFile(t, dir, "token", "three")
	cfg.Auth.Refresh(nil)
	check("three") // read again after a 401
	os.Remove(tok)
	now = now.Add(tokenFileMaxAge)
	check("three") // a vanished file keeps the last token while it is taken
	cfg.Auth.Refresh(nil)
	// Once refused (401), the token is not sent again: the error says why.
	if _, body, err := get(t, cfg); err == nil || !strings.Contains(err.Error(), tok+": no such file or directory (the API server refused the token read before)") {
		t.Fatalf("token refused, file gone: got %q %v, want the file's error", body, err)
	}
	writeFile(t, dir, "token", "four")
	check("four")
}

func TestE2EInCluster(t *testing.T) {
	srv := echoServer(t, nil)
	sa := t.TempDir()
	serverCA(t, sa, srv)
	os.Rename(filepath.Join(sa, "server-ca.crt"), filepath.Join(sa, "ca.crt"))
	writeFile(t, sa, "token", "sa-token-1\n")
	u, _ := url.Parse(srv.URL)
	cfg, err := Load(Options{ServiceAccountDir: sa, HomeDir: t.TempDir(),
		Getenv: env("KUBERNETES_SERVICE_HOST", u.Hostname(), "KUBERNETES_SERVICE_PORT", u.Port())})
	if err != nil {
		t.Fatal(err)
	}
	if _, body, err := get(t, cfg); err != nil || body != "auth=Bearer sa-token-1 cn=" {
		t.Fatalf("got %q %v", body, err)
	}
	writeFile(t, sa, "token", "sa-token-2\n")
	cfg.Auth.Refresh(nil)
	if _, body, err := get(t, cfg); err != nil || body != "auth=Bearer sa-token-2 cn=" {
		t.Fatalf("after rotation: got %q %v", body, err)
	}
}

// TestE2EProxy sends requests for an http server through an http proxy.
func TestE2EProxy(t *testing.T) {
	var proxied []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied = append(proxied, r.URL.String())
		fmt.Fprint(w, "via proxy")
	}))
	defer proxy.Close()
	cfg := load(t, t.TempDir(), "server: http://api.invalid:8080\nproxy-url: "+proxy.URL, "")
	if _, body, err := get(t, cfg); err != nil || body != "via proxy" {
		t.Fatalf("got %q %v", body, err)
	}
	if len(proxied) != 1 || proxied[0] != "http://api.invalid:8080/api" {
		t.Errorf("proxy saw %q", proxied)
	}

	cfg = load(t, t.TempDir(), "server: https://api.invalid\nproxy-url: socks5://127.0.0.1:1080", "")
	req, _ := http.NewRequest("GET", "https://api.invalid/api", nil)
	if u, err := cfg.Proxy(req); err != nil || u.String() != "socks5://127.0.0.1:1080" {
		t.Errorf("Proxy = %v, %v", u, err)
	}
}

// execUser is a user whose exec plugin is this test binary.
func execUser(t *testing.T, pluginDir, mode, api string, extra ...string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"KUBE2LB_TEST_PLUGIN", mode, "PLUGIN_DIR", pluginDir, "PLUGIN_API", api}
	env = append(env, extra...)
	var b strings.Builder
	fmt.Fprintf(&b, "exec:\n  apiVersion: %s\n  command: %s\n  args: [--flag, 'with space']\n  interactiveMode: IfAvailable\n  provideClusterInfo: true\n  env:\n", api, self)
	for i := 0; i < len(env); i += 2 {
		fmt.Fprintf(&b, "  - name: %s\n    value: %q\n", env[i], env[i+1])
	}
	return b.String()
}

func pluginRuns(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "count"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(string(b))
	return n
}

// TestE2EExecPlugin runs the plugin, caches its token, and runs it again
// after a 401.
func TestE2EExecPlugin(t *testing.T) {
	for _, api := range []string{"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"} {
		t.Run(api, func(t *testing.T) {
			// The server accepts only the second token the plugin hands out,
			// as if the first had been revoked.
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer token-2" {
					http.Error(w, "Unauthorized", http.StatusUnauthorized)
					return
				}
				fmt.Fprint(w, "ok")
			}))
			defer srv.Close()
			t.Setenv("KUBE2LB_TEST_INHERITED", "from kube2lb's environment")
			dir := t.TempDir()
			ca := serverCA(t, dir, srv)
			cfg := load(t, dir, "server: "+srv.URL+"\ncertificate-authority: "+ca, execUser(t, dir, "token", api))
			if n := pluginRuns(t, dir); n != 0 {
				t.Fatalf("Load ran the plugin %d times", n)
			}
			code, _, err := get(t, cfg)
			if err != nil || code != http.StatusUnauthorized {
				t.Fatalf("first request: %d %v", code, err)
			}
			code, _, err = get(t, cfg)
			if err != nil || code != http.StatusUnauthorized || pluginRuns(t, dir) != 1 {
				t.Fatalf("cached token: %d %v, %d runs", code, err, pluginRuns(t, dir))
			}
			cfg.Auth.Refresh(nil) // what the client does after a 401
			code, body, err := get(t, cfg)
			if err != nil || code != 200 || body != "ok" || pluginRuns(t, dir) != 2 {
				t.Fatalf("after Refresh: %d %q %v, %d runs", code, body, err, pluginRuns(t, dir))
			}

			// What the plugin got: its arguments, its env and the cluster.
			b, err := os.ReadFile(filepath.Join(dir, "info-1.json"))
			if err != nil {
				t.Fatal(err)
			}
			var info struct {
				ExecInfo  string   `json:"execInfo"`
				Args      []string `json:"args"`
				Inherited string   `json:"inherited"`
			}
			if err := json.Unmarshal(b, &info); err != nil {
				t.Fatal(err)
			}
			if strings.Join(info.Args, "|") != "--flag|with space" {
				t.Errorf("plugin args = %q", info.Args)
			}
			if info.Inherited != "from kube2lb's environment" {
				t.Errorf("the plugin did not inherit the environment: %q", info.Inherited)
			}
			var in struct {
				Kind, APIVersion string
				Spec             struct {
					Interactive bool
					Cluster     struct {
						Server                   string
						CertificateAuthorityData []byte `json:"certificate-authority-data"`
					}
				}
			}
			if err := json.Unmarshal([]byte(info.ExecInfo), &in); err != nil {
				t.Fatalf("KUBERNETES_EXEC_INFO: %v", err)
			}
			caPEM, _ := os.ReadFile(ca)
			if in.Kind != "ExecCredential" || in.APIVersion != api || in.Spec.Interactive ||
				in.Spec.Cluster.Server != srv.URL || string(in.Spec.Cluster.CertificateAuthorityData) != string(caPEM) {
				t.Errorf("KUBERNETES_EXEC_INFO = %s", info.ExecInfo)
			}
		})
	}
}

func TestE2EExecExpiry(t *testing.T) {
	srv := echoServer(t, nil)
	dir := t.TempDir()
	ca := serverCA(t, dir, srv)
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := load(t, dir, "server: "+srv.URL+"\ncertificate-authority: "+ca,
		execUser(t, dir, "token", "client.authentication.k8s.io/v1", "PLUGIN_EXPIRES", exp.Format(time.RFC3339)))
	ex := cfg.Auth.(*execAuth)
	now := exp.Add(-time.Hour)
	ex.now = func() time.Time { return now }
	for i, want := range []string{"token-1", "token-1", "token-2"} {
		if i == 2 {
			now = exp // expired
		}
		if _, body, err := get(t, cfg); err != nil || body != "auth=Bearer "+want+" cn=" {
			t.Fatalf("request %d: got %q %v, want %s", i, body, err, want)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v %s", cfg.Auth, cfg.Auth, cfg.Auth, cfg.Auth); strings.Contains(s, "token-") {
		t.Errorf("printing the Authenticator shows the token: %s", s)
	}
}

func TestE2EExecClientCertificate(t *testing.T) {
	srv := echoServer(t, testPKI(t))
	dir := t.TempDir()
	ca := serverCA(t, dir, srv)
	cfg := load(t, dir, "server: "+srv.URL+"\ncertificate-authority: "+ca,
		execUser(t, dir, "cert", "client.authentication.k8s.io/v1beta1",
			"PLUGIN_CERT", mustAbs(t, "testdata/pki/client-ed25519.crt"), "PLUGIN_KEY", mustAbs(t, "testdata/pki/client-ed25519.key")))
	if _, body, err := get(t, cfg); err != nil || body != "auth= cn=client-ed25519" {
		t.Fatalf("got %q %v", body, err)
	}
	if n := pluginRuns(t, dir); n != 1 {
		t.Errorf("plugin ran %d times, want 1", n)
	}
	if !cfg.CertificateAuth() {
		t.Error("CertificateAuth false after a handshake that sent the plugin's certificate")
	}
}

// TestE2EExecTokenCertificateAuth: a plugin that hands out tokens sends
// no certificate, to a server that asks for one: a 401 is then about the
// token, and the caches keep their connections (CertificateAuth).
func TestE2EExecTokenCertificateAuth(t *testing.T) {
	srv := echoServerAuth(t, testPKI(t), tls.VerifyClientCertIfGiven)
	dir := t.TempDir()
	ca := serverCA(t, dir, srv)
	cfg := load(t, dir, "server: "+srv.URL+"\ncertificate-authority: "+ca, execUser(t, dir, "token", "client.authentication.k8s.io/v1"))
	if _, body, err := get(t, cfg); err != nil || body != "auth=Bearer token-1 cn=" {
		t.Fatalf("got %q %v", body, err)
	}
	if cfg.CertificateAuth() {
		t.Error("CertificateAuth true, but the handshake sent no certificate")
	}
}

func TestE2EExecFailures(t *testing.T) {
	tests := []struct {
		mode, want string
	}{
		{"hang", "did not answer within 500ms and was killed"},
		{"fail", "exit status 3: error: your cloud login expired; log in again"},
		{"garbage", "output is not a JSON ExecCredential (syntax error at line 1, column "},
		{"wrongversion", `output has apiVersion "client.authentication.k8s.io/v1alpha1", want "client.authentication.k8s.io/v1"`},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			if tt.mode == "hang" {
				old := execTimeout
				execTimeout = 500 * time.Millisecond
				defer func() { execTimeout = old }()
			}
			dir := t.TempDir()
			cfg := load(t, dir, "server: https://127.0.0.1:1", execUser(t, dir, tt.mode, "client.authentication.k8s.io/v1"))
			req, _ := http.NewRequest("GET", "https://127.0.0.1:1/", nil)
			err := cfg.Auth.Authorize(req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "kubeconfig "+filepath.Join(dir, "kubeconfig")+`: user "u": exec: `) {
				t.Errorf("error does not name the file and user: %v", err)
			}
			if strings.Contains(err.Error(), "SECRETvalue42") {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

// TestExecParse reads plugin outputs: JSON as plugins print it (compact or
// indented), and outputs that are refused, with errors that never show the
// secret.
func TestExecParse(t *testing.T) {
	const v1 = "client.authentication.k8s.io/v1"
	e := &execAuth{cfg: &execConfig{apiVersion: v1}}
	ok := []struct {
		out, token string
		expires    time.Time
	}{
		{`{"kind":"ExecCredential","apiVersion":"` + v1 + `","status":{"token":"SECRETvalue42"}}`, "SECRETvalue42", time.Time{}},
		{"{\n  \"apiVersion\": \"" + v1 + "\",\n  \"kind\": \"ExecCredential\",\n  \"spec\": {\"interactive\": false},\n" +
			"  \"status\": {\n    \"expirationTimestamp\": \"2026-12-07T10:00:00.5Z\",\n    \"token\": \"SECRET\\u0076alue42\"\n  }\n}\n",
			"SECRETvalue42", time.Date(2026, 12, 7, 10, 0, 0, 5e8, time.UTC)},
	}
	for _, tt := range ok {
		c, err := e.parse([]byte(tt.out))
		if err != nil || c.token != tt.token || !c.expires.Equal(tt.expires) {
			t.Errorf("%q: got %+v, %v; want token %q, expires %v", tt.out, c, err, tt.token, tt.expires)
		}
	}
	bad := []struct{ out, want string }{
		{`{"kind":"ExecCredential","apiVersion":"` + v1 + `","status":{"token":"SECRETvalue42"`, "output is not a JSON ExecCredential (syntax error at line 1, column "},
		{`{"kind":"ExecCredential","status":{"token":"x","token":"SECRETvalue42"}}`, "output is not a JSON ExecCredential (syntax error at line 1, column "},
		{"{\"kind\":\"SECRET\xff\"}", "output is not a JSON ExecCredential (not UTF-8 text, or too large)"},
		{`["SECRETvalue42"]`, "output is not a JSON ExecCredential (not an object)"},
		{`{"kind":{"a":"SECRETvalue42"}}`, "output is not an ExecCredential (kind is not a string)"},
		{`{"kind":"ExecCredential","apiVersion":"` + v1 + `","status":{"token":["SECRETvalue42"]}}`, "(status.token is not a string)"},
		{`{"kind":"ExecCredential","apiVersion":"` + v1 + `","status":"SECRETvalue42"}`, "output has no status"},
		{`{"kind":"ExecCredential","apiVersion":"` + v1 + `"}`, "output has no status"},
		{`{"kind":"Secret","apiVersion":"` + v1 + `","status":{"token":"SECRETvalue42"}}`, `output has kind "Secret"`},
		{`{"kind":"ExecCredential","apiVersion":"` + v1 + `","status":{"token":"SECRETvalue42","expirationTimestamp":"SECRETvalue42"}}`, "status.expirationTimestamp is not an RFC 3339 time"},
		{``, "output is not a JSON ExecCredential (not an object)"},
	}
	for _, tt := range bad {
		_, err := e.parse([]byte(tt.out))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %q", tt.out, err, tt.want)
		} else if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%q: error shows the secret: %v", tt.out, err)
		}
	}
}

// TestExecPluginRefreshOnce: requests refused together with one token (the
// watches, when it expires) run the plugin again once: a Refresh for a
// request that carried an older token keeps the token fetched since.
func TestExecPluginRefreshOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := load(t, dir, "server: https://127.0.0.1:6443\ninsecure-skip-tls-verify: true", execUser(t, dir, "token", "client.authentication.k8s.io/v1"))
	authorized := func() *http.Request {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://127.0.0.1:6443/api", nil)
		if err := cfg.Auth.Authorize(req); err != nil {
			t.Fatal(err)
		}
		return req
	}
	check := func(req *http.Request, token string, runs int) {
		t.Helper()
		if got := req.Header.Get("Authorization"); got != "Bearer "+token || pluginRuns(t, dir) != runs {
			t.Fatalf("Authorization %q after %d runs, want token %s after %d", got, pluginRuns(t, dir), token, runs)
		}
	}
	refused := []*http.Request{authorized(), authorized(), authorized()}
	check(refused[2], "token-1", 1)
	cfg.Auth.Refresh(refused[0])
	check(authorized(), "token-2", 2)
	cfg.Auth.Refresh(refused[1])
	cfg.Auth.Refresh(refused[2])
	req := authorized()
	check(req, "token-2", 2)
	cfg.Auth.Refresh(req) // the new token refused too
	check(authorized(), "token-3", 3)
	cfg.Auth.Refresh(nil) // unknown request: dropped
	check(authorized(), "token-4", 4)
}
