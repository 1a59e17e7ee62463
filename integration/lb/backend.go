package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Backend is a server playing a node port or a pod: it answers every HTTP
// request, or every TCP connection, with its name and a newline, so that
// whoever reaches it through a load balancer knows where it landed.
type Backend struct {
	Name string // e.g. "web@node-a"
	Addr string // host:port it listens on

	ln   net.Listener
	srv  *http.Server // nil for TCP
	wg   sync.WaitGroup
	once sync.Once
}

// SeenHostHeader is the response header in which an HTTP backend echoes
// the Host header it received.
const SeenHostHeader = "X-Backend-Saw-Host"

// ServeHTTP starts an HTTP backend on addr, closed in t's cleanup.
func ServeHTTP(t testing.TB, name, addr string) *Backend {
	t.Helper()
	b := listen(t, name, addr)
	b.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(SeenHostHeader, r.Host)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, name+"\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
		// Health checks connect and hang up without a request.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	b.wg.Go(func() { b.srv.Serve(b.ln) })
	return b
}

// ServeTCP starts a TCP backend on addr that writes its name and a newline
// to every connection, then closes it. It is closed in t's cleanup.
func ServeTCP(t testing.TB, name, addr string) *Backend {
	t.Helper()
	b := listen(t, name, addr)
	b.wg.Go(func() {
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, name+"\n")
			c.Close()
		}
	})
	return b
}

func listen(t testing.TB, name, addr string) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("backend %s: %v", name, err)
	}
	b := &Backend{Name: name, Addr: addr, ln: ln}
	t.Cleanup(b.Close)
	return b
}

// Close stops the backend; calling it again does nothing.
func (b *Backend) Close() {
	b.once.Do(func() {
		if b.srv != nil {
			b.srv.Close()
		} else {
			b.ln.Close()
		}
		b.wg.Wait()
	})
}

// client sends every request on a new connection: a load balancer that
// reloaded serves new connections with its new configuration, while its
// old processes may keep the idle ones.
var client = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	Timeout:   10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// Response is what an HTTP request through a load balancer got.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Get sends GET http://addr/ with Host host on a new connection.
func Get(ctx context.Context, addr, host string) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return nil, err
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET http://%s/ (Host %s): read body: %w", addr, host, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}, nil
}

// ReadTCP connects to addr and returns the first line it is sent,
// without its newline.
func ReadTCP(ctx context.Context, addr string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && line == "" {
			return "", fmt.Errorf("tcp %s: closed without a line", addr)
		}
		return "", fmt.Errorf("tcp %s: %w", addr, err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}
