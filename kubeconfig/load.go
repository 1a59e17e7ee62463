package kubeconfig

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// DefaultServiceAccountDir is where Kubernetes mounts a pod's service-account
// token and cluster CA.
const DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Options are the flags and environment that choose the API server.
type Options struct {
	// Kubeconfig is the -kubecfg (alias -kubeconfig) flag: a kubeconfig file.
	Kubeconfig string
	// APIServer is the -apiserver flag. With Kubeconfig it overrides the
	// server of the chosen cluster; without, it is used alone, with no
	// credentials.
	APIServer string
	// Context is the -context flag; "" uses the current-context.
	Context string

	// Getenv reads KUBECONFIG, KUBERNETES_SERVICE_HOST and
	// KUBERNETES_SERVICE_PORT; nil means os.Getenv.
	Getenv func(string) string
	// HomeDir holds .kube/config; "" means os.UserHomeDir.
	HomeDir string
	// ServiceAccountDir holds the in-cluster token and ca.crt; "" means
	// DefaultServiceAccountDir.
	ServiceAccountDir string
}

// Load finds the API server and its credentials, trying in order:
//
//  1. opts.Kubeconfig: that file, its current-context or opts.Context;
//     opts.APIServer, if set, overrides the cluster's server.
//  2. opts.APIServer alone: that URL without credentials (https uses the
//     system roots).
//  3. $KUBECONFIG, a list of files separated by the OS's path-list
//     separator, merged as kubectl merges them: for every cluster, user and
//     context name and for current-context, the first file that sets it
//     wins. Files that do not exist are skipped.
//  4. In-cluster, when $KUBERNETES_SERVICE_HOST is set: the service-account
//     token (read again every minute and after Refresh) and ca.crt.
//  5. ~/.kube/config, when it exists and $KUBECONFIG is not set (as in
//     client-go, a $KUBECONFIG of missing files replaces it too).
//
// Otherwise it fails with an error that lists what it tried. Everything a
// kubeconfig names (context, cluster, user, certificate, key and token
// files, exec commands) is checked here, so that a mistake fails at
// start-up rather than at the first request. Errors name the file, the
// entry and the field, and never contain a secret.
func Load(opts Options) (*Config, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if opts.Kubeconfig != "" {
		kc, err := readKubeconfig(opts.Kubeconfig)
		if err != nil {
			return nil, err
		}
		abs, _ := filepath.Abs(opts.Kubeconfig)
		return kc.config("kubeconfig "+abs, opts.Context, opts.APIServer)
	}
	if opts.APIServer != "" {
		if opts.Context != "" {
			return nil, errors.New("-context needs a kubeconfig (-kubecfg), not -apiserver alone")
		}
		return bareServer(opts.APIServer)
	}
	var tried []string
	if list := getenv("KUBECONFIG"); list != "" {
		kc, desc, err := readKubeconfigList(list)
		if err != nil {
			return nil, err
		}
		if kc != nil {
			return kc.config(desc, opts.Context, "")
		}
		tried = append(tried, fmt.Sprintf("KUBECONFIG=%s (no such files)", list))
	} else {
		tried = append(tried, "KUBECONFIG (not set)")
	}
	if host := getenv("KUBERNETES_SERVICE_HOST"); host != "" {
		if opts.Context != "" {
			return nil, errors.New("-context needs a kubeconfig, but none was found and kube2lb runs in-cluster")
		}
		dir := opts.ServiceAccountDir
		if dir == "" {
			dir = DefaultServiceAccountDir
		}
		return inCluster(host, getenv("KUBERNETES_SERVICE_PORT"), dir)
	}
	tried = append(tried, "in-cluster (KUBERNETES_SERVICE_HOST not set)")
	if list := getenv("KUBECONFIG"); list != "" {
		// As client-go: a KUBECONFIG replaces ~/.kube/config, even when
		// none of its files exists; reading it would reach another cluster
		// than the one a typo in KUBECONFIG was meant for.
		return nil, fmt.Errorf("no API server configured: KUBECONFIG=%s names no file that exists, and kube2lb does not run in-cluster", list)
	}
	home := opts.HomeDir
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			tried = append(tried, fmt.Sprintf("~/.kube/config (%v)", err))
		}
	}
	if home != "" {
		path := filepath.Join(home, ".kube", "config")
		if _, err := os.Stat(path); err == nil {
			kc, err := readKubeconfig(path)
			if err != nil {
				return nil, err
			}
			return kc.config("kubeconfig "+path, opts.Context, "")
		} else if errors.Is(err, os.ErrNotExist) {
			tried = append(tried, path+" (does not exist)")
		} else {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
	}
	return nil, fmt.Errorf("no API server configured: tried -kubecfg and -apiserver (not given), %s; give -kubecfg or -apiserver",
		strings.Join(tried, ", "))
}

