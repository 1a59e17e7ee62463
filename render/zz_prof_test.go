package render

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
)

func TestZZProf(t *testing.T) {
	tmplPath := os.Getenv("ZZ_TMPL")
	if tmplPath == "" {
		t.Skip()
	}
	nodes := 1000
	if os.Getenv("ZZ_NODES") != "" {
		nodes = 50
	}
	snap := sortedLikeCache(withEndpoints(bigSnapshot(10000, nodes), 3))
	tmpl, err := ParseTemplate(tmplPath)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.SpillDir = t.TempDir()
	base := liveHeap()
	runtime.MemProfileRate = 512
	r := newTestRenderer(t, opts)
	if _, err := r.Render(tmpl, snap); err != nil {
		t.Fatal(err)
	}
	tmpl.memo.mu.Lock()
	tmpl.memo.mu.Unlock()
	t.Logf("live %.1f MB", float64(liveHeap()-base)/1e6)
	f, _ := os.Create(os.Getenv("ZZ_OUT"))
	pprof.Lookup("heap").WriteTo(f, 0)
	f.Close()
	runtime.KeepAlive(r)
	runtime.KeepAlive(tmpl)
	runtime.KeepAlive(snap)
}
