package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// httpServer is the HTTP/1.x server of -listen. net/http's Server would
// serve the same requests, but linking it adds its HTTP/2 server,
// ServeMux's pattern matching and the TLS server handshake: 0.5 MB of a
// binary that must stay under 9 MB (issue 9), for three GET endpoints on a
// plain TCP port. It answers as a Server with ReadHeaderTimeout and its
// other defaults does (TestHTTPServerAsNetHTTP compares the two): it keeps
// connections alive (HTTP/1.1, or HTTP/1.0 with keep-alive), bounds the
// request header in size and time, checks the Host header, refuses
// unknown expectations and transfer codings, answers "OPTIONS *", discards
// unread request bodies of up to 256 KiB to keep the connection, and
// shuts down gracefully. Two differences no client sees: a response is
// sent whole with its Content-Length, never chunked; and one without a
// Content-Type gets none (net/http would sniff one), so handlers set it.
type httpServer struct {
	ln      net.Listener
	handler http.Handler
	log     *slog.Logger

	// timeout bounds the wait for a request's head and for the client to
	// take an answer (httpReadHeaderTimeout); idle, between kept-alive
	// requests (httpIdleTimeout). Tests shorten them.
	timeout, idle time.Duration

	mu      sync.Mutex
	conns   map[net.Conn]bool // true while a request is being read or served
	closing bool
	done    chan struct{} // closed by shutdown
	wg      sync.WaitGroup
}

// Limits and timeouts: those of a net/http Server with ReadHeaderTimeout
// and its defaults, but for the last two. A Server waits for a kept-alive
// connection's next request without end, and holds any number of
// connections: anyone who can reach -listen could hold all of kube2lb's
// file descriptors, and its applies would fail (review, session 18).
const (
	httpReadHeaderTimeout = 10 * time.Second                  // also for a new connection's first byte, as a Server's
	httpMaxHeaderBytes    = http.DefaultMaxHeaderBytes + 4096 // with net/http's slack for bufio
	httpMaxDiscardBytes   = 256 << 10                         // unread request body discarded to keep a connection
	httpMaxOptionsBody    = 4 << 10                           // body of "OPTIONS *" read
	httpIdleTimeout       = 2 * time.Minute                   // a kept-alive connection waiting for its next request
	httpMaxConns          = 64                                // beyond, a new connection closes an idle one, or is refused
)

func newHTTPServer(ln net.Listener, h http.Handler, log *slog.Logger) *httpServer {
	return &httpServer{ln: ln, handler: h, log: log, timeout: httpReadHeaderTimeout, idle: httpIdleTimeout,
		conns: map[net.Conn]bool{}, done: make(chan struct{})}
}

// serve accepts connections until shutdown.
func (s *httpServer) serve() {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.isClosing() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like pass: retry, as
			// net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("health server: accept failed", "err", err, "retry", delay)
			s.wait(delay)
			continue
		}
		delay = 0
		if !s.track(c, false) {
			c.Close()
			if s.isClosing() {
				return
			}
			continue // past httpMaxConns, every connection busy
		}
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

// wait waits for d, or less when the server shuts down.
func (s *httpServer) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.done:
	}
}

func (s *httpServer) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// track records whether c is serving a request; false when the server is
// shutting down and c must be closed. A new connection past httpMaxConns
// closes an idle one (waiting for its first or next request), or is
// refused when none is: at most httpMaxConns connections are open, each
// for at most httpReadHeaderTimeout without sending a request, and as long
// without reading an answer.
func (s *httpServer) track(c net.Conn, active bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	_, known := s.conns[c]
	if !known && active {
		return false // closed by the limit below, meanwhile
	}
	if !known && len(s.conns) >= httpMaxConns {
		evicted := false
		for old, busy := range s.conns {
			if !busy {
				old.Close() // its serveConn returns and forgets it
				delete(s.conns, old)
				evicted = true
				break
			}
		}
		if !evicted {
			return false // every connection is reading or answering a request
		}
	}
	s.conns[c] = active
	return true
}

// shutdown stops accepting, closes idle connections at once and the
// others once their request is answered, waiting up to timeout for them
// (then closing them too).
func (s *httpServer) shutdown(timeout time.Duration) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	close(s.done)
	s.ln.Close()
	for c, active := range s.conns {
		if !active {
			c.Close()
		}
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	}
}

