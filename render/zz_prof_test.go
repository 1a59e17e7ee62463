package render

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
)

func TestZZHeapProf(t *testing.T) {
	runtime.MemProfileRate = 512
	snap := sortedLikeCache(withEndpoints(bigSnapshot(10000, 1000), 3))
	tmpl, err := ParseTemplate("../examples/haproxy/haproxy-endpoints.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.SpillDir = t.TempDir()
	r := newTestRenderer(t, opts)
	res, err := r.Render(tmpl, snap)
	res, err = r.Render(tmpl, snap)
	tmpl.memo.mu.Lock()
	tmpl.memo.mu.Unlock()
	runtime.GC()
	f, _ := os.Create("/tmp/heap2.prof")
	pprof.Lookup("heap").WriteTo(f, 0)
	f.Close()
	runtime.KeepAlive(r)
	runtime.KeepAlive(res)
	runtime.KeepAlive(snap)
	runtime.KeepAlive(tmpl)
}
