package render

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"runtime"
	"sync"
	"unsafe"
)

// The template cache keeps the output of every range body it may reuse:
// as much as the configuration itself (41 MB for the nodes variant of
// `make bench`, a third of kube2lb's live heap, twice that in its peak
// RSS once the collector's headroom is counted). With a spill directory
// (Options.SpillDir), the bodies' outputs go to a file there as an
// execution runs them, and the cache and the Outputs refer to them by
// offset: the kernel's page cache holds them, where it can write them to
// the disk and drop them when memory is short, and the configuration is
// written from a mapping of the file, the kernel copying each byte once, as
// it did from memory with writev(2).
//
// The file is unlinked as soon as it is created: nothing else can open or
// modify it, and its space is freed when kube2lb's last reference to it
// goes (the cache's and every Output's), at exit at the latest. It only
// grows; when it holds twice what the cache still refers to and at least
// spillCompactMin, the cache's outputs are copied into a new one, in the
// order they were in, while the configuration is applied (compactSpill).

// spillCompactMin is the least garbage a spill file holds before it is
// compacted (a variable for tests). Small: the file shares the
// configuration's file system by default, which can be small (a tmpfs);
// with at least as much garbage as live data, compacting costs at most
// the bytes the renders appended.
var spillCompactMin int64 = 1 << 20

// spillFile is an unlinked file holding range bodies' outputs. Its bytes
// are never written again once appended: an Output that refers to them
// reads them at any time, from any goroutine.
type spillFile struct {
	f *os.File

	mu   sync.Mutex // size, buf and err, for appends
	size int64      // appended so far, buffered included
	buf  []byte     // appended, not written yet (flush)
	err  error      // the first write error: nothing is appended after it
}

// spillPattern names spill files, in the spill directory, for the moment
// between their creation and their removal.
const spillPattern = ".kube2lb-cache-*"

// newSpillFile creates a spill file in dir.
func newSpillFile(dir string) (*spillFile, error) {
	f, err := os.CreateTemp(dir, spillPattern)
	if err != nil {
		return nil, fmt.Errorf("create cache file in %s: %w", dir, unnamed(err))
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlink cache file: %w", unnamed(err))
	}
	return &spillFile{f: f}, nil
}

// unnamed is err without a spill file's random name: the same failure,
// at every render, says the same (and is logged once).
func unnamed(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// spillBuf is how much is buffered between the writes of an append.
const spillBuf = 1 << 20

// append adds b at the end of the file and returns where it is. The
// bytes may stay buffered until flush, which must come before anything
// reads them. After a write error, nothing is appended: ok is false.
func (s *spillFile) append(b []byte) (off int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.size > math.MaxInt64-int64(len(b)) {
		return 0, false
	}
	off = s.size
	if len(s.buf)+len(b) > spillBuf && len(s.buf) > 0 {
		s.flushLocked()
		if s.err != nil {
			return 0, false
		}
	}
	if len(b) >= spillBuf {
		if _, err := s.f.WriteAt(b, off); err != nil {
			s.err = err
			return 0, false
		}
	} else {
		if len(s.buf)+len(b) > cap(s.buf) {
			// Grown as needed (a change appends a few KiB), and
			// straight to spillBuf past an eighth of it: the doublings
			// of a first execution's appends were MBs of garbage.
			c := max(4<<10, 2*cap(s.buf), len(s.buf)+len(b))
			if c > spillBuf/8 {
				c = spillBuf
			}
			s.buf = append(make([]byte, 0, c), s.buf...)
		}
		s.buf = append(s.buf, b...)
	}
	s.size += int64(len(b))
	return off, true
}

// flush writes what append buffered and returns the first write error.
func (s *spillFile) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
	return s.err
}

// trim drops the append buffer, once an execution's appends are done: a
// MiB kept for the few appends of the next change would be wasted, and
// allocating it at every flush was a MiB of garbage per MiB written.
func (s *spillFile) trim() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = nil
}

func (s *spillFile) flushLocked() {
	if len(s.buf) == 0 || s.err != nil {
		s.buf = s.buf[:0]
		return
	}
	if _, err := s.f.WriteAt(s.buf, s.size-int64(len(s.buf))); err != nil {
		s.err = err
	}
	s.buf = s.buf[:0]
}

// Size returns how much was appended.
func (s *spillFile) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// control runs fn with the file's descriptor.
func (s *spillFile) control(fn func(fd int)) error {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}

