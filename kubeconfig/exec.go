package kubeconfig

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// execTimeout bounds one run of an exec credential plugin. Plugins that
// talk to a cloud provider take seconds; one that hangs is killed.
var execTimeout = time.Minute

// maxExecOutput bounds what is read from a plugin's stdout and stderr.
const maxExecOutput = 1 << 20

// execAPIVersions are the ExecCredential versions kube2lb speaks.
var execAPIVersions = map[string]bool{
	"client.authentication.k8s.io/v1":      true,
	"client.authentication.k8s.io/v1beta1": true,
}

// execAuth gets credentials from an exec credential plugin (the protocol
// of kubectl's client-go: an ExecCredential in KUBERNETES_EXEC_INFO, one
// on stdout). The credential is cached until its expirationTimestamp, or
// until Refresh.
type execAuth struct {
	what    string // `kubeconfig F: user "u": exec`, for errors
	cfg     *execConfig
	path    string // the command, looked up
	input   []byte // the ExecCredential for KUBERNETES_EXEC_INFO
	timeout time.Duration
	now     func() time.Time

	mu   sync.Mutex
	cred *execCredential
}

// execCredential is what a plugin answered.
type execCredential struct {
	token   string
	cert    *tls.Certificate
	expires time.Time // zero: never
}

// execClusterInfo is the cluster part of KUBERNETES_EXEC_INFO, sent when
// provideClusterInfo is set.
type execClusterInfo struct {
	Server                   string `json:"server"`
	TLSServerName            string `json:"tls-server-name,omitempty"`
	InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify,omitempty"`
	CertificateAuthorityData []byte `json:"certificate-authority-data,omitempty"`
	ProxyURL                 string `json:"proxy-url,omitempty"`
}

type execInput struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Spec       struct {
		Cluster     *execClusterInfo `json:"cluster,omitempty"`
		Interactive bool             `json:"interactive"`
	} `json:"spec"`
}

// newExecAuth checks an exec configuration and finds its command; it does
// not run the plugin.
func newExecAuth(what string, cfg *execConfig, r *resolved) (*execAuth, error) {
	if !execAPIVersions[cfg.apiVersion] {
		return nil, fmt.Errorf("%s: apiVersion: %q is not supported; use client.authentication.k8s.io/v1 or v1beta1", what, cfg.apiVersion)
	}
	mode := cfg.interactiveMode
	if mode == "" {
		if cfg.apiVersion == "client.authentication.k8s.io/v1" {
			return nil, fmt.Errorf("%s: interactiveMode: missing (required by %s)", what, cfg.apiVersion)
		}
		mode = "IfAvailable"
	}
	switch mode {
	case "Never", "IfAvailable":
	case "Always":
		return nil, fmt.Errorf("%s: interactiveMode: Always needs a terminal, which kube2lb does not give plugins", what)
	default:
		return nil, fmt.Errorf("%s: interactiveMode: %q is not Never, IfAvailable or Always", what, mode)
	}
	if cfg.command == "" {
		return nil, fmt.Errorf("%s: command: missing", what)
	}
	path, err := exec.LookPath(cfg.command)
	if err != nil {
		if cfg.installHint != "" {
			// The hint tells how to install the plugin; one line for logs.
			hint := strings.Join(strings.Fields(cfg.installHint), " ")
			return nil, fmt.Errorf("%s: command: %w; %s", what, err, hint)
		}
		return nil, fmt.Errorf("%s: command: %w", what, err)
	}
	in := execInput{Kind: "ExecCredential", APIVersion: cfg.apiVersion}
	if cfg.provideClusterInfo {
		in.Spec.Cluster = &execClusterInfo{
			Server:                   r.server,
			TLSServerName:            r.cl.tlsServerName,
			InsecureSkipTLSVerify:    r.cl.insecureSkipTLSVerify,
			CertificateAuthorityData: r.ca,
			ProxyURL:                 r.cl.proxyURL,
		}
	}
	input, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &execAuth{what: what, cfg: cfg, path: path, input: input, timeout: execTimeout, now: time.Now}, nil
}

// get returns the cached credential, running the plugin when there is none
// or it expired. Concurrent callers wait for one run.
func (e *execAuth) get(ctx context.Context) (*execCredential, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.cred; c != nil && (c.expires.IsZero() || e.now().Before(c.expires)) {
		return c, nil
	}
	e.cred = nil
	c, err := e.run(ctx)
	if err != nil {
		return nil, err
	}
	e.cred = c
	return c, nil
}

// Authorize sets the plugin's token, if it gave one.
func (e *execAuth) Authorize(req *http.Request) error {
	c, err := e.get(req.Context())
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return nil
}

// Refresh drops the cached credential, so that the plugin runs again,
// unless it is a token that failed did not carry: one fetched since.
func (e *execAuth) Refresh(failed *http.Request) {
	e.mu.Lock()
	if c := e.cred; c != nil && (failed == nil || c.token == "" || failed.Header.Get("Authorization") == "Bearer "+c.token) {
		e.cred = nil
	}
	e.mu.Unlock()
}

