package kubeapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kube2lb/kube2lb/kubeconfig"
)

// timing holds every timeout and delay of the cache. The zero value of a
// field means its default (see defaultTiming); tests shrink them.
type timing struct {
	dial           time.Duration // TCP connect
	tlsHandshake   time.Duration
	responseHeader time.Duration // request sent → response headers
	keepAlive      net.KeepAliveConfig

	// HTTP/2 liveness: ping after pingAfter without a frame, close the
	// connection when the ping is not answered within pingTimeout.
	pingAfter   time.Duration
	pingTimeout time.Duration

	// idleRead cancels a list whose body delivered no byte for that long;
	// idleWatch a watch: over HTTP/1.x, which has no pings, a dead
	// connection looks so; over HTTP/2, a proxy that answers the pings
	// itself while the API server behind it hangs (an L7 load balancer in
	// front of the API servers). It is longer
	// than the minute between the API server's bookmarks: a watch whose
	// selector filters out the events (ClusterIP Services) must get one,
	// or its resourceVersion falls out of the server's 75 s of history and
	// the next watch lists everything again.
	idleRead, idleWatch time.Duration

	backoffBase  time.Duration // first wait after a failure
	backoffMax   time.Duration
	backoffReset time.Duration // a failure this long after the previous one starts again at backoffBase
	shortWatch   time.Duration // a watch ending this fast without events is a failure
	healthyWatch time.Duration // a watch answered (200) this long ago ends a run of failures
	shutdown     time.Duration // Run's bound on waiting for connections to close
	listAsked    time.Duration // least time between two lists the cache asks for (exposed.go)
}

func defaultTiming() timing {
	return timing{
		dial:           10 * time.Second,
		tlsHandshake:   10 * time.Second,
		responseHeader: 30 * time.Second,
		// A peer that vanished from the network stops ACKing: the kernel
		// gives up after 15 s + 3 × 5 s. A peer whose kernel still ACKs
		// but whose process hangs is caught by pings and the idle-read
		// watchdogs.
		keepAlive:    net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3},
		pingAfter:    30 * time.Second, // client-go's ReadIdleTimeout
		pingTimeout:  15 * time.Second,
		idleRead:     45 * time.Second,
		idleWatch:    90 * time.Second,
		backoffBase:  800 * time.Millisecond,
		backoffMax:   30 * time.Second,
		backoffReset: 2 * time.Minute,
		shortWatch:   time.Second,
		// An API server restarted half a minute after an outage is
		// watched again within a second or two, not after the
		// outage's 30 s: client-go carries the wait over for two
		// minutes. A server that drops watches sooner still backs off.
		healthyWatch: 10 * time.Second,
		shutdown:     15 * time.Second,
		listAsked:    10 * time.Second,
	}
}

// withDefaults fills the zero fields of t from defaultTiming.
func (t timing) withDefaults() timing {
	d := defaultTiming()
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&t.dial, d.dial)
	set(&t.tlsHandshake, d.tlsHandshake)
	set(&t.responseHeader, d.responseHeader)
	if !t.keepAlive.Enable {
		t.keepAlive = d.keepAlive
	}
	set(&t.pingAfter, d.pingAfter)
	set(&t.pingTimeout, d.pingTimeout)
	set(&t.idleRead, d.idleRead)
	set(&t.idleWatch, d.idleWatch)
	set(&t.backoffBase, d.backoffBase)
	set(&t.backoffMax, d.backoffMax)
	set(&t.backoffReset, d.backoffReset)
	set(&t.shortWatch, d.shortWatch)
	set(&t.healthyWatch, d.healthyWatch)
	set(&t.shutdown, d.shutdown)
	set(&t.listAsked, d.listAsked)
	return t
}

// newTransport builds the transport of every request of a cache. It has
// no overall timeout (that would cut watches off); dead connections are
// found by HTTP/2 pings, TCP keepalives and the idle-read watchdogs.
func newTransport(cfg *kubeconfig.Config, t timing, dial func(context.Context, string, string) (net.Conn, error)) *http.Transport {
	proxy := cfg.Proxy
	if proxy == nil {
		// As client-go: without a proxy-url, HTTPS_PROXY, HTTP_PROXY and
		// NO_PROXY (CIDRs included) apply.
		proxy = http.ProxyFromEnvironment
	}
	tr := &http.Transport{
		Proxy:                 proxy,
		DialContext:           dial,
		TLSHandshakeTimeout:   t.tlsHandshake,
		ResponseHeaderTimeout: t.responseHeader,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   10,
		// A custom TLSClientConfig turns HTTP/2 off unless forced.
		ForceAttemptHTTP2: true,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: t.pingAfter,
			PingTimeout:     t.pingTimeout,
		},
	}
	if cfg.TLS != nil {
		tr.TLSClientConfig = cfg.TLS.Clone()
	}
	return tr
}

