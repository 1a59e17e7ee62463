package kubeapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/kube2lb/kube2lb/kubeconfig"
)

// IPModeProxy is the ipMode of a load-balancer ingress whose traffic
// reaches the nodes from the load balancer's own address (a proxy), as
// kube2lb's load balancers do: kube-proxy must not short-cut the ingress
// IP inside the cluster.
const IPModeProxy = "Proxy"

// maxObjectBody bounds the response body of a single-object request.
const maxObjectBody = 4 << 20

// A Writer makes kube2lb's few writes: the status.loadBalancer of
// Services (and the reads that decide them). It has its own connections,
// with the transport settings and credentials of a Cache (and the same
// refresh after a 401), so that it outlives the Cache restarts of a
// SIGHUP. It is safe for concurrent use.
type Writer struct {
	cfg       *kubeconfig.Config
	transport *http.Transport
	client    *http.Client
	userAgent string
}

// NewWriter returns a Writer for the API server of cfg. userAgent ""
// means "kube2lb". It sends no request.
func NewWriter(cfg *kubeconfig.Config, userAgent string) (*Writer, error) {
	if cfg == nil || cfg.Server == nil {
		return nil, errors.New("kubeapi: no API server")
	}
	if s := cfg.Server.Scheme; s != "https" && s != "http" {
		return nil, fmt.Errorf("kubeapi: API server %q: scheme must be https or http", cfg.Server.Redacted())
	}
	if cfg.Auth == nil {
		return nil, errors.New("kubeapi: no authenticator")
	}
	t := defaultTiming()
	d := &net.Dialer{Timeout: t.dial, KeepAliveConfig: t.keepAlive}
	tr := newTransport(cfg, t, d.DialContext)
	return &Writer{
		cfg:       cfg,
		transport: tr,
		// Every request of a Writer is short: a Timeout does no harm
		// here, unlike on a watch.
		client:    &http.Client{Transport: tr, Timeout: t.responseHeader, CheckRedirect: noRedirect},
		userAgent: cmp.Or(userAgent, "kube2lb"),
	}, nil
}

// Close closes the Writer's idle connections. A Writer can still be used
// after Close; it opens new ones.
func (w *Writer) Close() { w.transport.CloseIdleConnections() }

// GetService reads one Service. A missing one is a *StatusError with
// Code 404.
func (w *Writer) GetService(ctx context.Context, namespace, name string) (*Service, error) {
	op := fmt.Sprintf("get service %s/%s", namespace, name)
	return w.do(ctx, http.MethodGet, servicePath(namespace, name), "", nil, op)
}

// PatchServiceStatus sets status.loadBalancer.ingress of a Service with a
// JSON merge patch of its status subresource, and returns the Service as
// the server stored it. An empty ingress clears the list. A non-empty
// resourceVersion makes the write conditional: when the Service changed
// since that version, nothing is written and the error is a *StatusError
// with Code 409 (Conflict). Patching needs RBAC verb patch on
// services/status.
func (w *Writer) PatchServiceStatus(ctx context.Context, namespace, name, resourceVersion string, ingress []LoadBalancerIngress) (*Service, error) {
	type lbStatus struct {
		// null removes the list in a merge patch.
		Ingress []LoadBalancerIngress `json:"ingress"`
	}
	var patch struct {
		Metadata *struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata,omitempty"`
		Status struct {
			LoadBalancer lbStatus `json:"loadBalancer"`
		} `json:"status"`
	}
	if resourceVersion != "" {
		patch.Metadata = &struct {
			ResourceVersion string `json:"resourceVersion"`
		}{resourceVersion}
	}
	if len(ingress) > 0 {
		patch.Status.LoadBalancer.Ingress = ingress
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	op := fmt.Sprintf("patch services/status %s/%s", namespace, name)
	return w.do(ctx, http.MethodPatch, servicePath(namespace, name)+"/status", "application/merge-patch+json", body, op)
}

func servicePath(namespace, name string) string {
	return "/api/v1/namespaces/" + url.PathEscape(namespace) + "/services/" + url.PathEscape(name)
}

// do sends one request and returns the Service of a 200 answer, decoded
// as the cache decodes one; any other answer is a *StatusError. A 401
// refreshes the credentials and tries once more.
func (w *Writer) do(ctx context.Context, method, path, contentType string, body []byte, op string) (*Service, error) {
	for attempt := 0; ; attempt++ {
		svc, err := w.once(ctx, method, path, contentType, body, op)
		var se *StatusError
		if attempt == 0 && errors.As(err, &se) && se.Code == http.StatusUnauthorized {
			w.cfg.Auth.Refresh(se.req)
			if w.cfg.CertificateAuth() {
				// A new handshake, with the current certificate.
				w.transport.CloseIdleConnections()
			}
			continue
		}
		return svc, err
	}
}

func (w *Writer) once(ctx context.Context, method, path, contentType string, body []byte, op string) (*Service, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.cfg.Server.JoinPath(path).String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", w.userAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if err := w.cfg.Auth.Authorize(req); err != nil {
		return nil, fmt.Errorf("%s: credentials: %w", op, err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return nil, responseError(resp, op)
	}
	svc, err := Decode[*Service](io.LimitReader(resp.Body, maxObjectBody))
	if err != nil {
		return nil, fmt.Errorf("%s: decode: %w", op, err)
	}
	return svc, nil
}