// readKubeconfigList reads and merges the files of $KUBECONFIG. It returns
// nil if none of them exists.
func readKubeconfigList(list string) (*kubeconfig, string, error) {
	var merged *kubeconfig
	var found []string
	seen := map[string]bool{}
	for _, path := range filepath.SplitList(list) {
		if path == "" {
			continue
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, "", fmt.Errorf("KUBECONFIG: %w", err)
		}
		if seen[abs] {
			continue
		}
		seen[abs] = true
		if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
			continue // as kubectl does
		}
		kc, err := readKubeconfig(abs)
		if err != nil {
			return nil, "", err
		}
		found = append(found, abs)
		if merged == nil {
			merged = kc
		} else {
			merged.merge(kc)
		}
	}
	if merged == nil {
		return nil, "", nil
	}
	desc := "kubeconfig " + found[0]
	if len(found) > 1 {
		desc = "KUBECONFIG " + strings.Join(found, string(filepath.ListSeparator))
	}
	return merged, desc, nil
}

// resolved is a kubeconfig narrowed to one context, with the files it names
// read. The differential test compares it with kubectl's view.
type resolved struct {
	desc        string // "kubeconfig FILE" or "KUBECONFIG LIST"
	context     string
	clusterName string
	userName    string // "" for none
	cl          *cluster
	u           *user
	server      string // cluster's, or the -apiserver override
	override    bool   // server is from -apiserver
	ca          []byte // PEM, from certificate-authority(-data)
}

// resolve picks the context and its cluster and user, and reads the CA.
func (kc *kubeconfig) resolve(desc, contextName, apiserver string) (*resolved, error) {
	r := &resolved{desc: desc, context: contextName}
	if r.context == "" {
		r.context = kc.currentContext
	}
	if r.context == "" {
		return nil, fmt.Errorf("%s: no current-context is set and no -context was given", desc)
	}
	ctx, ok := kc.contexts[r.context]
	if !ok {
		return nil, fmt.Errorf("%s: context %q not found", desc, r.context)
	}
	entry := fmt.Sprintf("context %q", r.context)
	if ctx.cluster == "" {
		return nil, fieldError(ctx.file, entry, "cluster", errors.New("missing"))
	}
	r.clusterName, r.userName = ctx.cluster, ctx.user
	if r.cl, ok = kc.clusters[ctx.cluster]; !ok {
		return nil, fieldError(ctx.file, entry, "cluster", fmt.Errorf("cluster %q not found", ctx.cluster))
	}
	r.u = &user{}
	if ctx.user != "" {
		if r.u, ok = kc.users[ctx.user]; !ok {
			return nil, fieldError(ctx.file, entry, "user", fmt.Errorf("user %q not found", ctx.user))
		}
	}
	cl := r.cl
	cEntry := fmt.Sprintf("cluster %q", ctx.cluster)
	r.server = cl.server
	if apiserver != "" {
		r.server, r.override = apiserver, true
	}
	if r.server == "" {
		return nil, fieldError(cl.file, cEntry, "server", errors.New("missing"))
	}
	switch {
	case cl.certificateAuthority != "" && cl.caData != nil:
		return nil, fieldError(cl.file, cEntry, "certificate-authority", errors.New("certificate-authority-data is set too; keep one"))
	case cl.certificateAuthority != "":
		b, err := os.ReadFile(cl.certificateAuthority)
		if err != nil {
			return nil, fieldError(cl.file, cEntry, "certificate-authority", err)
		}
		r.ca = b
	default:
		r.ca = cl.caData
	}
	if r.ca != nil && cl.insecureSkipTLSVerify {
		return nil, fieldError(cl.file, cEntry, "insecure-skip-tls-verify", errors.New("a certificate authority is set too; keep one"))
	}
	return r, nil
}

// config resolves a context and builds its Config.
func (kc *kubeconfig) config(desc, contextName, apiserver string) (*Config, error) {
	r, err := kc.resolve(desc, contextName, apiserver)
	if err != nil {
		return nil, err
	}
	return r.config()
}

