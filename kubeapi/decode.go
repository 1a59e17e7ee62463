package kubeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unique"
)

// object is implemented by the pointer types the cache holds.
type object[T any] interface {
	*T
	meta() *ObjectMeta
	compact()
}

func (s *Service) meta() *ObjectMeta       { return &s.Metadata }
func (n *Node) meta() *ObjectMeta          { return &n.Metadata }
func (s *EndpointSlice) meta() *ObjectMeta { return &s.Metadata }

// listMeta is a list's metadata.
type listMeta struct {
	ResourceVersion string `json:"resourceVersion"`
	Continue        string `json:"continue"`
}

// skipValue consumes a JSON value of any type without keeping it.
type skipValue struct{}

func (*skipValue) UnmarshalJSON([]byte) error { return nil }

// decodeList reads a list response ({"kind": ..., "metadata": {...},
// "items": [...]}) from r, handing each item to add as soon as it is
// decoded: the body is never held whole, and only the fields of T are
// kept from each item (metadata.managedFields and the like are skipped by
// encoding/json). Keys may come in any order.
func decodeList[T any, P object[T]](r io.Reader, add func(P)) (listMeta, error) {
	var lm listMeta
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return lm, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return lm, err
		}
		key, _ := tok.(string)
		switch key {
		case "metadata":
			if err := dec.Decode(&lm); err != nil {
				return lm, fmt.Errorf("metadata: %w", err)
			}
		case "items":
			if err := decodeItems(dec, add); err != nil {
				return lm, err
			}
		default:
			if err := dec.Decode(&skipValue{}); err != nil {
				return lm, fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return lm, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return lm, errors.New("data after the list")
	}
	return lm, nil
}

func decodeItems[T any, P object[T]](dec *json.Decoder, add func(P)) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("items: %w", err)
	}
	if tok == nil { // "items": null
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("items: got %v, want an array", tok)
	}
	for i := 0; dec.More(); i++ {
		p := P(new(T))
		if err := dec.Decode(p); err != nil {
			return fmt.Errorf("items[%d]: %w", i, err)
		}
		p.compact()
		add(p)
	}
	if err := expectDelim(dec, ']'); err != nil {
		return fmt.Errorf("items: %w", err)
	}
	return nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("got %v, want %v", tok, want)
	}
	return nil
}

// Watch event types.
const (
	eventAdded    = "ADDED"
	eventModified = "MODIFIED"
	eventDeleted  = "DELETED"
	eventBookmark = "BOOKMARK"
	eventError    = "ERROR"
)

// watchEvent is one event of a watch stream, its object still undecoded
// because its type depends on the event's type.
type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// event is a decoded watch event.
type event[P any] struct {
	typ    string
	obj    P            // ADDED, MODIFIED, DELETED: the object, compacted
	rv     string       // the object's or the bookmark's resourceVersion
	status *StatusError // ERROR: the Status, without Op
}

// decodeEvent reads the next event of a watch stream. It returns io.EOF
// at the clean end of the stream, and an error for an event it cannot
// use, unknown types included: the stream is then out of step.
func decodeEvent[T any, P object[T]](dec *json.Decoder) (event[P], error) {
	var ev event[P]
	var raw watchEvent
	if err := dec.Decode(&raw); err != nil {
		if err == io.EOF {
			return ev, io.EOF
		}
		return ev, fmt.Errorf("read: %w", err)
	}
	ev.typ = raw.Type
	if len(raw.Object) == 0 || string(raw.Object) == "null" {
		return ev, fmt.Errorf("%s %w", raw.Type, errNoObject)
	}
	switch raw.Type {
	case eventAdded, eventModified, eventDeleted:
		p := P(new(T))
		if err := json.Unmarshal(raw.Object, p); err != nil {
			return ev, fmt.Errorf("%s event: %w", raw.Type, err)
		}
		p.compact()
		ev.obj, ev.rv = p, p.meta().ResourceVersion
	case eventBookmark:
		var b rvOnly
		if err := json.Unmarshal(raw.Object, &b); err != nil {
			return ev, fmt.Errorf("bookmark: %w", err)
		}
		ev.rv = b.Metadata.ResourceVersion
	case eventError:
		var st apiStatus
		if err := json.Unmarshal(raw.Object, &st); err != nil {
			return ev, fmt.Errorf("error event: %w", err)
		}
		ev.status = st.toError("")
	default:
		return ev, fmt.Errorf("unknown event type %q", raw.Type)
	}
	return ev, nil
}

// rvOnly decodes only an object's resourceVersion (bookmarks).
type rvOnly struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
}

var errNoObject = errors.New("event without object")

// lastApplied is the annotation kubectl apply leaves: a copy of the whole
// object, often kilobytes, of no use to kube2lb. It is dropped.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// intern returns a canonical copy of s: values repeated across thousands
// of objects (namespaces, protocols, types) are then kept once.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

func internAll(s []string) {
	for i := range s {
		s[i] = intern(s[i])
	}
}

func internPtr(p *string) *string {
	if p == nil {
		return nil
	}
	s := intern(*p)
	return &s
}

// compact drops what kube2lb never uses and interns repeated values.
func (m *ObjectMeta) compact() {
	m.Namespace = intern(m.Namespace)
	delete(m.Annotations, lastApplied)
	if len(m.Annotations) == 0 {
		m.Annotations = nil
	}
}

func (s *Service) compact() {
	s.Metadata.compact()
	sp := &s.Spec
	sp.Type = intern(sp.Type)
	sp.ExternalTrafficPolicy = intern(sp.ExternalTrafficPolicy)
	sp.SessionAffinity = intern(sp.SessionAffinity)
	internAll(sp.IPFamilies)
	for i := range sp.Ports {
		p := &sp.Ports[i]
		p.Name = intern(p.Name)
		p.Protocol = intern(p.Protocol)
		p.TargetPort.StrVal = intern(p.TargetPort.StrVal)
		p.AppProtocol = internPtr(p.AppProtocol)
	}
}

func (n *Node) compact() {
	n.Metadata.compact()
	for i := range n.Status.Addresses {
		n.Status.Addresses[i].Type = intern(n.Status.Addresses[i].Type)
	}
	for i := range n.Status.Conditions {
		c := &n.Status.Conditions[i]
		c.Type, c.Status = intern(c.Type), intern(c.Status)
	}
}

func (s *EndpointSlice) compact() {
	s.Metadata.compact()
	s.AddressType = intern(s.AddressType)
	for i := range s.Endpoints {
		e := &s.Endpoints[i]
		e.NodeName = internPtr(e.NodeName)
		if e.TargetRef != nil {
			e.TargetRef.Kind = intern(e.TargetRef.Kind)
			e.TargetRef.Namespace = intern(e.TargetRef.Namespace)
		}
	}
	for i := range s.Ports {
		p := &s.Ports[i]
		p.Name, p.Protocol = internPtr(p.Name), internPtr(p.Protocol)
	}
}
