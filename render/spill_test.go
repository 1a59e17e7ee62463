package render

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"text/template"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/kube2lb/kube2lb/kubeapi"
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

// spillRenderer returns a Renderer with opts and the HAProxy endpoints
// example, whose last sweep the test waits for.
func spillRenderer(t *testing.T, opts Options) (*Renderer, *Template) {
	t.Helper()
	tmpl, err := ParseTemplate("../examples/haproxy/haproxy-endpoints.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	m := tmpl.memo
	if m == nil {
		t.Fatal("the example is not executed incrementally")
	}
	t.Cleanup(func() { m.mu.Lock(); m.mu.Unlock() }) // the last sweep
	return newTestRenderer(t, opts), tmpl
}

// plainOutput returns what text/template writes for snap.
func plainOutput(t *testing.T, r *Renderer, tmpl *Template, snap kubeapi.Snapshot) string {
	t.Helper()
	info, _ := r.Model(snap)
	var want bytes.Buffer
	if err := tmpl.tmpl.Execute(&want, info); err != nil {
		t.Fatal(err)
	}
	return want.String()
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
	r, tmpl := spillRenderer(t, opts)
	m := tmpl.memo
	dest := filepath.Join(destDir, "haproxy.cfg")

	var first *Output
	var firstBytes []byte
	files := map[*spillFile]bool{}
	for i, snap := range append(memoSnapshots(t), memoSnapshots(t)...) {
		res, err := r.Render(tmpl, snap)
		if err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		want := bytes.NewBufferString(plainOutput(t, r, tmpl, snap))
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
	r, tmpl := spillRenderer(t, opts)
	snaps := memoSnapshots(t)
	check := func(i int, res *Result) {
		t.Helper()
		if res.Output.String() != plainOutput(t, r, tmpl, snaps[i]) {
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
	// Once, although each render's file has its own (random) name.
	if n := strings.Count(logs.String(), "keeping the template cache in memory"); n != 1 {
		t.Errorf("%d warnings for a spill file that cannot be written, want 1:\n%s", n, logs.String())
	}
	// Spilled, then nowhere to spill (a full disk): the outputs in use,
	// all in the file, come back to memory, so that nothing holds the
	// file any more and its space goes back.
	r.opts.SpillDir = t.TempDir()
	for _, dir := range []string{r.opts.SpillDir, filepath.Join(t.TempDir(), "missing")} {
		r.opts.SpillDir = dir
		res, err := r.Render(tmpl, snaps[3])
		if err != nil {
			t.Fatal(err)
		}
		check(3, res)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		if e.sp != nil {
			t.Fatal("an output is still in a cache file with nowhere to spill")
		}
	}
}

// countingWriter counts the writes it gets.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// TestOutputRegionsRead reads a small region followed by a large one: the
// large one must not be read in pieces of the small one's size.
func TestOutputRegionsRead(t *testing.T) {
	f, err := newSpillFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	small, large := []byte("0123456789"), bytes.Repeat([]byte("abcdefgh"), 40000)
	o := &Output{}
	for _, b := range [][]byte{small, large} {
		off, ok := f.append(b)
		if !ok {
			t.Fatal("append failed")
		}
		o.addRegion(f, off+0, len(b))
		o.add([]byte("|")) // regions kept apart
	}
	if err := f.flush(); err != nil {
		t.Fatal(err)
	}
	var w countingWriter
	if _, err := o.WriteTo(&w); err != nil {
		t.Fatal(err)
	}
	if want := string(small) + "|" + string(large) + "|"; w.String() != want {
		t.Fatal("WriteTo wrote other bytes")
	}
	if max := 2 + 2 + len(large)/regionBuf + 1; w.writes > max {
		t.Errorf("%d writes for %d bytes, want at most %d", w.writes, o.Len(), max)
	}
}

// TestSpillUncached renders a template whose elements cannot be keyed
// (a func field): their bodies run at every execution and must not be
// spilled, or the file would grow by the whole output at every render
// without ever being compacted.
func TestSpillUncached(t *testing.T) {
	type item struct {
		N int
		F func()
	}
	type data struct{ Items []item }
	plain, err := template.New("uncached").Parse(`{{ range .Items }}item {{ .N }}` + strings.Repeat("-", 100) + "\n{{ end }}")
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMemoSet(plain, reflect.TypeFor[*data]())
	if err != nil || m == nil {
		t.Fatalf("not memoised: %v", err)
	}
	m.useSpillDir(t.TempDir())
	t.Cleanup(func() { m.mu.Lock(); m.mu.Unlock() })
	d := &data{}
	for i := range 200 {
		d.Items = append(d.Items, item{N: i, F: func() {}})
	}
	var want bytes.Buffer
	if err := plain.Execute(&want, d); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		var got bytes.Buffer
		if err := m.execute(&got, d); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("execution %d: output differs", i)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.spillState.spill; f != nil && f.Size() > 0 {
		t.Errorf("%d bytes spilled for bodies that are never reused", f.Size())
	}
}

// TestSpillCompactionFailure makes a compaction fail (the directory is
// gone): the error is reported, the outputs stay readable where they are,
// and once the directory is back, a compaction moves every output into
// one file.
func TestSpillCompactionFailure(t *testing.T) {
	defer func(c int64) { spillCompactMin = c }(spillCompactMin)
	spillCompactMin = 0
	dir := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.SpillDir = dir
	r, tmpl := spillRenderer(t, opts)
	m := tmpl.memo
	snaps := memoSnapshots(t)
	render := func(i int) {
		t.Helper()
		res, err := r.Render(tmpl, snaps[i%len(snaps)])
		if err != nil {
			t.Fatal(err)
		}
		if res.Output.String() != plainOutput(t, r, tmpl, snaps[i%len(snaps)]) {
			t.Fatalf("render %d: output differs from text/template's", i)
		}
	}
	render(0)
	m.mu.Lock()
	first := m.spillState.spill
	m.mu.Unlock()
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	failed := false
	for i := 1; i < 6; i++ {
		render(i)
		m.mu.Lock()
		if m.spillState.spill == nil {
			// Failed: back in memory, the file let go (a full disk
			// it shares with the configuration gets its space back).
			failed = true
			for _, e := range m.entries {
				if e.sp != nil {
					t.Errorf("render %d: an output is still in a cache file after the compaction failed", i)
					break
				}
			}
		}
		m.mu.Unlock()
	}
	if !failed {
		t.Fatal("no compaction failed while the directory was away")
	}
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	for i := 6; i < 20; i++ {
		render(i)
	}
	m.mu.Lock()
	cur := m.spillState.spill
	m.mu.Unlock()
	if cur == first {
		t.Error("the spill file was never compacted after the directory came back")
	}

	// A file that stops taking writes: the next file is another one, and
	// the outputs left in the old one move to it although it holds no
	// garbage (spillCompactMin is out of reach).
	spillCompactMin = 1 << 40
	render(9) // "big": its outputs are in cur
	m.mu.Lock()
	cur = m.spillState.spill
	m.mu.Unlock()
	ro, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", cur.f.Fd()))
	if err != nil {
		t.Skipf("cannot reopen the spill file read-only: %v", err)
	}
	t.Cleanup(func() { ro.Close() })
	cur.mu.Lock()
	cur.f = ro
	cur.mu.Unlock()
	// "bigger" (one service changed) fails to spill its new outputs; the
	// same again spills them into a new file and reuses the others, left
	// in the failed one.
	for range 3 {
		render(10)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.spillState.spill
	if now == nil || now == cur {
		t.Fatal("spilling did not resume in a new file")
	}
	for _, e := range m.entries {
		if e.sp != nil && e.sp != now {
			t.Fatal("an output is still in the file that failed")
		}
	}
}

// TestSpillerReusesBuffers checks the buffers the spiller hands back
// (keep): the outputs it wrote read back from the file as they were and
// later outputs reuse their buffers; when a write fails after some were
// handed back, the outputs that stay in memory keep their bytes while
// later bodies go on taking buffers. The sizes cross keepQuantum's
// multiples, so that a buffer claimed larger than it is fails under the
// race detector's pointer checks.
func TestSpillerReusesBuffers(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			f, err := newSpillFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer f.f.Close()
			m := &memoSet{}
			m.spillState.spill = f
			s := &spiller{m: m}
			s.g = stager{st: &m.spillState, free: make(chan []byte, 1024)}
			// 3 MB of outputs: several stages (spillStage).
			const n = 2000
			entries := make([]*memoEntry, n)
			want := make([][]byte, n)
			seen := map[*byte]bool{}
			reused := 0
			for i := range n {
				if fail && i == n/2 {
					// Stages were written and their buffers handed
					// back; the next write fails.
					if s.g.moved == 0 || reused == 0 {
						t.Fatalf("%d outputs written, %d buffers reused before the failure", s.g.moved, reused)
					}
					ro, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.f.Fd()))
					if err != nil {
						t.Skipf("cannot reopen the spill file read-only: %v", err)
					}
					defer ro.Close()
					f.mu.Lock()
					f.f = ro
					f.mu.Unlock()
				}
				want[i] = bytes.Repeat([]byte{byte('a' + i%26)}, 600+i*7%1500)
				b, pooled := s.keep(want[i])
				if !pooled {
					t.Fatalf("output %d (%d bytes) not in a pooled buffer", i, len(b))
				}
				if seen[unsafe.SliceData(b)] {
					reused++
				}
				seen[unsafe.SliceData(b)] = true
				entries[i] = &memoEntry{cached: true, pooled: pooled}
				entries[i].setOut(b)
				s.g.add(entries[i], true)
			}
			s.g.commit()
			if fail != (s.g.err != nil) {
				t.Fatalf("spill error %v", s.g.err)
			}
			for i, e := range entries {
				got := e.bytes()
				if e.sp != nil {
					got = make([]byte, e.n)
					if err := e.sp.readAt(got, e.off); err != nil {
						t.Fatal(err)
					}
				} else if !fail {
					t.Fatalf("entry %d not spilled", i)
				}
				if !bytes.Equal(got, want[i]) {
					t.Fatalf("entry %d reads %.20q..., want %.20q...", i, got, want[i])
				}
			}
			if reused == 0 {
				t.Error("no output reused the buffer of one written before it")
			}
		})
	}
}

