package render

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// spilledBytes counts the bytes of o held in spill files.
func spilledBytes(o *Output) int {
	n := 0
	for _, p := range o.pieces {
		if p.f != nil {
			n += p.n
		}
	}
	return n
}

// TestSpill renders a sequence of cluster states with the cache in a
// spill directory and applies each configuration: every file must be
// what text/template writes, most of it must come from the spill file,
// the file must be compacted, nothing may be left in the directory, and
// an Output kept from the start must still read as it did.
func TestSpill(t *testing.T) {
	defer func(c int64, m bool) { spillCompactMin, mapSpill = c, m }(spillCompactMin, mapSpill)
	spillCompactMin = 0 // compact whenever the garbage outweighs the rest
	for _, mapped := range []bool{true, false} {
		mapSpill = mapped
		t.Run(fmt.Sprintf("mapped=%v", mapped), testSpill)
	}
}

func testSpill(t *testing.T) {

	spillDir, destDir := t.TempDir(), t.TempDir()
	opts := testOptions()
	opts.SpillDir = spillDir
	r := newTestRenderer(t, opts)
	tmpl, err := ParseTemplate("../examples/haproxy/haproxy-endpoints.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	m := tmpl.memo
	if m == nil {
		t.Fatal("the example is not executed incrementally")
	}
	t.Cleanup(func() { m.mu.Lock(); m.mu.Unlock() }) // the last sweep
	dest := filepath.Join(destDir, "haproxy.cfg")

	var first *Output
	var firstBytes []byte
	files := map[*spillFile]bool{}
	for i, snap := range append(memoSnapshots(t), memoSnapshots(t)...) {
		res, err := r.Render(tmpl, snap)
		if err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		info, _ := r.Model(snap)
		var want bytes.Buffer
		if err := tmpl.tmpl.Execute(&want, info); err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(context.Background(), dest, res.Output, ""); err != nil {
			t.Fatalf("state %d: Apply: %v", i, err)
		}
		got, err := os.ReadFile(dest)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.String(), string(got)); diff != "" {
			t.Fatalf("state %d: applied file differs (-plain +spilled):\n%s", i, diff)
		}
		if r := res.Output.NewReader(); r != nil {
			var read bytes.Buffer
			if _, err := read.ReadFrom(r); err != nil || read.String() != want.String() {
				t.Fatalf("state %d: NewReader read other bytes (%v)", i, err)
			}
		}
		if i > 0 && want.Len() > 1000 && spilledBytes(res.Output) < want.Len()/2 {
			t.Errorf("state %d: %d of %d bytes in the spill file, want most", i, spilledBytes(res.Output), want.Len())
		}
		if first == nil && want.Len() > 0 {
			first, firstBytes = res.Output, want.Bytes()
		}
		m.mu.Lock() // the sweep is done
		files[m.spillState.spill] = true
		early := m.spilledEarly
		m.mu.Unlock()
		if i == 0 && early == 0 {
			t.Error("the first execution spilled nothing while it ran")
		}
	}
	if err := m.spillError(); err != nil {
		t.Errorf("spill: %v", err)
	}
	if len(files) < 2 {
		t.Errorf("the spill file was never compacted")
	}
	if !bytes.Equal(first.Bytes(), firstBytes) {
		t.Error("the first Output reads other bytes after later renders and compactions")
	}
	left, err := os.ReadDir(spillDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("spill directory holds %d files, want none (unlinked)", len(left))
	}
}

// TestSpillFailure checks that a spill directory that cannot be used, or
// a spill file that cannot be written, costs a warning and nothing else:
// the outputs stay in memory and the configuration is right.
func TestSpillFailure(t *testing.T) {
	var logs bytes.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	opts.SpillDir = filepath.Join(t.TempDir(), "missing")
	r := newTestRenderer(t, opts)
	tmpl, err := ParseTemplate("../examples/haproxy/haproxy-endpoints.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tmpl.memo.mu.Lock(); tmpl.memo.mu.Unlock() })
	snaps := memoSnapshots(t)
	check := func(i int, res *Result) {
		t.Helper()
		info, _ := r.Model(snaps[i])
		var want bytes.Buffer
		if err := tmpl.tmpl.Execute(&want, info); err != nil {
			t.Fatal(err)
		}
		if got := res.Output.String(); got != want.String() {
			t.Fatalf("state %d: output differs from text/template's", i)
		}
	}
	for i := range 3 {
		res, err := r.Render(tmpl, snaps[i])
		if err != nil {
			t.Fatal(err)
		}
		check(i, res)
		if n := spilledBytes(res.Output); n != 0 {
			t.Errorf("state %d: %d bytes spilled into a missing directory", i, n)
		}
	}
	if n := strings.Count(logs.String(), "keeping the template cache in memory"); n != 1 {
		t.Errorf("%d warnings, want 1 while the error is the same:\n%s", n, logs.String())
	}

	// A spill file that fails to write: the outputs stay in memory.
	r.opts.SpillDir = t.TempDir()
	logs.Reset()
	res, err := r.Render(tmpl, snaps[3])
	if err != nil {
		t.Fatal(err)
	}
	check(3, res)
	m := tmpl.memo
	m.mu.Lock()
	f := m.spillState.spill
	m.mu.Unlock()
	if f == nil || spilledBytes(res.Output) == 0 {
		t.Fatal("nothing was spilled into a usable directory")
	}
	// The same file, read-only: what was spilled still reads, appends
	// fail as on a full disk.
	ro, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.f.Fd()))
	if err != nil {
		t.Skipf("cannot reopen the spill file read-only: %v", err)
	}
	t.Cleanup(func() { ro.Close() })
	f.mu.Lock()
	f.f = ro
	f.mu.Unlock()
	for i := 4; i < 7; i++ {
		res, err := r.Render(tmpl, snaps[i])
		if err != nil {
			t.Fatal(err)
		}
		check(i, res)
	}
	if !strings.Contains(logs.String(), "keeping the template cache in memory") {
		t.Errorf("no warning for a spill file that cannot be written:\n%s", logs.String())
	}
}
