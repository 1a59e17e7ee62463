package e2e

import (
	"net"
	"sync"
	"testing"
)

// blackholeProxy is a TCP proxy that can black-hole the connections it
// holds (stop forwarding in both directions, closing nothing) while it
// forwards the connections it accepts afterwards normally: a stale NAT
// entry or a dead path, which only the client's own liveness checks can
// notice. controlplane.Proxy black-holes new connections too, so a client
// could never recover through it.
type blackholeProxy struct {
	addr   string // 127.0.0.1:PORT
	target string
	ln     net.Listener

	mu       sync.Mutex
	pairs    map[*pair]struct{} // forwarding
	holed    []*pair            // black-holed, closed only by close
	accepted int                // connections accepted so far
	closed   bool
}

// pair is one proxied connection: the client side and the upstream side.
type pair struct {
	client, up net.Conn
	dead       chan struct{} // closed when black-holed
}

func newBlackholeProxy(t *testing.T, target string) *blackholeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{addr: ln.Addr().String(), target: target, ln: ln, pairs: make(map[*pair]struct{})}
	t.Cleanup(p.close)
	go p.accept()
	return p
}

func (p *blackholeProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *blackholeProxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	pr := &pair{client: c, up: up, dead: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.pairs[pr] = struct{}{}
	p.accepted++
	p.mu.Unlock()
	go p.pipe(pr, up, c)
	p.pipe(pr, c, up)
}

// pipe copies src to dst until either fails; once the pair is black-holed
// it stops reading and writing and leaves both open.
func (p *blackholeProxy) pipe(pr *pair, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-pr.dead:
			return // held open until the proxy closes
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			p.mu.Lock()
			delete(p.pairs, pr)
			p.mu.Unlock()
			pr.client.Close()
			pr.up.Close()
			return
		}
	}
}

// blackholeExisting black-holes every open connection; later ones are
// forwarded. It returns how many it black-holed.
func (p *blackholeProxy) blackholeExisting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for pr := range p.pairs {
		close(pr.dead)
		delete(p.pairs, pr)
		n++
		// Keep them reachable for close, in a set of their own.
		p.holed = append(p.holed, pr)
	}
	return n
}

// connections returns how many connections the proxy accepted so far.
func (p *blackholeProxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *blackholeProxy) close() {
	p.mu.Lock()
	p.closed = true
	all := p.holed
	for pr := range p.pairs {
		all = append(all, pr)
	}
	p.mu.Unlock()
	p.ln.Close()
	for _, pr := range all {
		pr.client.Close()
		pr.up.Close()
	}
}
