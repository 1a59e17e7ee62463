package kubeconfig

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// tokenFileMaxAge is how long a token read from a file is used before the
// file is read again. Bound service-account tokens rotate hourly and kubelet
// refreshes them well before they expire.
const tokenFileMaxAge = time.Minute

// authenticator chooses how a user authenticates, with kubectl's
// precedence: tokenFile, then token, then username/password, then the exec
// plugin, which is ignored when any of those or a client certificate is set.
// It also returns the exec authenticator, which may provide a client
// certificate.
func (u *user) authenticator(entry string, hasCert bool, r *resolved) (Authenticator, *execAuth, error) {
	what := fmt.Sprintf("kubeconfig %s: %s", u.file, entry)
	hasToken := u.token != "" || u.tokenFile != ""
	hasBasic := u.username != "" || u.password != ""
	switch {
	case u.impersonate != "":
		// Ignored, kube2lb would act as the user itself, with other
		// rights than the ones meant.
		return nil, nil, fieldError(u.file, entry, u.impersonate, errors.New("impersonation is not supported: give kube2lb the identity it is to act as"))
	case u.authProvider != "":
		return nil, nil, fieldError(u.file, entry, "auth-provider",
			fmt.Errorf("auth-provider %q is not supported; use an exec credential plugin instead, e.g. gke-gcloud-auth-plugin for gcp or kubelogin for azure and oidc", u.authProvider))
	case hasToken && hasBasic:
		return nil, nil, fieldError(u.file, entry, "username", errors.New("a token is set too; use either a token or a username and password"))
	case u.tokenFile != "":
		t := newFileToken(what+": tokenFile", u.tokenFile)
		if _, err := t.get(); err != nil {
			return nil, nil, err
		}
		return t, nil, nil
	case u.token != "":
		if err := checkToken(u.token); err != nil {
			return nil, nil, fieldError(u.file, entry, "token", err)
		}
		return staticToken(u.token), nil, nil
	case hasBasic:
		if err := checkToken(u.username + u.password); err != nil {
			return nil, nil, fieldError(u.file, entry, "username", err)
		}
		return basicAuth{u.username, u.password}, nil, nil
	case u.exec != nil && !hasCert:
		ex, err := newExecAuth(what+": exec", u.exec, r)
		if err != nil {
			return nil, nil, err
		}
		return ex, ex, nil
	}
	return noAuth{}, nil, nil
}

// checkToken refuses credentials that cannot go into an HTTP header.
// The error does not show the credential.
func checkToken(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return fmt.Errorf("contains a control character at byte %d", i)
		}
	}
	return nil
}

// noAuth sends no credentials.
type noAuth struct{}

func (noAuth) Authorize(*http.Request) error { return nil }
func (noAuth) Refresh(*http.Request)         {}

// staticToken is a bearer token from the kubeconfig.
type staticToken string

func (t staticToken) Authorize(req *http.Request) error {
	req.Header.Set("Authorization", "Bearer "+string(t))
	return nil
}
func (staticToken) Refresh(*http.Request) {}

// String keeps the token out of logs that print the Authenticator.
func (staticToken) String() string { return "bearer token" }

// basicAuth is a username and password from the kubeconfig.
type basicAuth struct{ username, password string }

func (b basicAuth) Authorize(req *http.Request) error {
	req.SetBasicAuth(b.username, b.password)
	return nil
}
func (basicAuth) Refresh(*http.Request) {}

// String keeps the password out of logs that print the Authenticator.
func (b basicAuth) String() string { return "basic auth" }

// GoString keeps the password out of %#v.
func (b basicAuth) GoString() string { return "basic auth" }

// fileToken is a bearer token read from a file, again after tokenFileMaxAge
// and after Refresh.
type fileToken struct {
	what string // for errors: `kubeconfig F: user "u": tokenFile`
	path string
	now  func() time.Time

	mu     sync.Mutex
	token  string
	readAt time.Time
	stale  bool
}

func newFileToken(what, path string) *fileToken {
	return &fileToken{what: what, path: path, now: time.Now}
}

// get returns the token, reading the file when due. If reading fails but a
// token was read before, that one is used (the file may be mid-rotation),
// unless the API server refused it (Refresh): then the error, which names
// the file, says why rather than another 401.
func (f *fileToken) get() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.token != "" && !f.stale && now.Sub(f.readAt) < tokenFileMaxAge && now.Sub(f.readAt) >= 0 {
		return f.token, nil
	}
	tok, err := readToken(f.path)
	switch {
	case err != nil && f.token != "" && f.stale:
		return "", fmt.Errorf("%s: %w (the API server refused the token read before)", f.what, err)
	case err != nil && f.token != "":
		return f.token, nil
	case err != nil:
		return "", fmt.Errorf("%s: %w", f.what, err)
	}
	f.token, f.readAt, f.stale = tok, now, false
	return tok, nil
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	if err := checkToken(tok); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

func (f *fileToken) Authorize(req *http.Request) error {
	tok, err := f.get()
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

func (f *fileToken) Refresh(*http.Request) {
	f.mu.Lock()
	f.stale = true
	f.mu.Unlock()
}

// String keeps the token out of logs that print the Authenticator.
func (f *fileToken) String() string { return "bearer token from " + f.path }

// GoString keeps the token out of %#v.
func (staticToken) GoString() string { return "bearer token" }

// GoString keeps the token out of %#v.
func (f *fileToken) GoString() string { return f.String() }
