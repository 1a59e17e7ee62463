// Package kubeconfig turns kube2lb's connection flags and environment into
// what the API client needs: the server URL, a TLS configuration and a
// credential source that refreshes itself. It reads kubeconfig files (YAML
// or JSON) with its own small YAML reader, in-cluster service-account
// credentials, or a bare -apiserver URL, using the standard library only.
//
// Load documents where it looks, in which order. Kubeconfig files are read
// the way kubectl reads them: the KUBECONFIG list is merged, relative paths
// resolve against the file that names them, and client certificates and
// keys may be RSA, ECDSA or Ed25519 in PKCS#1, SEC 1 or PKCS#8 form. Users
// authenticate with a client certificate, a token, a token file, a username
// and password, or an exec credential plugin (client.authentication.k8s.io
// v1 or v1beta1); the removed auth-provider plugins are refused. The YAML
// reader knows the subset that kubectl, kind, k3s, minikube and the cloud
// tools write, and refuses the rest (anchors, aliases, tags, several
// documents) with the file, line and column rather than guess.
//
// Credentials stay fresh: token files, including the in-cluster one, are
// read again every minute and after Authenticator.Refresh; certificate files
// are read again when they change; an exec plugin runs again when its
// credential expires or after Refresh. A certificate goes with a
// connection's handshake: after a 401, the caller closes the connections
// it holds (Config.CertificateAuth). No error or String method shows a
// token, key or password.
package kubeconfig

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"sync/atomic"
)

// Config is a resolved connection to one API server.
type Config struct {
	// Server is the API server's base URL (scheme, host, optional path prefix).
	Server *url.URL

	// TLS is the client TLS configuration for https servers: roots, server
	// name, client certificates (through GetClientCertificate, so that
	// rotated certificate files and exec-plugin certificates are picked up).
	// Nil for http:// servers.
	TLS *tls.Config

	// Proxy selects the proxy for a request (http, https or socks5 from
	// proxy-url), or nil: the caches then take the environment's
	// (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), as client-go does.
	Proxy func(*http.Request) (*url.URL, error)

	// Auth adds credentials to requests. Never nil: a Config without
	// credentials has an Authenticator that does nothing.
	Auth Authenticator

	// Source says where this configuration came from, for logs, e.g.
	// `kubeconfig /etc/kube2lb/kubeconfig context "lb"` or `in-cluster`.
	// It never holds a secret.
	Source string

	certSent *atomic.Bool // set by Load: see CertificateAuth
}

// CertificateAuth reports whether the last handshake sent a client
// certificate (from files, data or an exec plugin). A certificate goes
// with a connection's handshake: after a 401, the connections already open
// keep the one refused until they are closed. A Config not made by Load
// reports whether it has a source of certificates.
func (c *Config) CertificateAuth() bool {
	if c.certSent != nil {
		return c.certSent.Load()
	}
	return c.TLS != nil && c.TLS.GetClientCertificate != nil
}

// Authenticator adds credentials to API requests.
type Authenticator interface {
	// Authorize sets the request's credentials (the Authorization header),
	// reading token files or running an exec plugin when its cached
	// credential is missing, stale or expired. It never logs a secret, and
	// its errors never contain one.
	Authorize(req *http.Request) error

	// Refresh is called after the server answered 401 to failed (nil:
	// unknown): cached credentials are dropped so that the next Authorize
	// reads token files again or runs the exec plugin again. An exec
	// plugin's token fetched since failed was sent is kept: the watches
	// refused at once (an expired token) run the plugin once, not once
	// each, as client-go does.
	Refresh(failed *http.Request)
}