var errStopped = errors.New("cache stopped")

// connTracker counts the connections of a cache's transport, so that Run
// returns only when all of them are closed.
type connTracker struct {
	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	gen     uint64 // of the connections opened now (closeGeneration)
	stopped bool
	done    chan struct{} // closed when stopped and none is open
}

func newConnTracker() *connTracker {
	return &connTracker{conns: map[*trackedConn]struct{}{}, done: make(chan struct{})}
}

// add wraps c so that its Close is counted; after stop it closes c and
// fails.
func (t *connTracker) add(c net.Conn) (net.Conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		c.Close()
		return nil, errStopped
	}
	tc := &trackedConn{Conn: c, t: t, gen: t.gen}
	t.conns[tc] = struct{}{}
	return tc, nil
}

// release forgets c, once closed (a second Close changes nothing).
func (t *connTracker) release(c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.conns)
	delete(t.conns, c)
	if t.stopped && n == 1 && len(t.conns) == 0 {
		close(t.done)
	}
}

// generation returns the generation of the connections opened now: a
// request sent after it was read goes on a connection of it or older.
func (t *connTracker) generation() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gen
}

// closeGeneration closes the connections of generation g and older, busy
// or idle: their requests fail, and the next ones open new connections, of
// the next generation (the transport's own CloseIdleConnections leaves an
// HTTP/2 connection that carries a watch open). Requests refused at once
// on the old connections close them once: the new ones stay. The
// transport closes each trackedConn in turn, which releases it.
func (t *connTracker) closeGeneration(g uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen == g {
		t.gen++
	}
	for c := range t.conns {
		if c.gen <= g {
			c.Conn.Close()
		}
	}
}

// stop refuses new connections and returns a channel closed once every
// connection is closed.
func (t *connTracker) stop() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		if len(t.conns) == 0 {
			close(t.done)
		}
	}
	return t.done
}

func (t *connTracker) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

type trackedConn struct {
	net.Conn
	t   *connTracker
	gen uint64
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.t.release(c)
	return err
}

// errIdle is the cause of a request cancelled by the idle-read watchdog.
var errIdle = errors.New("no data received: connection presumed dead")

// idleReader cancels its request when a Read has not returned data for d:
// an HTTP/1.1 connection whose peer went silent otherwise blocks forever.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	timer *time.Timer
}

// watchIdle arms a timer that calls cancel(errIdle) when body delivers
// nothing for d. The returned stop function disarms it.
func watchIdle(body io.Reader, d time.Duration, cancel context.CancelCauseFunc) (io.Reader, func() bool) {
	ir := &idleReader{r: body, d: d}
	ir.timer = time.AfterFunc(d, func() { cancel(errIdle) })
	return ir, ir.timer.Stop
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.d)
	}
	return n, err
}

// countingReader adds the bytes it reads to a resource's BytesRead.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(uint64(n))
	return n, err
}

// stream is the body of a response answered with 200.
type stream struct {
	body   io.Reader
	ctx    context.Context
	cancel context.CancelCauseFunc // ends the request with a cause for readErr
	close  func()
}

// open sends a GET for u and returns its body if the answer is 200; any
// other answer becomes a *StatusError. The idle-read watchdog guards the
// body: idleRead when idle is set (a list), else idleWatch.
func (c *Cache) open(ctx context.Context, u *url.URL, op string, st *resourceState, idle bool) (*stream, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if err := c.cfg.Auth.Authorize(req); err != nil {
		cancel(nil)
		return nil, fmt.Errorf("%s: credentials: %w", op, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		cancel(nil)
		if ue, ok := err.(*url.Error); ok {
			// Without the query: a watch's timeoutSeconds is random,
			// and an outage is warned of again only when its error
			// text changes.
			ue.URL, _, _ = strings.Cut(ue.URL, "?")
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		se := responseError(resp, op)
		resp.Body.Close()
		cancel(nil)
		return nil, se
	}
	var body io.Reader = countingReader{r: resp.Body, n: &st.bytesRead}
	d := c.timing.idleWatch
	if idle {
		d = c.timing.idleRead
	}
	body, stopIdle := watchIdle(body, d, cancel)
	return &stream{
		body:   body,
		ctx:    ctx,
		cancel: cancel,
		close: func() {
			stopIdle()
			resp.Body.Close()
			cancel(nil)
		},
	}, nil
}

// readErr returns errIdle or errRelist for a read that failed because
// the watchdog or the cache cancelled the request, and err otherwise.
func (s *stream) readErr(err error) error {
	if c := context.Cause(s.ctx); c == errIdle || c == errRelist {
		return c
	}
	return err
}

// noRedirect makes a client return a redirect as it is, an error of its
// status: the API paths kube2lb asks for never redirect, and net/http
// would follow one with the credentials, to the same host name on any
// port and scheme (plain http too) or to a subdomain.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