// readAt reads len(p) bytes at off, all of them or an error.
func (s *spillFile) readAt(p []byte, off int64) error {
	n, err := s.f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read cache file: %w", unnamed(err))
}

// spillState is a memoSet's spill file and what it knows of it.
type spillState struct {
	dirMu sync.Mutex
	dir   string // requested by the caller (useSpillDir); "": in memory
	err   error  // the last failure to spill, not reported yet
	gc    bool   // collectOnce

	// Under the memoSet's mu:
	spill   *spillFile // nil: outputs stay in memory
	openDir string     // where spill is
}

// spillLive is what the cache's entries refer to, counted by the sweep.
type spillLive struct {
	cur   int64 // bytes in the current spill file
	other int64 // bytes in files before it (a failure, a new directory)
}

func (l *spillLive) add(st *spillState, e *memoEntry) {
	if e.sp == st.spill {
		l.cur += int64(e.n)
	} else {
		l.other += int64(e.n)
	}
}

// useSpillDir asks for the bodies' outputs to go to a spill file in dir
// from the next execution on ("": in memory).
func (m *memoSet) useSpillDir(dir string) {
	m.spillState.dirMu.Lock()
	defer m.spillState.dirMu.Unlock()
	m.spillState.dir = dir
}

// spillError returns the last error met while spilling since the
// previous call, for the caller to report. The outputs then stay in
// memory until useSpillDir is called again.
func (m *memoSet) spillError() error {
	m.spillState.dirMu.Lock()
	defer m.spillState.dirMu.Unlock()
	err := m.spillState.err
	m.spillState.err = nil
	return err
}

// spillFailed records err and goes back to memory; the caller holds mu.
func (m *memoSet) spillFailed(err error) {
	st := &m.spillState
	st.dirMu.Lock()
	st.err = err
	st.dir = "" // until asked again
	st.dirMu.Unlock()
	st.spill, st.openDir = nil, ""
}

// prepareSpill opens the spill file the caller asked for, if it is not
// open; the caller holds mu.
func (m *memoSet) prepareSpill() {
	st := &m.spillState
	st.dirMu.Lock()
	dir, gc := st.dir, st.gc
	st.gc = false
	st.dirMu.Unlock()
	if dir != st.openDir {
		// Entries spilled into another file keep referring to it,
		// until the next compaction moves them.
		st.spill, st.openDir = nil, ""
	}
	if gc && dir == "" {
		// Memory asked for (PauseSpill: no space left): the pieces
		// are read back now, so that this execution's output holds
		// none of any file, and the collector runs, so that the files
		// no longer referred to (this one, and those a failed write
		// let go) are closed and their space freed before the apply.
		m.unspill()
		runtime.GC()
	}
	if dir == "" || st.spill != nil {
		return
	}
	f, err := newSpillFile(dir)
	if err != nil {
		m.spillFailed(err)
		return
	}
	st.spill, st.openDir = f, dir
}

// collectOnce has the next execution that keeps the pieces in memory take
// back those in files and run the collector (PauseSpill).
func (m *memoSet) collectOnce() {
	m.spillState.dirMu.Lock()
	m.spillState.gc = true
	m.spillState.dirMu.Unlock()
}

// spillNew moves the outputs of the entries an execution ran that are
// still in memory (the spiller leaves nested ones) to the spill file, in
// output order; the caller holds mu. On a write error they stay in
// memory, and so does everything after.
func (m *memoSet) spillNew(segs []segment) {
	g := stager{st: &m.spillState}
	var visit func(e *memoEntry)
	visit = func(e *memoEntry) {
		g.add(e, false)
		for _, s := range e.splices() {
			for _, c := range s.entries {
				visit(c)
			}
		}
	}
	for _, s := range segs {
		if s.e != nil {
			visit(s.e)
		}
	}
	if g.commit(); g.err != nil {
		m.spillFailed(fmt.Errorf("write cache file: %w", unnamed(g.err)))
		return
	}
	m.spillState.spill.trim()
}

// stager appends entries' outputs to the spill file and, once they are
// written, drops them from memory.
type stager struct {
	st     *spillState
	staged []staged
	bytes  int
	err    error // the first failure; nothing is spilled after it
	moved  int

	// free takes back the buffers of the staged outputs that are the
	// spiller's (keep) once they are written: nil, none are.
	free chan []byte
}

// staged is an entry whose output is appended, and whether its buffer
// goes back to free once written.
type staged struct {
	e     *memoEntry
	owned bool
}

