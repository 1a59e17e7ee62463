package kubeapi

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// decoder reads JSON from a stream, a token at a time: the typed decoders
// (decode_types.go) fill the cache's structs directly from its buffer, and
// skip what they do not keep (metadata.managedFields, status.images...)
// without allocating. Only the token being read is buffered, so a list of
// any size streams through a buffer of a few tens of kilobytes (a string
// longer than the buffer grows it).
//
// It accepts exactly the JSON that encoding/json accepts (RFC 8259, with
// encoding/json's nesting limit) and decodes values as encoding/json does
// (escapes, invalid UTF-8 and lone surrogates replaced by U+FFFD, null
// leaving strings, numbers and structs unchanged and setting pointers,
// maps and slices to nil, a duplicate key decoded into what the earlier
// one left: strings replaced, objects, maps and arrays merged element by
// element), with one difference: object keys match field names exactly, as the API
// server writes them and as Kubernetes' own decoder matches them, where
// encoding/json also accepts other cases ("Metadata").
//
// Errors are sticky: after the first one, d.err is set and every read
// returns zero values, so that the typed decoders check it once per loop.
type decoder struct {
	r    io.Reader
	buf  []byte
	pos  int   // next unread byte of buf
	end  int   // end of the data in buf
	base int64 // stream offset of buf[0]
	rerr error // error of the last Read (io.EOF at the end): no more data
	err  error // first error: decoding stops

	path      []pathElem // where the typed decoders are, for errors
	depthBase int        // len(path) where encoding/json's depth count starts

	// capture, when set, collects the bytes read from capStart on (see
	// startCapture).
	capture  *[]byte
	capStart int

	scratch  []byte             // unescaped strings
	scratchs decodeScratch      // reusable slices, see decodeSlice
	pairs    Pairs              // labels or annotations being read, see stringMap
	interned map[string]string  // see intern
	shared   map[string]string  // see share
	ptrs     map[string]*string // see internPtr

	raw    []byte   // a watch event's object
	subDec *decoder // decodes raw
}

// pathElem is one level of the typed decoders: an object (key is the
// current key) or an array (index is the current element).
type pathElem struct {
	key   []byte
	index int
	array bool
	n     int // fields or elements read so far
}

const (
	bufSize = 32 << 10
	// maxDepth is encoding/json's nesting limit.
	maxDepth = 10000
)

func newDecoder(r io.Reader) *decoder {
	return &decoder{r: r, buf: make([]byte, bufSize)}
}

// newBytesDecoder returns a decoder of b, which it reads in place: no
// buffer of bufSize for a few bytes.
func newBytesDecoder(b []byte) *decoder {
	return &decoder{buf: b, end: len(b), rerr: io.EOF}
}

// decodeError is a decoder's error: it names the path of the value and
// its offset in the stream, e.g. `items[3].spec.ports[0].targetPort: offset 5120: want a
// number or a string, got true`.
type decodeError struct {
	path   string
	offset int64
	msg    string
	err    error // a read error, or io.ErrUnexpectedEOF
}

func (e *decodeError) Error() string {
	msg := e.msg
	if msg == "" {
		msg = e.err.Error()
	}
	s := "offset " + strconv.FormatInt(e.offset, 10) + ": " + msg
	if e.path != "" {
		s = e.path + ": " + s
	}
	return s
}

func (e *decodeError) Unwrap() error { return e.err }

// fail records the first error, at the current offset.
func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = &decodeError{path: d.pathString(), offset: d.offset(), msg: fmt.Sprintf(format, args...)}
	}
}

// failRead records the end of the data in the middle of a value.
func (d *decoder) failRead() {
	if d.err != nil {
		return
	}
	err := d.rerr
	if err == io.EOF || err == nil {
		err = io.ErrUnexpectedEOF
	}
	d.err = &decodeError{path: d.pathString(), offset: d.offset(), err: err}
}

func (d *decoder) offset() int64 { return d.base + int64(d.pos) }