// String names the plugin for logs, never its output.
func (e *execAuth) String() string { return "exec plugin " + e.cfg.command }

// GoString keeps the credential out of %#v.
func (e *execAuth) GoString() string { return e.String() }

// cert is the plugin's client certificate, or nil.
func (e *execAuth) cert() (*tls.Certificate, error) {
	c, err := e.get(context.Background())
	if err != nil {
		return nil, err
	}
	return c.cert, nil
}

// run runs the plugin once, without a shell, and parses its answer. The
// run is not cancelled with the request that needed it: its credential is
// cached for every request, but it is killed after e.timeout.
func (e *execAuth) run(ctx context.Context) (*execCredential, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.path, e.cfg.args...)
	cmd.Env = os.Environ()
	for _, kv := range e.cfg.env {
		cmd.Env = append(cmd.Env, kv[0]+"="+kv[1])
	}
	cmd.Env = append(cmd.Env, "KUBERNETES_EXEC_INFO="+string(e.input))
	stdout := &limitedBuffer{max: maxExecOutput}
	stderr := &limitedBuffer{max: maxExecOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Children that keep the pipes open must not keep us waiting.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, fmt.Errorf("%s: %s did not answer within %v and was killed", e.what, e.cfg.command, e.timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w%s", e.what, e.cfg.command, err, stderr.tail())
	}
	if stdout.overflow {
		return nil, fmt.Errorf("%s: %s wrote more than %d bytes", e.what, e.cfg.command, maxExecOutput)
	}
	c, err := e.parse(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", e.what, e.cfg.command, err)
	}
	return c, nil
}

// parse reads the plugin's ExecCredential. Its errors never quote the
// output, which holds the secret.
func (e *execAuth) parse(b []byte) (*execCredential, error) {
	// JSON is read as YAML, a superset, with the kubeconfig reader's
	// limits: no duplicate keys, UTF-8 text, 64 levels. Only the position
	// of an error is told: its text could quote the output.
	out, err := parseYAML("output", b)
	if err != nil {
		var ye *yamlError
		if errors.As(err, &ye) {
			return nil, fmt.Errorf("output is not a JSON ExecCredential (syntax error at line %d, column %d)", ye.line, ye.col)
		}
		return nil, errors.New("output is not a JSON ExecCredential (not UTF-8 text, or too large)")
	}
	var wrong string // the first field that is not a string
	str := func(n *node, key string) string {
		v := n.get(key)
		if v != nil && v.kind != scalarNode && v.kind != nullNode && wrong == "" {
			wrong = key
		}
		if v == nil || v.kind != scalarNode {
			return ""
		}
		return v.str
	}
	kind, version, st := str(out, "kind"), str(out, "apiVersion"), out.get("status")
	if out.kind != mapNode {
		return nil, errors.New("output is not a JSON ExecCredential (not an object)")
	}
	if wrong != "" {
		return nil, fmt.Errorf("output is not an ExecCredential (%s is not a string)", wrong)
	}
	if kind != "ExecCredential" {
		return nil, fmt.Errorf("output has kind %q, want ExecCredential", kind)
	}
	if version != e.cfg.apiVersion {
		return nil, fmt.Errorf("output has apiVersion %q, want %q", version, e.cfg.apiVersion)
	}
	if st == nil || st.kind != mapNode {
		return nil, errors.New("output has no status")
	}
	token, certData, keyData, expires := str(st, "token"), str(st, "clientCertificateData"), str(st, "clientKeyData"), str(st, "expirationTimestamp")
	if wrong != "" {
		return nil, fmt.Errorf("output is not an ExecCredential (status.%s is not a string)", wrong)
	}
	c := &execCredential{token: token}
	if expires != "" {
		if c.expires, err = time.Parse(time.RFC3339, expires); err != nil {
			return nil, errors.New("status.expirationTimestamp is not an RFC 3339 time")
		}
	}
	if err := checkToken(c.token); err != nil {
		return nil, fmt.Errorf("status.token: %w", err)
	}
	switch {
	case certData != "" && keyData != "":
		cert, err := parseKeyPair([]byte(certData), []byte(keyData))
		if err != nil {
			return nil, fmt.Errorf("status.clientCertificateData, clientKeyData: %w", err)
		}
		c.cert = cert
	case certData != "":
		return nil, errors.New("status has clientCertificateData but no clientKeyData")
	case keyData != "":
		return nil, errors.New("status has clientKeyData but no clientCertificateData")
	case c.token == "":
		return nil, errors.New("status has neither a token nor a client certificate")
	}
	return c, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.overflow = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// tail is the end of the plugin's stderr, for errors: plugins explain
// their failures there (expired cloud login, missing profile).
func (b *limitedBuffer) tail() string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return ""
	}
	if len(s) > 512 {
		s = "..." + s[len(s)-512:]
	}
	return ": " + s
}
