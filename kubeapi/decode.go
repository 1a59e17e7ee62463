package kubeapi

import (
	"errors"
	"fmt"
	"io"
	"unique"
)

// object is implemented by the pointer types the cache holds, P. The
// generic code of the cache takes these pointer types, never the types
// they point to: pointers share one shape, so each generic function is
// compiled once for the three types, not once per type (issue 9: the
// binary's size).
// (A basic interface: with a type set, such as comparable or *T, the
// compiler would compile each type apart again.)
type object[P any] interface {
	meta() *ObjectMeta
	decode(d *decoder)
	// fresh returns a new zero object; called on a nil P.
	fresh() P
}

func (*Service) fresh() *Service             { return new(Service) }
func (*Node) fresh() *Node                   { return new(Node) }
func (*EndpointSlice) fresh() *EndpointSlice { return new(EndpointSlice) }

// fresh returns a new zero P.
func fresh[P object[P]]() P {
	var zero P
	return zero.fresh()
}

func (s *Service) meta() *ObjectMeta       { return &s.Metadata }
func (n *Node) meta() *ObjectMeta          { return &n.Metadata }
func (s *EndpointSlice) meta() *ObjectMeta { return &s.Metadata }

// listMeta is a list's metadata.
type listMeta struct {
	ResourceVersion string `json:"resourceVersion"`
	Continue        string `json:"continue"`
}

// decodeList reads a list response ({"kind": ..., "metadata": {...},
// "items": [...]}) from r, handing each item to add as soon as it is
// decoded: the body is never held whole, and only the fields of T are
// kept from each item. Keys may come in any order.
func decodeList[P object[P]](r io.Reader, add func(P)) (listMeta, error) {
	return decodeItems(r, func(d *decoder) {
		p := fresh[P]()
		p.decode(d)
		if d.err == nil {
			add(p)
		}
	})
}

// Decode reads one Service, Node or EndpointSlice from r as the cache
// decodes one: only the fields of its type are kept, and the strings
// many objects share are interned. The Writer reads the API server's
// answers with it.
func Decode[P interface {
	*Service | *Node | *EndpointSlice
	object[P]
}](r io.Reader) (P, error) {
	d := newDecoder(r)
	p := fresh[P]()
	p.decode(d)
	return p, d.finish("object")
}

// finish returns the error of a decoding that read one value: its own, or
// what follows the value, or the reader's.
func (d *decoder) finish(what string) error {
	if d.err != nil {
		return d.err
	}
	if _, ok := d.peek(); ok {
		return errors.New("data after the " + what)
	}
	if d.rerr != io.EOF {
		return fmt.Errorf("after the %s: %w", what, d.rerr)
	}
	return nil
}

// decodeItems is decodeList but for the items, which item decodes:
// compiled once rather than once per type (issue 9: the binary's size).
func decodeItems(r io.Reader, item func(*decoder)) (listMeta, error) {
	var lm listMeta
	d := newDecoder(r)
	c, ok := d.peek()
	if !ok {
		d.failRead()
		return lm, d.err
	}
	if c != '{' {
		d.fail("got %s, want {", describe(c))
		return lm, d.err
	}
	d.object()
	for d.field() {
		d.depthBase = len(d.path) // encoding/json counted from each value
		switch string(d.key()) {
		case "metadata":
			d.listMeta(&lm)
		case "items":
			d.depthBase++
			if !d.array() {
				break
			}
			for d.elem() {
				item(d)
				if d.err != nil {
					break
				}
			}
		default:
			d.skip()
		}
	}
	return lm, d.finish("list")
}

func (d *decoder) listMeta(lm *listMeta) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "resourceVersion":
			d.string(&lm.ResourceVersion)
		case "continue":
			d.string(&lm.Continue)
		default:
			d.skip()
		}
	}
}

// Watch event types.
const (
	eventAdded    = "ADDED"
	eventModified = "MODIFIED"
	eventDeleted  = "DELETED"
	eventBookmark = "BOOKMARK"
	eventError    = "ERROR"
)

// event is a decoded watch event.
type event[P any] struct {
	typ    string
	obj    P            // ADDED, MODIFIED, DELETED: the object
	rv     string       // the object's or the bookmark's resourceVersion
	status *StatusError // ERROR: the Status, without Op
}

// decodeEvent reads the next event ({"type": ..., "object": {...}}) of a
// watch stream. It returns io.EOF at the clean end of the stream, and an
// error for an event it cannot use, unknown types included: the stream is
// then out of step. It reads nothing past the event, so that an event is
// handed out as soon as it arrived.
//
// The object is decoded once the whole event is read, since its type
// depends on the event's type, which may come after it.
func decodeEvent[P object[P]](d *decoder) (event[P], error) {
	var ev event[P]
	raw, rawOff, err := d.eventFrame(&ev.typ, &ev.rv, &ev.status)
	if err != nil || raw == nil {
		return ev, err
	}
	od := d.sub(raw, rawOff)
	p := fresh[P]()
	p.decode(od)
	d.interned, d.shared, d.ptrs = od.interned, od.shared, od.ptrs
	if od.err != nil {
		return ev, fmt.Errorf("%s event: %w", ev.typ, od.err)
	}
	ev.obj, ev.rv = p, p.meta().ResourceVersion
	return ev, nil
}

