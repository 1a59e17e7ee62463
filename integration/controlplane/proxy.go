package controlplane

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy on 127.0.0.1 that a test puts between a client and
// the API server to break connections the ways networks do. TLS passes
// through it unchanged (the serving certificate is for 127.0.0.1).
type Proxy struct {
	URL string // https://127.0.0.1:PORT, to use instead of ControlPlane.URL

	target string
	ln     net.Listener

	mu     sync.Mutex
	mode   proxyMode
	conns  map[net.Conn]struct{} // both ends of every open connection
	holed  map[net.Conn]bool     // connections black-holed for good
	closed bool
}

type proxyMode int

const (
	forwarding proxyMode = iota
	refusing             // accepted connections are closed at once
	blackholed           // connections stay open, nothing is forwarded
)

// NewProxy starts a proxy to target (host:port) and stops it in t's
// cleanup.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{URL: "https://" + ln.Addr().String(), target: target, ln: ln, conns: make(map[net.Conn]struct{}), holed: make(map[net.Conn]bool)}
	t.Cleanup(p.close)
	go p.accept()
	return p
}

// ProxyTo starts a Proxy to the control plane's API server.
func (cp *ControlPlane) ProxyTo(t testing.TB) *Proxy {
	t.Helper()
	host := cp.URL[len("https://"):]
	return NewProxy(t, host)
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.mode == refusing || p.closed {
		p.mu.Unlock()
		c.Close()
		return
	}
	blackhole := p.mode == blackholed
	p.conns[c] = struct{}{}
	if blackhole {
		p.holed[c] = true
	}
	p.mu.Unlock()
	if blackhole {
		return // held open until Refuse or the cleanup closes it
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	go p.pipe(up, c)
	p.pipe(c, up)
}

// pipe copies from src to dst until either fails, or until the connection
// is black-holed: then it stops reading without closing anything.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			hole := p.holed[src] || p.holed[dst]
			p.mu.Unlock()
			if hole {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if err != io.EOF {
				p.drop(dst)
			}
			p.drop(src)
			p.drop(dst)
			return
		}
	}
}

func (p *Proxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.holed, c)
	p.mu.Unlock()
	c.Close()
}

// closeAll closes every open connection.
func (p *Proxy) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = make(map[net.Conn]struct{})
	p.holed = make(map[net.Conn]bool)
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// Refuse closes every connection through the proxy and closes new ones as
// soon as they are accepted, as an API server that went away would.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	p.mode = refusing
	p.mu.Unlock()
	p.closeAll()
}

// Blackhole stops forwarding on every open connection, in both directions
// and for good, without closing anything, and holds new connections open
// without forwarding until Forward: a network partition, or a load balancer
// in front of the API server that died. Only a client's own liveness checks
// (HTTP/2 pings, timeouts) notice.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	p.mode = blackholed
	for c := range p.conns {
		p.holed[c] = true
	}
	p.mu.Unlock()
}

// Forward makes new connections forward again. Connections black-holed
// before stay as they are: a client must give up on them and reconnect.
func (p *Proxy) Forward() {
	p.mu.Lock()
	p.mode = forwarding
	p.mu.Unlock()
}

// Open returns the number of open connections (client and upstream sides
// counted separately).
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.closeAll()
}
