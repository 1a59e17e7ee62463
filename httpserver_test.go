package main

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// exchange is what a client sees of one response: the status, the header
// but Date and the framing, the body and its length, and whether the
// connection stayed open after it.
type exchange struct {
	Status string
	Header http.Header
	Length int64 // Content-Length, or the length of a chunked body
	Body   string
	Open   bool
}

// roundTrip sends raw on a new connection to addr and reads one response,
// then sends another request on the same connection to learn whether it
// stayed open.
func roundTrip(t *testing.T, addr, raw string) exchange {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	resp.Header.Del("Date")
	resp.Header.Del("Content-Length")
	ex := exchange{Status: resp.Status, Header: resp.Header, Length: resp.ContentLength, Body: string(body)}
	if resp.ContentLength == -1 && len(resp.TransferEncoding) > 0 {
		ex.Length = int64(len(body))
	}
	if resp.Close {
		return ex
	}
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n")
	if resp, err := http.ReadResponse(br, nil); err == nil {
		resp.Body.Close()
		ex.Open = true
	}
	return ex
}

// TestHTTPServerAsNetHTTP sends the same requests to httpServer and
// httpHandler, and to the net/http Server and ServeMux they replace, and
// wants the same answers.
func TestHTTPServerAsNetHTTP(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0")
	h := td.httpHandler()
	mux := http.NewServeMux()
	for _, p := range []string{"GET /healthz", "GET /readyz", "GET /metrics"} {
		mux.Handle(p, h)
	}
	refLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ref := &http.Server{Handler: mux, ReadHeaderTimeout: httpReadHeaderTimeout}
	go ref.Serve(refLn)
	t.Cleanup(func() { ref.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(ln, h, td.log)
	go srv.serve()
	t.Cleanup(func() { srv.shutdown(time.Second) })

	const host = "Host: x\r\n"
	for _, tc := range []struct{ name, raw string }{
		{"get", "GET /healthz HTTP/1.1\r\n" + host + "\r\n"},
		{"query", "GET /readyz?verbose=1 HTTP/1.1\r\n" + host + "\r\n"},
		{"metrics", "GET /metrics HTTP/1.1\r\n" + host + "User-Agent: Prometheus/3.0\r\nAccept-Encoding: gzip\r\n\r\n"},
		{"head", "HEAD /readyz HTTP/1.1\r\n" + host + "\r\n"},
		{"head metrics", "HEAD /metrics HTTP/1.1\r\n" + host + "\r\n"},
		{"post", "POST /readyz HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc"},
		{"chunked body", "DELETE /healthz HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{"large body", "PUT /healthz HTTP/1.1\r\n" + host + "Content-Length: 300000\r\n\r\n" + strings.Repeat("b", 300000)},
		{"not found", "GET /nope HTTP/1.1\r\n" + host + "\r\n"},
		{"trailing slash", "GET /healthz/ HTTP/1.1\r\n" + host + "\r\n"},
		{"unclean", "GET //healthz HTTP/1.1\r\n" + host + "\r\n"},
		{"dot dot", "GET /x/../metrics?a=b HTTP/1.1\r\n" + host + "\r\n"},
		{"escaped", "GET /heal%74hz HTTP/1.1\r\n" + host + "\r\n"},
		{"absolute form", "GET http://x/healthz HTTP/1.1\r\n" + host + "\r\n"},
		{"absolute form without host", "GET http://x/healthz HTTP/1.1\r\n\r\n"},
		{"connection close", "GET /healthz HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n"},
		{"http/1.0", "GET /healthz HTTP/1.0\r\n\r\n"},
		{"http/1.0 keep-alive", "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{"lf only", "GET /healthz HTTP/1.1\nHost: x\n\n"},
		{"no host", "GET /healthz HTTP/1.1\r\n\r\n"},
		{"empty host", "GET /healthz HTTP/1.1\r\nHost:\r\n\r\n"},
		{"two hosts", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"bad host", "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"lower-case host", "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"},
		{"garbage", "HELLO\r\n\r\n"},
		{"bad version", "GET /healthz HTTP/9.9\r\n" + host + "\r\n"},
		{"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
		{"options star", "OPTIONS * HTTP/1.1\r\n" + host + "\r\n"},
		{"get star", "GET * HTTP/1.1\r\n" + host + "\r\n"},
		{"connect", "CONNECT x:443 HTTP/1.1\r\n" + host + "\r\n"},
		{"connect path", "CONNECT /healthz HTTP/1.1\r\n" + host + "\r\n"},
		{"unknown expect", "GET /healthz HTTP/1.1\r\n" + host + "Expect: magic\r\n\r\n"},
		{"expect continue", "POST /healthz HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"},
		{"unknown transfer encoding", "GET /healthz HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n"},
		{"header too large", "GET /healthz HTTP/1.1\r\n" + host + "X: " + strings.Repeat("a", 1<<20+8192) + "\r\n\r\n"},
		{"pipelined", "GET /readyz HTTP/1.1\r\n" + host + "\r\nGET /healthz HTTP/1.1\r\n" + host + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := roundTrip(t, refLn.Addr().String(), tc.raw)
			got := roundTrip(t, ln.Addr().String(), tc.raw)
			if strings.Contains(tc.name, "metrics") {
				// Ages and counters move between the two requests.
				want.Body, got.Body, want.Length, got.Length = "", "", 0, 0
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("net/http vs httpServer (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHTTPServerShutdown: idle connections are closed at once, a request
// being served is answered first, and nothing is accepted afterwards.
func TestHTTPServerShutdown(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(ln, h, slog.New(slog.DiscardHandler))
	go srv.serve()
	addr := ln.Addr().String()

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if got := roundTrip(t, addr, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"); got.Body != "done" || !got.Open {
		t.Fatalf("before shutdown: %+v", got)
	}
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered

	stopped := make(chan struct{})
	go func() { srv.shutdown(30 * time.Second); close(stopped) }()
	idle.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection: read = %v, want EOF (closed by shutdown)", err)
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("request in flight: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done" || !resp.Close {
		t.Errorf("request in flight: %q, Connection: close %v; want done, true", b, resp.Close)
	}
	<-stopped
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("still accepting after shutdown")
	}
}

// TestHTTPServerLimits checks that connections waiting for a request are
// closed after their timeout, and that past httpMaxConns a new connection
// closes an idle one rather than wait for a file descriptor.
func TestHTTPServerLimits(t *testing.T) {
	newServer := func(timeout, idle time.Duration) (*httpServer, string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := newHTTPServer(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/big" {
				w.Write(make([]byte, 64<<10))
				return
			}
			io.WriteString(w, "ok")
		}), slog.New(slog.DiscardHandler))
		srv.timeout, srv.idle = timeout, idle
		go srv.serve()
		t.Cleanup(func() { srv.shutdown(time.Second) })
		return srv, ln.Addr().String()
	}
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := io.ReadAll(c)
		var ne net.Error
		return !errors.As(err, &ne) || !ne.Timeout() // EOF or a reset: the server closed it; else the deadline passed
	}
	_, addr := newServer(200*time.Millisecond, 400*time.Millisecond)

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if !closedWithin(silent, 20*time.Second) {
		t.Error("a connection that sends nothing is still open")
	}
	kept, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	io.WriteString(kept, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(kept), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	start := time.Now()
	if !closedWithin(kept, 20*time.Second) {
		t.Error("a kept-alive connection is still open")
	} else if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("a kept-alive connection closed after %s, before its idle timeout", d)
	}

	// Past the limit: the silent connections make room for new ones.
	_, addr = newServer(time.Minute, time.Minute)
	var held []net.Conn
	for range httpMaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	if got := roundTrip(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); got.Body != "ok" {
		t.Errorf("past the limit: %+v", got)
	}
	closed := 0
	time.Sleep(200 * time.Millisecond) // for the close to arrive
	for _, c := range held {
		if closedWithin(c, 5*time.Millisecond) {
			closed++
		}
	}
	if closed == 0 {
		t.Errorf("none of %d idle connections closed for a new one", len(held))
	}

	// Busy connections past the limit: one byte of a request each, or
	// requests pipelined and their answers never read. New ones are
	// refused at once, and the busy ones closed after their timeout.
	busy, addr := newServer(300*time.Millisecond, time.Minute)
	dial := func(first string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, first)
		return c
	}
	pinned := []net.Conn{dial(strings.Repeat("GET /big HTTP/1.1\r\nHost: x\r\n\r\n", 2000))}
	for len(pinned) < httpMaxConns {
		pinned = append(pinned, dial("G"))
	}
	time.Sleep(100 * time.Millisecond) // every one reading its request
	extra := dial("G")
	if !closedWithin(extra, 200*time.Millisecond) {
		t.Error("a connection past the limit, every other one busy, is open")
	}
	busy.mu.Lock()
	n := len(busy.conns)
	busy.mu.Unlock()
	if n > httpMaxConns {
		t.Errorf("%d connections held, limit %d", n, httpMaxConns)
	}
	time.Sleep(time.Second) // past the timeouts, before anything is read
	for i, c := range pinned {
		if !closedWithin(c, 20*time.Second) {
			t.Fatalf("busy connection %d is still open", i)
		}
	}
}