// TestSpillFileBounded: with the default spillCompactMin, the cache file
// holds at most about twice the configuration and 1 MiB, however
// many renders replaced its pieces; it shares the configuration's file
// system, which can be small.
func TestSpillFileBounded(t *testing.T) {
	opts := testOptions()
	opts.SpillDir = t.TempDir()
	r, tmpl := spillRenderer(t, opts)
	m := tmpl.memo
	snaps := memoSnapshots(t)
	var appended, most int64
	var prev *spillFile
	var prevSize int64
	const documented = 1 << 20 // README: twice the configuration and 1 MiB
	for i := 0; appended < 4*documented; i++ {
		res, err := r.Render(tmpl, snaps[i%len(snaps)])
		if err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		f := m.spillState.spill
		m.mu.Unlock()
		if f == nil {
			t.Fatal("nothing spilled")
		}
		size := f.Size()
		if f == prev {
			appended += size - prevSize
		} else {
			appended += size
		}
		prev, prevSize = f, size
		if limit := 2*int64(res.Output.Len()) + documented + 256<<10; size > limit {
			t.Fatalf("render %d: cache file of %d bytes for a configuration of %d", i, size, res.Output.Len())
		}
		most = max(most, size)
	}
	t.Logf("%d bytes appended, the file %d at most", appended, most)
}