func (d *decoder) pathString() string {
	var b []byte // appended, not built: a cold path (issue 9: the binary's size)
	for _, p := range d.path {
		switch {
		case p.n == 0:
		case p.array:
			b = append(strconv.AppendInt(append(b, '['), int64(p.index), 10), ']')
		default:
			if len(b) > 0 {
				b = append(b, '.')
			}
			b = append(b, p.key...)
		}
	}
	return string(b)
}

// fill reads more data, keeping buf[pos:end] (moved to the start of buf,
// which grows when it is full). It returns false when there is no more
// data: d.rerr says why.
func (d *decoder) fill() bool {
	if d.rerr != nil {
		return false
	}
	if d.capture != nil {
		*d.capture = append(*d.capture, d.buf[d.capStart:d.pos]...)
		d.capStart = 0
	}
	if d.pos > 0 {
		d.end = copy(d.buf, d.buf[d.pos:d.end])
		d.base += int64(d.pos)
		d.pos = 0
	}
	if d.end == len(d.buf) {
		b := make([]byte, 2*len(d.buf))
		copy(b, d.buf[:d.end])
		d.buf = b
	}
	for range 100 {
		n, err := d.r.Read(d.buf[d.end:])
		d.end += n
		if err != nil {
			d.rerr = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	d.rerr = io.ErrNoProgress
	return false
}

// ensure fills the buffer until n bytes from pos are there, and reports
// whether they are.
func (d *decoder) ensure(n int) bool {
	for d.end-d.pos < n {
		if !d.fill() {
			return false
		}
	}
	return true
}

// peek skips white space and returns the next byte, not consuming it. ok
// is false at the end of the data (or after an error).
func (d *decoder) peek() (c byte, ok bool) {
	if d.err != nil {
		return 0, false
	}
	for {
		for d.pos < d.end {
			c = d.buf[d.pos]
			if c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
				return c, true
			}
			d.pos++
		}
		if !d.fill() {
			return 0, false
		}
	}
}

// describe names the value starting with c, for errors.
func describe(c byte) string {
	switch {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || '0' <= c && c <= '9':
		return "a number"
	}
	return "invalid character " + quoteChar(c)
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// next returns the next byte of a value, failing at the end of the data.
func (d *decoder) next() (byte, bool) {
	c, ok := d.peek()
	if !ok {
		d.failRead()
	}
	return c, ok
}

// wrongType fails for a value starting with c where want was expected.
// For an invalid character it is a syntax error.
func (d *decoder) wrongType(c byte, want string) {
	what := describe(c)
	if strings.HasPrefix(what, "invalid") {
		d.fail("%s looking for beginning of value", what)
		return
	}
	d.fail("want %s, got %s", want, what)
}

func (d *decoder) push(array bool) {
	if len(d.path)-d.depthBase >= maxDepth {
		d.fail("exceeded max depth")
		return
	}
	if len(d.path) < cap(d.path) {
		d.path = d.path[:len(d.path)+1]
		p := &d.path[len(d.path)-1]
		p.array, p.n, p.index = array, 0, 0
		p.key = p.key[:0]
		return
	}
	d.path = append(d.path, pathElem{array: array})
}

// object starts reading an object. It returns false for null (nothing to
// read) and on errors; otherwise the fields are read with field until it
// returns false.
func (d *decoder) object() bool { return d.open('{', false, "an object") }

// array starts reading an array: like object, with elem.
func (d *decoder) array() bool { return d.open('[', true, "an array") }

func (d *decoder) open(delim byte, array bool, want string) bool {
	c, ok := d.next()
	switch {
	case !ok:
		return false
	case c == delim:
		d.pos++
		d.push(array)
		return d.err == nil
	case c == 'n':
		d.literal("null")
		return false
	}
	d.wrongType(c, want)
	return false
}

// field reads the next key of the current object and its colon, or the
// end of the object. The key is d.key() until the next read.
func (d *decoder) field() bool {
	if !d.member('}', "object key:value pair") {
		return false
	}
	p := &d.path[len(d.path)-1]
	c, ok := d.next()
	if !ok {
		return false
	}
	if c != '"' {
		d.fail("%s looking for beginning of object key string", describe(c))
		return false
	}
	raw, flags := d.scanString(true)
	if d.err != nil {
		return false
	}
	p.key = append(p.key[:0], d.unquote(raw, flags)...)
	d.pos += len(raw)
	if c, ok = d.next(); !ok {
		return false
	}
	if c != ':' {
		d.fail("%s after object key", describe(c))
		return false
	}
	d.pos++
	return true
}

// key returns the current key of the innermost object.
func (d *decoder) key() []byte { return d.path[len(d.path)-1].key }

// elem reads the comma before the next element of the current array, or
// the end of the array.
func (d *decoder) elem() bool { return d.member(']', "array element") }

// member reads the end of the current object or array (end), or the comma
// before its next member, which follows the previous one (after, for
// errors).
func (d *decoder) member(end byte, after string) bool {
	if d.err != nil {
		return false
	}
	p := &d.path[len(d.path)-1]
	c, ok := d.next()
	if !ok {
		return false
	}
	if c == end {
		d.pos++
		d.path = d.path[:len(d.path)-1]
		return false
	}
	if p.n > 0 {
		if c != ',' {
			d.fail("%s after %s", describe(c), after)
			return false
		}
		d.pos++
		if p.array {
			p.index++
		}
	}
	p.n++
	return true
}

// skip skips one value of any type, checking its syntax, without
// keeping it.
func (d *decoder) skip() {
	// stack holds the closing byte of each open container.
	var stackBuf [64]byte
	stack := stackBuf[:0]
	for {
		c, ok := d.next()
		if !ok {
			return
		}
		switch {
		case c == '{' || c == '[':
			if len(d.path)-d.depthBase+len(stack) >= maxDepth {
				d.fail("exceeded max depth")
				return
			}
			d.pos++
			close := byte('}')
			if c == '[' {
				close = ']'
			}
			stack = append(stack, close)
			if c, ok = d.next(); !ok {
				return
			}
			if c == close {
				d.pos++
				stack = stack[:len(stack)-1]
				break
			}
			if close == '}' && !d.skipKey(c) {
				return
			}
			continue
		case c == '"':
			raw, _ := d.scanString(false)
			d.pos += len(raw)
		case c == 't':
			d.literal("true")
		case c == 'f':
			d.literal("false")
		case c == 'n':
			d.literal("null")
		case c == '-' || '0' <= c && c <= '9':
			d.pos += len(d.scanNumber())
		default:
			d.fail("%s looking for beginning of value", describe(c))
		}
		// After a value: close containers, or a comma and the next one.
		for {
			if d.err != nil || len(stack) == 0 {
				return
			}
			if c, ok = d.next(); !ok {
				return
			}
			close := stack[len(stack)-1]
			if c == close {
				d.pos++
				stack = stack[:len(stack)-1]
				continue
			}
			if c != ',' {
				if close == '}' {
					d.fail("%s after object key:value pair", describe(c))
				} else {
					d.fail("%s after array element", describe(c))
				}
				return
			}
			d.pos++
			if close == '}' {
				if c, ok = d.next(); !ok || !d.skipKey(c) {
					return
				}
			}
			break
		}
	}
}

// skipKey skips an object key (starting with c, unconsumed) and its colon.
func (d *decoder) skipKey(c byte) bool {
	if c != '"' {
		d.fail("%s looking for beginning of object key string", describe(c))
		return false
	}
	raw, _ := d.scanString(false)
	if d.err != nil {
		return false
	}
	d.pos += len(raw)
	c, ok := d.next()
	if !ok {
		return false
	}
	if c != ':' {
		d.fail("%s after object key", describe(c))
		return false
	}
	d.pos++
	return true
}

// startCapture starts collecting the bytes read, from pos on, into *b;
// endCapture stops and returns them.
func (d *decoder) startCapture(b *[]byte) {
	d.capture, d.capStart = b, d.pos
}

func (d *decoder) endCapture() []byte {
	b := d.capture
	*b = append(*b, d.buf[d.capStart:d.pos]...)
	d.capture = nil
	return *b
}
