package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// maxCaddyError bounds how much of Caddy's error answer is reported, and
// maxCaddyAnswer how much of an answer is read: the warnings that come
// before an error can be long.
const (
	maxCaddyError  = 4 << 10
	maxCaddyAnswer = 1 << 20
)

// caddyNotifier loads the configuration into Caddy 2 through its admin API:
// caddy:ADDRESS. Caddy 2 does not reload on signals.
type caddyNotifier struct {
	spec   string
	host   string // the Host header; "" for a unix socket
	client *http.Client
}

func parseCaddy(spec, arg string) (Notifier, error) {
	const want = "want caddy:HOST:PORT or caddy:unix/PATH, e.g. caddy:127.0.0.1:2019 or caddy:unix//run/caddy/admin.sock"
	var (
		network, address string
		host             string
	)
	switch {
	case arg == "":
		return nil, specError(spec, "missing admin address (%s)", want)
	case strings.HasPrefix(arg, "unix/"):
		// Caddy's own notation for its admin socket: unix/PATH.
		network, address = "unix", strings.TrimPrefix(arg, "unix/")
		if address == "" {
			return nil, specError(spec, "missing socket path (%s)", want)
		}
		// Caddy accepts only an empty Host over a unix socket (2.7 and
		// later also accept 127.0.0.1 and ::1). net/http sends an empty
		// Host header when Request.Host is not a valid host; the address
		// with its slashes is not (https://go.dev/issue/61431). The test
		// TestCaddyUnixSocket guards this.
		host = arg
	case strings.Contains(arg, "://"):
		return nil, specError(spec, "address %q has a scheme (%s)", arg, want)
	default:
		h, port, err := net.SplitHostPort(arg)
		if err != nil || port == "" {
			return nil, specError(spec, "address %q is not HOST:PORT (%s)", arg, want)
		}
		network, address, host = "tcp", arg, arg
		if h == "" {
			// ":2019" dials the local host; Caddy checks Host against
			// its admin address, which by default is localhost:2019.
			host = net.JoinHostPort("localhost", port)
		}
	}
	dialer := &net.Dialer{}
	transport := &http.Transport{
		// The admin API is local: never go through HTTP_PROXY.
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, address)
		},
		// Caddy closes idle connections when it reloads, and
		// notifications are rare: a fresh connection every time.
		DisableKeepAlives: true,
	}
	return &caddyNotifier{
		spec:   spec,
		host:   host,
		client: &http.Client{Transport: transport},
	}, nil
}

// Notify POSTs n.Content to Caddy's /load endpoint as a Caddyfile. Caddy
// answers once the new configuration is live (200), or refuses it (400,
// with a JSON error) and keeps the old one; the error carries Caddy's
// message. Caddy skips a configuration identical to the running one.
func (c *caddyNotifier) Notify(ctx context.Context, n Notification) error {
	// The URL's host only satisfies the client; the transport dials the
	// parsed address and Request.Host sets the header.
	content := n.Content
	if content == nil {
		content = Bytes(nil)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://caddy-admin/load", http.NoBody)
	if err != nil {
		return fmt.Errorf("caddy: %w", err)
	}
	if content.Len() > 0 {
		// The configuration is read from its pieces, not copied into the
		// request (tens of MB for a large cluster, at every attempt).
		req.Body, req.ContentLength = io.NopCloser(content.NewReader()), int64(content.Len())
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(content.NewReader()), nil }
	}
	req.Host = c.host
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("caddy: load: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCaddyAnswer))
	if resp.StatusCode/100 == 2 {
		// Caddy 2.6 writes the adapter's warnings (a JSON array, such as
		// "Caddyfile input is not formatted") before it loads; a load that
		// then fails appends its {"error":...} to the same 200 answer.
		if i := bytes.LastIndex(body, []byte(`{"error":`)); i >= 0 {
			return fmt.Errorf("caddy: load refused after warnings: %s%w", caddyErrorMessage(body[i:]), errRefused)
		}
		return nil
	}
	msg := caddyErrorMessage(body)
	if err != nil {
		msg += fmt.Sprintf(" (reading the answer: %v)", err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		return fmt.Errorf("caddy: load refused: %s: %s", resp.Status, msg)
	}
	// Caddy's answer to a configuration it cannot load.
	return fmt.Errorf("caddy: load refused: %s: %s%w", resp.Status, msg, errRefused)
}

// errRefused, wrapped in a notifier's error (it adds nothing to the
// message), means that the load balancer answered that it cannot load the
// configuration (Caddy's 400): RunWithRetry does not send it again. Caddy
// 2.6 keeps the listeners a refused load opened, on every port, serving
// the old configuration's routes beside the old listeners: each retry made
// more of them.
var errRefused = errors.New("")

func (c *caddyNotifier) String() string { return c.spec }

// caddyErrorMessage extracts the message from Caddy's error answer,
// {"error":"..."}, or returns the trimmed body when it is something else.
func caddyErrorMessage(body []byte) string {
	truncated := len(body) > maxCaddyError
	if truncated {
		body = body[:maxCaddyError]
	}
	s := strings.TrimSpace(string(body))
	// Caddy writes {"error":"..."} with Go's encoder, whose escapes
	// strconv.Unquote reads.
	if obj, ok := strings.CutPrefix(s, "{"); ok && strings.HasSuffix(obj, "}") && !truncated {
		key, v, _ := strings.Cut(obj[:len(obj)-1], ":")
		if msg, err := strconv.Unquote(strings.TrimSpace(v)); err == nil && msg != "" && strings.TrimSpace(key) == `"error"` {
			return msg
		}
	}
	if s == "" {
		return "(empty answer)"
	}
	if truncated {
		s += " ..."
	}
	return s
}
