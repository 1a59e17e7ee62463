package kubeapi

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// blackHole is a TCP proxy that can turn into a black hole: the peer
// vanishes without FIN or RST. The kernel still ACKs everything (TCP
// keepalives too), so only liveness checks in the client can notice.
type blackHole struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu       sync.Mutex
	pairs    []*proxyPair
	swallow  int // the next so many connections are black holes from the start
	closedBy int // black-holed connections the client closed
	wg       sync.WaitGroup
	conns    []net.Conn
}

type proxyPair struct {
	frozen atomic.Bool
}

// newBlackHole starts a proxy to target whose first swallow connections
// are black holes from the start.
func newBlackHole(t *testing.T, target string, swallow int) *blackHole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackHole{t: t, ln: ln, target: target, swallow: swallow}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *blackHole) addr() string { return p.ln.Addr().String() }

func (p *blackHole) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// freeze turns every open connection into a black hole.
func (p *blackHole) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pp := range p.pairs {
		pp.frozen.Store(true)
	}
}

func (p *blackHole) closedByClient() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closedBy
}

func (p *blackHole) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		pp := &proxyPair{}
		p.mu.Lock()
		p.conns = append(p.conns, client)
		swallow := p.swallow > 0
		if swallow {
			p.swallow--
			pp.frozen.Store(true)
		}
		p.pairs = append(p.pairs, pp)
		p.mu.Unlock()
		var server net.Conn
		if !swallow {
			server, err = net.Dial("tcp", p.target)
			if err != nil {
				client.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, server)
			p.mu.Unlock()
			p.wg.Add(1)
			go p.pipe(pp, client, server, false)
		}
		p.wg.Add(1)
		go p.pipe(pp, server, client, true)
	}
}

// pipe copies src to dst until src fails. Once frozen it drops what it
// reads, and a frozen connection is closed only by its client.
func (p *blackHole) pipe(pp *proxyPair, dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pp.frozen.Load() && dst != nil {
			dst.Write(buf[:n])
		}
		if err != nil {
			if !pp.frozen.Load() || fromClient {
				src.Close()
				if dst != nil {
					dst.Close()
				}
			}
			if fromClient && pp.frozen.Load() && !errors.Is(err, net.ErrClosed) {
				p.mu.Lock()
				p.closedBy++
				p.mu.Unlock()
			}
			return
		}
	}
}

// TestDeadConnection: a connection whose peer goes silent is replaced,
// over HTTP/1.1 (idle-read deadline, response header timeout) and HTTP/2
// (pings, TLS handshake timeout). Without liveness checks these watches
// would wait forever: the fake ignores timeoutSeconds.
func TestDeadConnection(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h2    bool
		fresh bool // the first connection is a black hole from the start
	}{
		{name: "http1 mid-stream"},
		{name: "http2 mid-stream", h2: true},
		{name: "http1 accepted then silent", fresh: true},
		{name: "http2 accepted then silent", h2: true, fresh: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, tc.h2)
			f.put("services", fakeService("ns", "a", nil))
			swallow := 0
			if tc.fresh {
				swallow = 1
			}
			p := newBlackHole(t, f.srv.Listener.Addr().String(), swallow)
			tm := fastTiming()
			tm.idleRead, tm.idleWatch = 300*time.Millisecond, 300*time.Millisecond
			tm.pingAfter = 300 * time.Millisecond
			tm.pingTimeout = 300 * time.Millisecond
			tm.responseHeader = time.Second
			tm.tlsHandshake = time.Second
			c := newTestCacheAt(t, f, p.addr(), Options{timing: tm})
			waitSynced(t, c)
			if !tc.fresh {
				waitFor(t, "a watch", func() bool { return status(c, ResourceServices).Watching && len(f.requestsFor("services")) >= 2 })
				p.freeze()
			}
			f.put("services", fakeService("ns", "b", nil))
			waitFor(t, "ns/b over a new connection", func() bool { return len(serviceKeys(c)) == 2 })
			waitFor(t, "the client to close the dead connection", func() bool { return p.closedByClient() > 0 })

			wantProto := "HTTP/1.1"
			if tc.h2 {
				wantProto = "HTTP/2.0"
			}
			for _, r := range f.requestsFor("") {
				if r.proto != wantProto {
					t.Errorf("%v over %s, want %s", r, r.proto, wantProto)
				}
			}
		})
	}
}