// errSpillFull is a spill file that cannot grow (2^63 bytes).
var errSpillFull = errors.New("cache file too large")

// spillStage is how much a stager buffers before it writes.
const spillStage = 1 << 20

// add spills e's own output, if it is in memory and may be. A miss (a
// body of this execution, run by a worker) whose output is in one of
// keep's buffers hands it back once written.
func (g *stager) add(e *memoEntry, miss bool) {
	if g.err != nil || e.sp != nil || !e.cached || e.err() != nil || e.n == 0 || e.n > math.MaxInt32 {
		return
	}
	f := g.st.spill
	off, ok := f.append(e.bytes())
	if !ok {
		if g.commit(); g.err == nil { // commit reports a write error
			g.err = errSpillFull
		}
		return
	}
	e.sp, e.off = f, off
	g.staged = append(g.staged, staged{e, miss && e.pooled && g.free != nil})
	if g.bytes += e.n; g.bytes >= spillStage {
		g.commit()
	}
}

// commit writes what add buffered and drops the outputs written from
// memory; on a write error, they stay there.
func (g *stager) commit() {
	if err := g.st.spill.flush(); err != nil {
		g.err = err
		for _, s := range g.staged {
			s.e.sp, s.e.off = nil, 0
		}
	} else {
		for _, s := range g.staged {
			if s.owned {
				select {
				case g.free <- unsafe.Slice(s.e.out, keepCap(s.e.n))[:0]:
				default:
				}
			}
			s.e.out, s.e.pooled = nil, false
		}
		g.moved += len(g.staged)
	}
	g.staged, g.bytes = g.staged[:0], 0
}

// compactSpill copies the outputs the cache refers to into a new spill
// file, in the order they were in, when the current file holds at least
// twice as much and spillCompactMin more, or when some are in older files
// (left by a failure or another directory); the caller holds mu. Outputs
// already made keep the old files (open while they refer to them). A
// failure is reported and takes the outputs back into memory (unspill),
// until the next render's file works.
func (m *memoSet) compactSpill(live spillLive) {
	st := &m.spillState
	cur := st.spill
	if cur == nil {
		if live.other > 0 {
			m.unspill() // after a failure: memory, until a file works
		}
		return
	}
	size := cur.Size()
	if live.other == 0 && (size-live.cur < spillCompactMin || size < 2*live.cur) {
		return
	}
	var keep []*memoEntry
	for _, e := range m.entries {
		if e.sp != nil {
			keep = append(keep, e)
		}
	}
	// By file, then offset: runs of one file are copied at once.
	sortFunc(keep, func(a, b **memoEntry) int {
		return cmp.Or(cmp.Compare(uintptr(unsafe.Pointer((*a).sp)), uintptr(unsafe.Pointer((*b).sp))), cmp.Compare((*a).off, (*b).off))
	})
	f, err := newSpillFile(st.openDir)
	if err == nil {
		err = copyRuns(f, keep)
	}
	if err != nil {
		if f != nil {
			f.f.Close()
		}
		// The disk is full, or the directory takes no new file: the
		// file would only grow. Memory, until the next render's file
		// works.
		m.spillFailed(fmt.Errorf("compact cache file: %w", unnamed(err)))
		m.unspill()
		return
	}
	st.spill = f
}

// unspill reads the outputs the cache's entries have in spill files back
// into memory, so that no entry refers to a file any more: a file that
// failed (a full disk, one it shares with the configuration) is then
// released with the last Output made from it, its space with it, rather
// than held for as long as one entry lives. The caller holds mu.
func (m *memoSet) unspill() {
	for k, e := range m.entries {
		if e.sp == nil || e.n == 0 {
			continue
		}
		b := make([]byte, e.n)
		if e.sp.readAt(b, e.off) != nil {
			// Unreadable: forgotten, with the runs (that may hold it),
			// so that its body runs again where it is used.
			e.cached = false
			delete(m.entries, k)
			clear(m.runs)
			continue
		}
		e.out, e.sp, e.off, e.pooled = &b[0], nil, 0, false
	}
}