func (r *resolved) config() (*Config, error) {
	cl, u := r.cl, r.u
	cEntry := fmt.Sprintf("cluster %q", r.clusterName)
	uEntry := fmt.Sprintf("user %q", r.userName)
	hasTLS := r.ca != nil || cl.insecureSkipTLSVerify || cl.tlsServerName != ""
	server, err := parseServer(r.server, hasTLS)
	if err != nil && r.override {
		return nil, fmt.Errorf("-apiserver: %w", err)
	}
	if err != nil {
		return nil, fieldError(cl.file, cEntry, "server", err)
	}
	r.server = server.String() // what an exec plugin is told
	c := &Config{
		Server: server,
		Source: fmt.Sprintf("%s context %q", r.desc, r.context),
	}
	if cl.proxyURL != "" {
		if c.Proxy, err = parseProxy(cl.proxyURL); err != nil {
			return nil, fieldError(cl.file, cEntry, "proxy-url", err)
		}
	}

	certs, err := u.keyPair(uEntry)
	if err != nil {
		return nil, err
	}
	auth, ex, err := u.authenticator(uEntry, certs != nil, r)
	if err != nil {
		return nil, err
	}
	c.Auth = auth
	if _, none := auth.(noAuth); server.Scheme != "https" && !none {
		// As client-go: a user's credentials go over TLS only, never
		// in clear to an http:// server.
		c.Auth = noAuth{}
		c.Source += fmt.Sprintf(" (without %s's credentials: not sent over http)", uEntry)
	}
	if server.Scheme == "https" {
		tc, err := tlsConfig(r.ca, cl.insecureSkipTLSVerify, cl.tlsServerName)
		if err != nil {
			return nil, fieldError(cl.file, cEntry, caField(cl), err)
		}
		c.certSent = new(atomic.Bool)
		switch {
		case certs != nil:
			tc.GetClientCertificate = getClientCertificate(certs.cert, c.certSent)
		case ex != nil:
			tc.GetClientCertificate = getClientCertificate(ex.cert, c.certSent)
		}
		c.TLS = tc
	}
	return c, nil
}

func caField(cl *cluster) string {
	if cl.certificateAuthority != "" {
		return "certificate-authority"
	}
	return "certificate-authority-data"
}

// parseServer parses a server URL. It accepts a bare host:port, taken as
// https when TLS settings are present (kubectl takes http, which then
// fails against the TLS server those settings are for), else http.
func parseServer(s string, defaultTLS bool) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		scheme := "http://"
		if defaultTLS {
			scheme = "https://"
		}
		s = scheme + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %w", unwrapURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no host in URL")
	}
	if u.User != nil {
		return nil, errors.New("user information in the URL is not supported; use a user's username and password")
	}
	return u, nil
}

// unwrapURLError drops the *url.Error wrapper, whose text quotes the URL,
// which may carry a password.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseProxy parses a cluster's proxy-url.
func parseProxy(s string) (func(*http.Request) (*url.URL, error), error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %w", unwrapURLError(err))
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("scheme %q is not http, https or socks5", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no host in URL")
	}
	return http.ProxyURL(u), nil
}

// bareServer is -apiserver alone: no credentials, system roots.
func bareServer(s string) (*Config, error) {
	u, err := parseServer(s, false)
	if err != nil {
		return nil, fmt.Errorf("-apiserver: %w", err)
	}
	c := &Config{Server: u, Auth: noAuth{}, Source: "-apiserver " + u.Redacted()}
	if u.Scheme == "https" {
		c.TLS, _ = tlsConfig(nil, false, "")
	}
	return c, nil
}

// inCluster uses the pod's service account.
func inCluster(host, port, dir string) (*Config, error) {
	if port == "" {
		return nil, errors.New("in-cluster: KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is not")
	}
	u := &url.URL{Scheme: "https", Host: net.JoinHostPort(host, port)}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("in-cluster: ca.crt: %w", err)
	}
	tc, err := tlsConfig(ca, false, "")
	if err != nil {
		return nil, fmt.Errorf("in-cluster: ca.crt %s: %w", filepath.Join(dir, "ca.crt"), err)
	}
	tok := newFileToken("in-cluster: token", filepath.Join(dir, "token"))
	if _, err := tok.get(); err != nil {
		return nil, err
	}
	return &Config{Server: u, TLS: tc, Auth: tok, Source: "in-cluster " + u.String()}, nil
}