// eventFrame reads an event but for its object, which it returns for
// ADDED, MODIFIED and DELETED (nil for the others): the part of
// decodeEvent that does not depend on the type, compiled once (issue 9:
// the binary's size).
func (d *decoder) eventFrame(typ, rv *string, status **StatusError) (raw []byte, rawOff int64, err error) {
	c, ok := d.peek()
	if !ok {
		if d.err == nil && d.rerr == io.EOF {
			return nil, 0, io.EOF
		}
		d.failRead()
		return nil, 0, fmt.Errorf("read: %w", d.err)
	}
	d.path, d.depthBase = d.path[:0], 0
	if c != '{' {
		d.fail("want an event object, got %s", describe(c))
		return nil, 0, fmt.Errorf("read: %w", d.err)
	}
	d.object()
	for d.field() {
		switch string(d.key()) {
		case "type":
			if s, ok := d.str(); ok {
				*typ = d.intern(s)
			}
		case "object":
			rawOff = d.offset()
			d.raw = d.raw[:0]
			d.startCapture(&d.raw)
			d.skip()
			raw = d.endCapture()
		default:
			d.skip()
		}
	}
	if d.err != nil {
		return nil, 0, fmt.Errorf("read: %w", d.err)
	}
	raw, rawOff = trimSpace(raw, rawOff)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, 0, fmt.Errorf("%s %w", *typ, errNoObject)
	}
	switch *typ {
	case eventAdded, eventModified, eventDeleted:
		return raw, rawOff, nil
	case eventBookmark:
		var lm listMeta // metadata.resourceVersion alone
		od := d.sub(raw, rawOff)
		if od.object() {
			for od.field() {
				if string(od.key()) == "metadata" {
					od.listMeta(&lm)
				} else {
					od.skip()
				}
			}
		}
		if err := od.finish("bookmark"); err != nil {
			return nil, 0, fmt.Errorf("bookmark: %w", err)
		}
		*rv = lm.ResourceVersion
	case eventError:
		var st apiStatus
		od := d.sub(raw, rawOff)
		od.decodeStatus(&st)
		if err := od.finish("status"); err != nil {
			return nil, 0, fmt.Errorf("error event: %w", err)
		}
		*status = st.toError("")
	default:
		return nil, 0, fmt.Errorf("unknown event type %q", *typ)
	}
	return nil, 0, nil
}

// sub returns a decoder of raw, a value d read, sharing d's interned
// values.
func (d *decoder) sub(raw []byte, off int64) *decoder {
	if d.subDec == nil {
		d.subDec = new(decoder)
	}
	s := d.subDec
	*s = decoder{
		buf: raw, end: len(raw), base: off, rerr: io.EOF,
		path: s.path[:0], scratch: s.scratch[:0], scratchs: s.scratchs,
		interned: d.interned, shared: d.shared, ptrs: d.ptrs,
	}
	return s
}

func trimSpace(b []byte, off int64) ([]byte, int64) {
	for len(b) > 0 && isSpace(b[0]) {
		b, off = b[1:], off+1
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b, off
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

var errNoObject = errors.New("event without object")

// lastApplied is the annotation kubectl apply leaves: a copy of the whole
// object, often kilobytes, of no use to kube2lb. It is dropped.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// maxInterned bounds the decoder's tables of known values: a watch
// decoder lives for minutes.
const maxInterned = 4096

// intern returns the canonical copy of s (unique.Make), for values
// repeated across thousands of objects: namespaces, keys, protocols, node
// names. A table per decoder answers most lookups without hashing twice
// or allocating.
func (d *decoder) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := d.interned[string(b)]; ok {
		return s
	}
	s := unique.Make(string(b)).Value()
	if d.interned == nil {
		d.interned = make(map[string]string)
	} else if len(d.interned) >= maxInterned {
		clear(d.interned)
	}
	d.interned[s] = s
	return s
}

// share returns a copy of b shared with the earlier equal values this
// decoder returned: for values that often repeat (label values) but as
// often do not, where unique.Make would cost more than it saves.
func (d *decoder) share(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := d.shared[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.shared == nil {
		d.shared = make(map[string]string)
	} else if len(d.shared) >= maxInterned {
		clear(d.shared)
	}
	d.shared[s] = s
	return s
}

// internPtr returns a pointer to the canonical copy of b, shared by every
// object this decoder decodes.
func (d *decoder) internPtr(b []byte) *string {
	s := d.intern(b)
	if p, ok := d.ptrs[s]; ok {
		return p
	}
	p := &s
	if d.ptrs == nil {
		d.ptrs = make(map[string]*string)
	} else if len(d.ptrs) >= maxInterned {
		clear(d.ptrs)
	}
	d.ptrs[s] = p
	return p
}

// JSONValue is the value of one member of an object ParseJSONObject read.
type JSONValue struct {
	Text     string // the value as written (JSON text)
	String   string // the string, when IsString
	IsString bool
	Repeated bool // the key came more than once: this is its last value
}

// ParseJSONObject reads text, one JSON object, into its members, as
// encoding/json reads one into a map of raw values: a repeated key keeps
// its last value, and null is a nil map. Annotations holding JSON objects
// are read with it, with the syntax this package reads the API's with.
func ParseJSONObject(text string) (map[string]JSONValue, error) {
	d := newBytesDecoder([]byte(text))
	var out map[string]JSONValue
	if d.object() {
		out = map[string]JSONValue{}
		for d.field() {
			key := string(d.key())
			c, _ := d.next()
			var v JSONValue
			var raw []byte
			d.startCapture(&raw)
			if c == '"' {
				s, _ := d.str()
				v.String, v.IsString = string(s), true
			} else {
				d.skip()
			}
			v.Text = string(d.endCapture())
			_, v.Repeated = out[key]
			out[key] = v
		}
	}
	if err := d.finish("object"); err != nil {
		return nil, err
	}
	return out, nil
}