// copyRuns appends the regions of keep, sorted by file and offset, to f
// and points the entries at their copies.
func copyRuns(f *spillFile, keep []*memoEntry) error {
	offs := make([]int64, len(keep))
	buf := make([]byte, spillBuf)
	for i := 0; i < len(keep); {
		// A run of entries of one file, contiguous or overlapping there,
		// copied at once.
		src, start, end := keep[i].sp, keep[i].off, keep[i].off+int64(keep[i].n)
		j := i + 1
		for j < len(keep) && keep[j].sp == src && keep[j].off <= end {
			end = max(end, keep[j].off+int64(keep[j].n))
			j++
		}
		base := f.Size()
		for off := start; off < end; {
			chunk := buf[:min(int64(len(buf)), end-off)]
			if err := src.readAt(chunk, off); err != nil {
				return err
			}
			if _, ok := f.append(chunk); !ok {
				break // flush reports it
			}
			off += int64(len(chunk))
		}
		for k := i; k < j; k++ {
			offs[k] = base + keep[k].off - start
		}
		i = j
	}
	if err := f.flush(); err != nil {
		return err
	}
	f.trim()
	for k, e := range keep {
		e.sp, e.off = f, offs[k]
	}
	return nil
}

// spiller moves the outputs of an execution's top-level bodies to the
// spill file while the execution runs, in output order, as the workers
// complete them: otherwise the first execution, which runs every body,
// holds the whole configuration in memory until its end, and that moment
// set kube2lb's peak RSS. The outputs of nested bodies, which other
// bodies of the execution may read, wait for spillNew at its end.
//
// The outputs of the bodies it spills are copied into buffers it hands
// back once they are written (keep): the first execution of the nodes
// variant of `make bench` made 41 MB of copies that lived for a few
// milliseconds, and what is allocated while the collector marks counts
// as live in that cycle, which set the start-up's heap goal and peak.
type spiller struct {
	m     *memoSet
	order chan spillItem  // every top-level entry, in output order (call)
	done  chan *memoEntry // the misses, as their bodies complete (work)
	end   chan struct{}   // closed when run returns
	g     stager
}

// keepQuantum is what a kept output's capacity is a multiple of, so that
// a buffer handed back fits the outputs of its size and a little more.
const keepQuantum = 512

// keepMax is the largest output kept in a buffer that is handed back;
// larger ones are copied (a frontend of thousands of host rules).
const keepMax = 64 << 10

// keep returns a copy of b and whether it is in one of the spiller's
// buffers (pooled), which goes back to it once b is written: one handed
// back by an earlier commit when it fits, not more than four times too
// large (an output that a failed write leaves in memory keeps it).
func (s *spiller) keep(b []byte) (out []byte, pooled bool) {
	if len(b) == 0 || len(b) > keepMax {
		return bytes.Clone(b), false
	}
	var k []byte
	select {
	case k = <-s.g.free:
	default:
	}
	if c := keepCap(len(b)); cap(k) < len(b) || cap(k) > 4*c {
		k = make([]byte, 0, c)
	}
	return append(k[:0], b...), true
}

// keepCap is the capacity keep gives an output of n bytes, and the least
// one a buffer that held it has.
func keepCap(n int) int {
	return (n + keepQuantum - 1) / keepQuantum * keepQuantum
}

type spillItem struct {
	e    *memoEntry
	miss bool // its body runs in this execution: wait for it
}

func (m *memoSet) startSpiller() *spiller {
	s := &spiller{m: m, order: make(chan spillItem, 1024), done: make(chan *memoEntry, 256), end: make(chan struct{})}
	s.g.st = &m.spillState
	s.g.free = make(chan []byte, 1024)
	go s.run()
	return s
}

// finish waits for the spiller to have handled every entry sent; the
// caller has closed order, after every body completed.
func (s *spiller) finish() {
	<-s.end
	s.m.spilledEarly = s.g.moved
	if s.g.err != nil {
		s.m.spillFailed(fmt.Errorf("write cache file: %w", unnamed(s.g.err)))
	}
}

func (s *spiller) run() {
	defer close(s.end)
	base := make([]spillItem, 0, 64)
	pending := base
	completed := map[*memoEntry]bool{}
	order := s.order
	for {
		for len(pending) > 0 {
			it := pending[0]
			if it.miss {
				if !completed[it.e] {
					break
				}
				delete(completed, it.e)
			}
			// A later occurrence of an entry comes after its miss: the
			// body has run.
			pending = pending[1:]
			s.g.add(it.e, it.miss)
		}
		if len(pending) == 0 {
			pending = base[:0] // not a new array as the window slides
		}
		if order == nil && len(pending) == 0 {
			s.g.commit()
			return
		}
		select {
		case it, ok := <-order:
			if !ok {
				order = nil
				continue
			}
			pending = append(pending, it)
		case e := <-s.done:
			completed[e] = true
		}
	}
}