// serveConn answers the requests of one connection in turn.
func (s *httpServer) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("health server: panic serving a request", "remote", c.RemoteAddr().String(), "panic", v)
		}
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	rec := &headRecorder{r: c}
	lr := &io.LimitedReader{R: rec}
	br := bufio.NewReader(lr)
	bw := bufio.NewWriter(c)
	for first := true; ; first = false {
		// Waiting for the first byte of a request: httpReadHeaderTimeout
		// for a new connection, httpIdleTimeout between requests.
		wait := s.idle
		if first {
			wait = s.timeout
		}
		c.SetReadDeadline(time.Now().Add(wait))
		lr.N = httpMaxHeaderBytes
		if _, err := br.Peek(1); err != nil {
			return
		}
		if !s.track(c, true) {
			return
		}
		c.SetReadDeadline(time.Now().Add(httpReadHeaderTimeout))
		req, hosts, err := rec.readRequest(br)
		if err != nil {
			var ne net.Error
			switch {
			case lr.N == 0:
				writeHTTPError(c, "431 Request Header Fields Too Large")
				s.closeWriteAndWait(c)
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &ne):
				// The client went away or timed out: nothing to answer.
			case strings.HasPrefix(err.Error(), "unsupported transfer encoding"):
				writeHTTPError(c, "501 Not Implemented", "Unsupported transfer encoding")
			default:
				writeHTTPError(c, "400 Bad Request")
			}
			return
		}
		lr.N = 1<<63 - 1
		c.SetReadDeadline(time.Time{})
		if !s.serveRequest(c, bw, req, hosts) || !s.track(c, false) {
			return
		}
	}
}

// serveRequest answers req, whose Host header lines were hosts; false when
// the connection must be closed.
func (s *httpServer) serveRequest(c net.Conn, bw *bufio.Writer, req *http.Request, hosts []string) (keep bool) {
	req.RemoteAddr = c.RemoteAddr().String()
	h2Upgrade := req.Method == "PRI" && len(req.Header) == 0 && req.URL.Path == "*" && req.Proto == "HTTP/2.0"
	switch {
	case req.ProtoMajor != 1 && !h2Upgrade:
		writeHTTPError(c, "505 HTTP Version Not Supported: unsupported protocol version")
		return false
	case req.ProtoAtLeast(1, 1) && len(hosts) == 0 && !h2Upgrade && req.Method != http.MethodConnect:
		writeHTTPError(c, "400 Bad Request: missing required Host header")
		return false
	case len(hosts) == 1 && !validHost(hosts[0]):
		writeHTTPError(c, "400 Bad Request: malformed Host header")
		return false
	}

	w := &bufferedResponse{header: http.Header{}}
	keep = !req.Close && !h2Upgrade
	drained := req.Body == http.NoBody
	expect := req.Header.Get("Expect")
	switch {
	case hasToken(expect, "100-continue") && req.ProtoAtLeast(1, 1) && req.ContentLength != 0:
		// The handler does not read bodies: rather than ask for this one
		// (100 Continue), answer and close, as net/http does.
		s.handler.ServeHTTP(w, req)
		keep = false
	case expect != "" && !hasToken(expect, "100-continue"):
		w.header.Set("Connection", "close")
		w.WriteHeader(http.StatusExpectationFailed)
	case req.RequestURI == "*" && req.Method == http.MethodOptions:
		w.header.Set("Content-Length", "0")
		n, _ := io.CopyN(io.Discard, req.Body, httpMaxOptionsBody+1)
		drained = n <= httpMaxOptionsBody
		keep = keep && drained
	default:
		s.handler.ServeHTTP(w, req)
	}
	// Discard what the handler did not read, so that the next request
	// can be read; close instead when it is large.
	if keep && !drained {
		n, _ := io.CopyN(io.Discard, req.Body, httpMaxDiscardBytes+1)
		drained = n <= httpMaxDiscardBytes
		keep = drained
	}
	req.Body.Close()
	if hasToken(w.header.Get("Connection"), "close") || s.isClosing() {
		keep = false
	}
	// A client that does not read its answers (requests pipelined, never
	// read) would hold the connection for ever.
	c.SetWriteDeadline(time.Now().Add(s.timeout))
	if err := w.writeTo(bw, req, keep); err != nil {
		return false
	}
	if !keep && !drained {
		s.closeWriteAndWait(c)
	}
	return keep
}

// closeWriteAndWait lets the client read the answer before the unread
// rest of its request turns closing the connection into a reset, as
// net/http does.
func (s *httpServer) closeWriteAndWait(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	s.wait(500 * time.Millisecond)
}

