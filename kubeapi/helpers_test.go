package kubeapi

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

// patience bounds every wait of the tests: generous, for a loaded
// two-core machine. Tests never assert that something was fast.
const patience = 60 * time.Second

// fastTiming shrinks the waits between retries so that scenarios run
// quickly; the liveness timeouts keep their defaults unless a test sets
// them.
func fastTiming() timing {
	return timing{
		backoffBase: 5 * time.Millisecond,
		backoffMax:  50 * time.Millisecond,
	}
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// runCache starts c.Run and stops it when the test ends, failing the test
// if Run does not return or leaves a connection open.
func runCache(t *testing.T, c *Cache) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(patience):
			t.Fatalf("Run did not return after cancel:\n%s", goroutines())
		}
		if n := c.conns.open(); n != 0 {
			t.Errorf("Run returned with %d connections open", n)
		}
	}
	t.Cleanup(stop)
	return stop
}

// newTestCache returns a running cache of f.
func newTestCache(t *testing.T, f *fakeAPI, opts Options) *Cache {
	t.Helper()
	return newTestCacheAt(t, f, "", opts)
}

func newTestCacheAt(t *testing.T, f *fakeAPI, addr string, opts Options) *Cache {
	t.Helper()
	if opts.timing == (timing{}) {
		opts.timing = fastTiming()
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	c, err := NewCache(f.config(addr, nil), opts)
	if err != nil {
		t.Fatal(err)
	}
	runCache(t, c)
	return c
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func waitSynced(t *testing.T, c *Cache) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
}

// serviceKeys returns namespace/name of the snapshot's services.
func serviceKeys(c *Cache) []string {
	var keys []string
	for _, s := range c.Snapshot().Services {
		keys = append(keys, s.Metadata.Key())
	}
	return keys
}

func status(c *Cache, resource string) ResourceStatus {
	for _, st := range c.Status() {
		if st.Resource == resource {
			return st
		}
	}
	return ResourceStatus{}
}

// goroutines returns a dump of every goroutine.
func goroutines() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// leakedGoroutines returns the stacks of goroutines that belong to a
// cache or to a client connection.
func leakedGoroutines() []string {
	var leaked []string
	for _, g := range strings.Split(goroutines(), "\n\n") {
		if strings.Contains(g, "kubeapi.(*Cache)") ||
			strings.Contains(g, "kubeapi.(*reflector") ||
			strings.Contains(g, "net/http.(*persistConn)") ||
			strings.Contains(g, "net/http.(*http2ClientConn)") ||
			strings.Contains(g, "net/http.(*Transport).dialConn") {
			leaked = append(leaked, g)
		}
	}
	return leaked
}
