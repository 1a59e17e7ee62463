package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"time"
)

// serveHTTP serves /healthz, /readyz and /metrics on addr until the
// returned function is called.
func (d *daemon) serveHTTP(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-listen: %w", err)
	}
	srv := newHTTPServer(ln, d.httpHandler(), d.log)
	go srv.serve()
	d.log.Info("serving health and metrics", "listen", ln.Addr().String())
	return func() { srv.shutdown(5 * time.Second) }, nil
}

// httpHandler answers as a ServeMux with the patterns "GET /healthz",
// "GET /readyz" and "GET /metrics" would: GET and HEAD are served, another
// method is 405 with Allow, another path 404, a path that is not clean is
// redirected (307) to its clean form. (ServeMux itself is not used: see
// httpServer.)
func (d *daemon) httpHandler() http.Handler {
	// The loop ticks every second; an apply or a check may hold it for up
	// to -update-timeout.
	stale := max(time.Minute, 3*d.o.updateTimeout)
	routes := map[string]func(w http.ResponseWriter){
		"/healthz": func(w http.ResponseWriter) {
			answer(w, d.metrics.alive(time.Now(), stale))
		},
		"/readyz": func(w http.ResponseWriter) {
			answer(w, d.metrics.ready())
		},
		"/metrics": func(w http.ResponseWriter) {
			// Rendered first: a slow client must not hold the metrics lock,
			// which the run loop takes.
			var buf bytes.Buffer
			d.metrics.write(&buf, time.Now())
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			w.Write(buf.Bytes())
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.RequestURI == "*" {
			if r.ProtoAtLeast(1, 1) {
				w.Header().Set("Connection", "close")
			}
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		// CONNECT requests are not canonicalized.
		if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && cleanPath(p) != p {
			u := &url.URL{Path: cleanPath(p), RawQuery: r.URL.RawQuery}
			http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
			return
		}
		serve, ok := routes[r.URL.Path]
		switch {
		case !ok:
			http.NotFound(w, r)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		default:
			serve(w)
		}
	})
}

// cleanPath is ServeMux's canonical form of a path: rooted, without . or
// .. elements or repeated slashes, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

func answer(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	fmt.Fprintln(w, "ok")
}
