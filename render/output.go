package render

import (
	"bytes"
	"errors"
	"io"
)

// Output is a rendered configuration, held as the pieces the template
// wrote in order: with the incremental execution, the outputs of the
// range bodies the cache keeps, and the literal text between them. A
// change writes the file from the pieces, instead of assembling a copy of
// a configuration of tens of MB in memory at every render (issue 9: the
// copy's allocation, and clearing it, were a fifth of a change's CPU).
// A piece is in memory, or a region of a spill file (spill.go).
//
// The bytes of an Output are never written after the render that made
// it: it can be handed to other goroutines (notifiers) and kept while
// later renders run.
type Output struct {
	pieces []piece
	size   int
}

// piece is bytes in memory (b), or n bytes at off in a spill file (f).
type piece struct {
	b   []byte
	f   *spillFile
	off int64
	n   int
}

func (p piece) len() int {
	if p.f != nil {
		return p.n
	}
	return len(p.b)
}

// NewOutput returns an Output holding b, which the caller must not modify
// afterwards.
func NewOutput(b []byte) *Output {
	o := &Output{}
	o.add(b)
	return o
}

// Chunks of a plain execution's output: from at least minChunk (or the
// size hint, up to maxChunk) doubling up to maxChunk.
const (
	minChunk = 4 << 10
	maxChunk = 1 << 20
)

// chunkWriter collects what a plain execution writes into an Output, in
// chunks that are filled and never moved: unlike a growing buffer, nothing
// is copied again and no memory is cleared twice (a configuration of
// tens of MB is written at start-up).
type chunkWriter struct {
	o   *Output
	cur []byte
}

func newChunkWriter(sizeHint int) *chunkWriter {
	return &chunkWriter{o: &Output{}, cur: make([]byte, 0, min(max(sizeHint+sizeHint/8, minChunk), maxChunk))}
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(c.cur) == cap(c.cur) {
			next := min(2*cap(c.cur), maxChunk)
			c.o.add(c.cur)
			c.cur = make([]byte, 0, next)
		}
		k := copy(c.cur[len(c.cur):cap(c.cur)], p)
		c.cur, p = c.cur[:len(c.cur)+k], p[k:]
	}
	return n, nil
}

// output returns what was written; the writer must not be used after.
func (c *chunkWriter) output() *Output {
	c.o.add(c.cur)
	c.cur = nil
	return c.o
}

// add appends a piece (nothing for an empty one), clipped: an append to
// a piece cannot reach the bytes after it.
func (o *Output) add(p []byte) {
	if len(p) > 0 {
		o.pieces = append(o.pieces, piece{b: p[:len(p):len(p)]})
		o.size += len(p)
	}
}

// addRegion appends n bytes at off in f, as the previous piece when it
// ends where they start: the bodies an execution ran are spilled in
// output order, so that most of a configuration is a few regions.
func (o *Output) addRegion(f *spillFile, off int64, n int) {
	if n <= 0 {
		return
	}
	o.size += n
	if k := len(o.pieces) - 1; k >= 0 && o.pieces[k].f == f && o.pieces[k].off+int64(o.pieces[k].n) == off {
		o.pieces[k].n += n
		return
	}
	o.pieces = append(o.pieces, piece{f: f, off: off, n: n})
}

// Len is the size of the configuration in bytes; 0 for a nil Output.
func (o *Output) Len() int {
	if o == nil {
		return 0
	}
	return o.size
}

// WriteTo writes the configuration to w, piece by piece: give it a
// buffered writer when the pieces are many and w is a file.
func (o *Output) WriteTo(w io.Writer) (int64, error) {
	if o == nil {
		return 0, nil
	}
	var n int64
	var buf []byte // for regions of spill files
	for _, p := range o.pieces {
		if p.f == nil {
			m, err := w.Write(p.b)
			n += int64(m)
			if err != nil {
				return n, err
			}
			continue
		}
		if buf == nil {
			buf = make([]byte, min(o.size, regionBuf)) // not the first region's size: the others may be larger
		}
		for off, end := p.off, p.off+int64(p.n); off < end; {
			chunk := buf[:min(int64(len(buf)), end-off)]
			if err := p.f.readAt(chunk, off); err != nil {
				return n, err
			}
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				return n, err
			}
			off += int64(m)
		}
	}
	return n, nil
}

// regionBuf is the most WriteTo reads of a spill file at once.
const regionBuf = 64 << 10

// NewReader returns a reader of the configuration, piece by piece.
func (o *Output) NewReader() io.Reader {
	if o == nil {
		return &outputReader{}
	}
	return &outputReader{pieces: o.pieces}
}

// outputReader reads an Output's pieces in order; off is how much of the
// first was read.
type outputReader struct {
	pieces []piece
	off    int
}

func (r *outputReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && len(r.pieces) > 0 {
		first := r.pieces[0]
		var k int
		if first.f == nil {
			k = copy(p[n:], first.b[r.off:])
		} else {
			k = min(len(p)-n, first.n-r.off)
			if err := first.f.readAt(p[n:n+k], first.off+int64(r.off)); err != nil {
				return n, err
			}
		}
		n, r.off = n+k, r.off+k
		if r.off == first.len() {
			r.pieces, r.off = r.pieces[1:], 0
		}
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Bytes returns the configuration in one slice: the piece itself when
// there is one in memory, else a new copy. Callers must not modify it.
// It panics when a spill file cannot be read, which only a failing disk
// does: code that must survive that calls WriteTo or readAll.
func (o *Output) Bytes() []byte {
	b, err := o.readAll()
	if err != nil {
		panic("render: " + err.Error())
	}
	return b
}

// readAll returns the configuration in one slice, as Bytes does.
func (o *Output) readAll() ([]byte, error) {
	switch {
	case o == nil || len(o.pieces) == 0:
		return nil, nil
	case len(o.pieces) == 1 && o.pieces[0].f == nil:
		return o.pieces[0].b, nil
	}
	b := bytes.NewBuffer(make([]byte, 0, o.size))
	if _, err := o.WriteTo(b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// String returns the configuration as a string.
func (o *Output) String() string { return string(o.Bytes()) }

// equalTo reports whether r holds exactly the configuration, reading it
// in chunks: a configuration of many megabytes is not held twice.
func (o *Output) equalTo(r io.Reader) (bool, error) {
	c := &comparer{r: r, buf: make([]byte, 64<<10)}
	if _, err := o.WriteTo(c); err != nil {
		if err == errDiffers {
			return false, nil
		}
		return false, err
	}
	// Nothing may follow the configuration.
	if len(c.unread) > 0 {
		return false, nil
	}
	n, err := io.ReadFull(r, c.buf[:1])
	switch {
	case n > 0:
		return false, nil
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return true, nil
	default:
		return false, err
	}
}

// errDiffers stops a comparison at the first difference.
var errDiffers = errors.New("differs")

// comparer is a Writer that compares what is written with what r holds.
type comparer struct {
	r      io.Reader
	buf    []byte
	unread []byte // read from r, not compared yet
}

func (c *comparer) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		if len(c.unread) == 0 {
			n, err := io.ReadFull(c.r, c.buf)
			if n == 0 {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					return done, errDiffers // r is shorter
				}
				return done, err
			}
			if err != nil && err != io.ErrUnexpectedEOF {
				return done, err
			}
			c.unread = c.buf[:n]
		}
		k := min(len(p), len(c.unread))
		if !bytes.Equal(p[:k], c.unread[:k]) {
			return done, errDiffers
		}
		p, c.unread, done = p[k:], c.unread[k:], done+k
	}
	return done, nil
}