// writeHTTPError answers a request that will not be served: status is
// "CODE Text", the body is detail, else status.
func writeHTTPError(c net.Conn, status string, detail ...string) {
	body := status
	if len(detail) > 0 {
		body = detail[0]
	}
	c.SetWriteDeadline(time.Now().Add(httpReadHeaderTimeout))
	fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n%s", status, body)
}

// headRecorder is the connection's reader. http.ReadRequest folds the
// Host header lines into Request.Host; the server needs them to check
// them as net/http's does, so it keeps what a request's head is read from.
type headRecorder struct {
	r   io.Reader
	on  bool
	buf []byte
}

func (h *headRecorder) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if h.on {
		h.buf = append(h.buf, p[:n]...)
	}
	return n, err
}

// readRequest reads a request's head from br, which reads from h, and
// returns the values of its Host header lines with it.
func (h *headRecorder) readRequest(br *bufio.Reader) (*http.Request, []string, error) {
	buffered, _ := br.Peek(br.Buffered())
	h.buf = append(h.buf[:0], buffered...)
	h.on = true
	req, err := http.ReadRequest(br)
	h.on = false
	if err != nil {
		return nil, nil, err
	}
	hosts := hostHeaders(h.buf[:len(h.buf)-br.Buffered()])
	if cap(h.buf) > 64<<10 {
		h.buf = nil
	}
	return req, hosts, nil
}

// hostHeaders returns the values of the Host lines of a request head.
func hostHeaders(head []byte) []string {
	var hosts []string
	lastHost := false
	_, head, _ = bytes.Cut(head, []byte("\n")) // the request line
	for len(head) > 0 {
		var line []byte
		line, head, _ = bytes.Cut(head, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' { // obsolete line folding
			if lastHost {
				hosts[len(hosts)-1] += " " + string(bytes.Trim(line, " \t"))
			}
			continue
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		lastHost = bytes.EqualFold(name, []byte("Host"))
		if lastHost {
			hosts = append(hosts, string(bytes.Trim(value, " \t")))
		}
	}
	return hosts
}

// validHost is golang.org/x/net/http/httpguts.ValidHostHeader, which
// net/http's Server applies: the bytes of a host, a port, an IPv6 address
// and zone.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		b := h[i]
		if !('0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || strings.IndexByte("!$%&'()*+,-.:;=[]_~", b) >= 0) {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated header value v holds
// token, in any case.
func hasToken(v, token string) bool {
	for t := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// bufferedResponse is the http.ResponseWriter of httpServer: the answer is
// kept whole (the largest, /metrics, is a few kilobytes) and sent with its
// Content-Length once the handler returns.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *bufferedResponse) Header() http.Header { return w.header }

func (w *bufferedResponse) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *bufferedResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if !bodyAllowed(w.code) {
		return 0, http.ErrBodyNotAllowed
	}
	return w.body.Write(p)
}

// bodyAllowed reports whether a response with this status may have a body.
func bodyAllowed(code int) bool {
	return (code < 100 || code > 199) && code != http.StatusNoContent && code != http.StatusNotModified
}

// writeTo sends the response to req; keep says whether the connection
// stays open after it.
func (w *bufferedResponse) writeTo(bw *bufio.Writer, req *http.Request, keep bool) error {
	w.WriteHeader(http.StatusOK)
	h := w.header
	if _, ok := h["Date"]; !ok {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	if bodyAllowed(w.code) && h.Get("Content-Length") == "" {
		h.Set("Content-Length", strconv.Itoa(w.body.Len()))
	}
	proto := "HTTP/1.1"
	if !req.ProtoAtLeast(1, 1) {
		proto = "HTTP/1.0"
	}
	h.Del("Connection")
	switch {
	case !keep && proto == "HTTP/1.1":
		h.Set("Connection", "close")
	case keep && proto == "HTTP/1.0":
		h.Set("Connection", "keep-alive")
	}
	text := http.StatusText(w.code)
	if text == "" {
		text = "status code " + strconv.Itoa(w.code)
	}
	fmt.Fprintf(bw, "%s %03d %s\r\n", proto, w.code, text)
	h.Write(bw)
	bw.WriteString("\r\n")
	if req.Method != http.MethodHead && bodyAllowed(w.code) {
		bw.Write(w.body.Bytes())
	}
	return bw.Flush()
}