// TestPauseSpill: a paused spill (an apply that found no space) takes
// the cache's pieces back into memory before the execution, so that its
// output refers to no file and the file is let go; resumed, the next
// render writes the pieces it uses to a new file.
func TestPauseSpill(t *testing.T) {
	opts := testOptions()
	opts.SpillDir = t.TempDir()
	r, tmpl := spillRenderer(t, opts)
	snaps := memoSnapshots(t)
	render := func(i int) *Result {
		t.Helper()
		res, err := r.Render(tmpl, snaps[i])
		if err != nil {
			t.Fatal(err)
		}
		if res.Output.String() != plainOutput(t, r, tmpl, snaps[i]) {
			t.Fatalf("state %d: output differs from text/template's", i)
		}
		return res
	}
	inFile := func() (n int) {
		m := tmpl.memo
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, e := range m.entries {
			if e.sp != nil {
				n++
			}
		}
		return n
	}
	if n := spilledBytes(render(0).Output); n == 0 {
		t.Fatal("nothing spilled")
	}
	if !r.PauseSpill(true) || r.PauseSpill(true) {
		t.Error("PauseSpill(true) reports no change the first time, or one the second")
	}
	// The same state (every piece reused) and another.
	for _, i := range []int{0, 1} {
		if n := spilledBytes(render(i).Output); n != 0 {
			t.Errorf("state %d, paused: %d bytes of the output in a cache file", i, n)
		}
		if n := inFile(); n != 0 {
			t.Errorf("state %d, paused: %d entries in a cache file", i, n)
		}
	}
	if !r.PauseSpill(false) {
		t.Error("PauseSpill(false) reports no change")
	}
	if n := spilledBytes(render(0).Output); n == 0 {
		t.Error("resumed: nothing spilled")
	}
	if n := inFile(); n == 0 {
		t.Error("resumed: no entry in a cache file")
	}

	// Without a SpillDir, there is nothing to pause.
	plain, _ := spillRenderer(t, testOptions())
	if plain.PauseSpill(true) {
		t.Error("PauseSpill(true) without a SpillDir reports a change")
	}
}