// TestCancel: once Run returns, no goroutine of the cache or of its
// connections is left.
func TestCancel(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "http1"
		if h2 {
			name = "http2"
		}
		t.Run(name, func(t *testing.T) {
			f := newFakeAPI(t, h2)
			f.put("services", fakeService("ns", "a", nil))
			before := runtime.NumGoroutine()
			c, err := NewCache(f.config("", nil), Options{EndpointSlices: true, timing: fastTiming(), Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			stop := runCache(t, c)
			waitSynced(t, c)
			waitFor(t, "watches", func() bool {
				n := 0
				for _, r := range f.requestsFor("") {
					if r.watch {
						n++
					}
				}
				return n >= 3
			})
			stop() // fails the test if Run does not return or leaves a connection open

			deadline := time.Now().Add(patience)
			for {
				leaked := leakedGoroutines()
				n := runtime.NumGoroutine()
				if len(leaked) == 0 && n <= before {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d goroutines, %d before; left behind:\n%s", n, before, strings.Join(leaked, "\n\n"))
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestCancelWhileConnecting: cancel while requests hang on a black hole.
func TestCancelWhileConnecting(t *testing.T) {
	f := newFakeAPI(t, false)
	p := newBlackHole(t, f.srv.Listener.Addr().String(), 1000)
	c, err := NewCache(f.config(p.addr(), nil), Options{timing: fastTiming(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stop := runCache(t, c)
	waitFor(t, "connections", func() bool { return c.conns.open() >= 2 })
	stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := c.WaitSynced(ctx); err == nil {
		t.Error("WaitSynced succeeded without any list")
	}
}

// TestQuietWatch: a watch that delivers nothing (its selector filters out
// every event) is ended by idleWatch, not by the lists' shorter idleRead:
// the API server's bookmarks come a minute apart, and a watch cut before
// its bookmark keeps a resourceVersion the server forgets after 75 s,
// which makes the next watch a whole list. Over HTTP/1.x a dead
// connection looks so; over HTTP/2 too, whose pings the server answers
// here, as a proxy in front of a server that hangs would.
func TestQuietWatch(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "http2"}[h2], func(t *testing.T) { testQuietWatch(t, h2) })
	}
}

func testQuietWatch(t *testing.T, h2 bool) {
	f := newFakeAPI(t, h2)
	f.put("services", fakeService("ns", "a", nil))
	tm := fastTiming()
	tm.idleRead, tm.idleWatch = 50*time.Millisecond, 800*time.Millisecond
	c := newTestCache(t, f, Options{timing: tm})
	waitSynced(t, c)
	watches := func() (n int, last time.Time) {
		for _, r := range f.requestsFor("services") {
			if r.watch {
				n, last = n+1, r.at
			}
		}
		return n, last
	}
	waitFor(t, "a watch", func() bool { n, _ := watches(); return n >= 1 })
	_, began := watches()
	waitFor(t, "the quiet watch to end and a new one to start", func() bool { n, _ := watches(); return n >= 2 })
	if _, next := watches(); next.Sub(began) < tm.idleWatch {
		t.Errorf("the quiet watch was ended after %v, before idleWatch (%v)", next.Sub(began), tm.idleWatch)
	}
}

// TestIdleWatchesFail: one watch ended by idleWatch without even a
// bookmark is watched again quietly; two in a row are a failure, recorded
// (the status's LastError, which /readyz reads) and warned of, since the
// cache no longer follows the cluster (a proxy answering the pings of a
// server that hangs). A watch that delivers anything ends the run.
func TestIdleWatchesFail(t *testing.T) {
	f := newFakeAPI(t, true)
	f.put("services", fakeService("ns", "a", nil))
	tm := fastTiming()
	tm.idleRead, tm.idleWatch = 50*time.Millisecond, 200*time.Millisecond
	c := newTestCache(t, f, Options{timing: tm})
	waitSynced(t, c)
	waitFor(t, "the second idle watch recorded as a failure", func() bool {
		err := status(c, ResourceServices).LastError
		return err != nil && errors.Is(err, errIdle)
	})
	f.put("services", fakeService("ns", "b", nil))
	waitFor(t, "a watch that delivers an event clears it", func() bool {
		st := status(c, ResourceServices)
		return st.LastError == nil && len(serviceKeys(c)) == 2
	})
}
