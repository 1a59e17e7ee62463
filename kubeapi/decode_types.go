package kubeapi

import (
	"slices"
	"time"
)

// The typed decoders fill the types of types.go from a decoder, as
// encoding/json would (see decoder) and keeping only what the types say
// is kept. Unknown keys are skipped. The differential tests check them
// against encoding/json.

// decodeScratch holds the slices arrays are decoded into before they are
// copied to slices of the exact length the objects keep.
type decodeScratch struct {
	strings   []string
	ports     []ServicePort
	ingress   []LoadBalancerIngress
	addresses []NodeAddress
	conds     []NodeCondition
	taints    []Taint
	endpoints []Endpoint
	eports    []EndpointPort
}

// decodeSlice reads an array into *dst, each element with elem; null sets
// *dst to nil. The array is decoded into scratch and copied to a new
// slice of its length. A duplicate key decodes over copies of the
// elements already there, up to the slice's capacity, as encoding/json
// reuses them; *dst's array is never written. (One loop for both:
// decodeSlice is compiled once per element type, and the binary has a
// size limit.)
func decodeSlice[E any](d *decoder, dst *[]E, scratch *[]E, elem func(*decoder, *E)) {
	c, ok := d.next()
	if !ok {
		return
	}
	if c == 'n' {
		d.literal("null")
		*dst = nil
		return
	}
	if !d.array() {
		return
	}
	old := *dst
	s := append((*scratch)[:0], old[:cap(old)]...)
	i := 0
	for ; d.elem(); i++ {
		if i == len(s) {
			var zero E
			s = append(s, zero)
		}
		elem(d, &s[i])
	}
	n := len(s) // more than i only after a duplicate key
	if i == 0 {
		n = 0 // encoding/json makes an empty array a new slice
	}
	out := make([]E, n)
	copy(out, s)
	clear(s) // keep nothing alive
	*scratch = s[:0]
	*dst = out[:i]
}

// string reads a string into *dst; null leaves it unchanged.
func (d *decoder) string(dst *string) {
	if s, ok := d.str(); ok {
		*dst = string(s)
	}
}

// internString reads a string into *dst, interned.
func (d *decoder) internString(dst *string) {
	if s, ok := d.str(); ok {
		*dst = d.intern(s)
	}
}

// internStringPtr reads a string into *dst, a shared pointer to it;
// null sets *dst to nil.
func (d *decoder) internStringPtr(dst **string) {
	if s, ok := d.str(); ok {
		*dst = d.internPtr(s)
	} else if d.err == nil {
		*dst = nil
	}
}

func decodeString(d *decoder, dst *string) { d.string(dst) }

var (
	trueValue  = true
	falseValue = false
)

// boolPtr reads a boolean into *dst, a pointer shared by every object;
// null sets *dst to nil.
func (d *decoder) boolPtr(dst **bool) {
	switch v, ok := d.boolValue(); {
	case ok && v:
		*dst = &trueValue
	case ok:
		*dst = &falseValue
	case d.err == nil:
		*dst = nil
	}
}

// time reads a timestamp with (*time.Time).UnmarshalJSON, as
// encoding/json does: null leaves it unchanged.
func (d *decoder) time(dst *time.Time) {
	c, ok := d.next()
	if !ok {
		return
	}
	if c != '"' && c != 'n' {
		d.wrongType(c, "a timestamp string")
		return
	}
	raw, ok := d.rawString()
	if !ok {
		return
	}
	if err := dst.UnmarshalJSON(raw); err != nil {
		d.pos -= len(raw)
		d.fail("%v", err)
	}
}

// stringMap reads an object of strings into *dst, merged into the
// entries already there as encoding/json merges into a map, interning
// the keys and sharing the values; null sets *dst to nil. The key drop
// is skipped. No entries is nil.
func (d *decoder) stringMap(dst *Pairs, drop string) {
	c, ok := d.next()
	if !ok {
		return
	}
	if c == 'n' {
		d.literal("null")
		*dst = nil
		return
	}
	if !d.object() {
		return
	}
	// Collected in the decoder's scratch array, then copied at their
	// size: an object's labels are never grown in place, nor written in
	// an array a copy of the object may hold (a repeated key merges into
	// a new array).
	p := append(d.pairs[:0], *dst...)
	defer func() {
		clear(p) // the scratch array keeps no object's strings alive
		d.pairs = p[:0]
	}()
	for d.field() {
		k := d.key()
		if drop != "" && string(k) == drop {
			d.skipStringValue()
			continue
		}
		key := d.intern(k)
		v, ok := d.str()
		if d.err != nil {
			return
		}
		var val string
		if ok {
			val = d.share(v)
		}
		p.set(key, val)
	}
	var out Pairs
	if len(p) > 0 {
		out = make(Pairs, len(p))
		copy(out, p)
	}
	*dst = out
}

// skipStringMap skips an object of strings, or null.
func (d *decoder) skipStringMap() {
	if !d.object() {
		return
	}
	for d.field() {
		d.skipStringValue()
	}
}

// metaKind says what the metadata of a type keeps.
type metaKind int

const (
	serviceMeta metaKind = iota // labels, annotations but lastApplied
	nodeMeta                    // labels
	sliceMeta                   // the kubernetes.io/service-name label
)

func (d *decoder) meta(m *ObjectMeta, kind metaKind, service *string) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "name":
			d.string(&m.Name)
		case "namespace":
			d.internString(&m.Namespace)
		case "resourceVersion":
			d.string(&m.ResourceVersion)
		case "creationTimestamp":
			d.time(&m.CreationTimestamp)
		case "deletionTimestamp":
			if d.isNull() {
				m.DeletionTimestamp = nil
				break
			}
			if m.DeletionTimestamp == nil {
				m.DeletionTimestamp = new(time.Time)
			}
			d.time(m.DeletionTimestamp)
		case "labels":
			if kind == sliceMeta {
				d.serviceNameLabel(service)
			} else {
				d.stringMap(&m.Labels, "")
			}
		case "annotations":
			if kind == serviceMeta {
				d.stringMap(&m.Annotations, lastApplied)
			} else {
				d.skipStringMap()
			}
		default:
			d.skip()
		}
	}
}

// serviceNameLabel reads an EndpointSlice's labels, keeping its Service's
// name.
func (d *decoder) serviceNameLabel(service *string) {
	c, ok := d.next()
	if !ok {
		return
	}
	if c == 'n' { // no labels any more
		d.literal("null")
		*service = ""
		return
	}
	if !d.object() {
		return
	}
	for d.field() {
		if string(d.key()) != LabelServiceName {
			d.skipStringValue()
			continue
		}
		v, ok := d.str()
		if ok {
			*service = string(v)
		} else if d.err == nil {
			*service = ""
		}
	}
}

func (s *Service) decode(d *decoder) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "metadata":
			d.meta(&s.Metadata, serviceMeta, nil)
		case "spec":
			d.serviceSpec(&s.Spec)
		case "status":
			d.serviceStatus(&s.Status)
		default:
			d.skip()
		}
	}
}

func (d *decoder) serviceSpec(sp *ServiceSpec) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "type":
			d.internString(&sp.Type)
		case "ports":
			decodeSlice(d, &sp.Ports, &d.scratchs.ports, (*decoder).servicePort)
		case "externalIPs":
			decodeSlice(d, &sp.ExternalIPs, &d.scratchs.strings, decodeString)
		case "loadBalancerIP":
			d.string(&sp.LoadBalancerIP)
		case "loadBalancerClass":
			d.internStringPtr(&sp.LoadBalancerClass)
		case "externalTrafficPolicy":
			d.internString(&sp.ExternalTrafficPolicy)
		case "healthCheckNodePort":
			d.int32(&sp.HealthCheckNodePort)
		case "sessionAffinity":
			d.internString(&sp.SessionAffinity)
		case "loadBalancerSourceRanges":
			decodeSlice(d, &sp.LoadBalancerSourceRanges, &d.scratchs.strings, decodeString)
		case "ipFamilies":
			decodeSlice(d, &sp.IPFamilies, &d.scratchs.strings, (*decoder).internString)
			for _, l := range familyLists {
				// Not after a duplicate key, which leaves spare capacity
				// that encoding/json would reuse at the next one.
				if cap(sp.IPFamilies) == len(l) && slices.Equal(sp.IPFamilies, l) {
					sp.IPFamilies = l
				}
			}
		default:
			d.skip()
		}
	}
}

// familyLists are the lists of spec.ipFamilies Services share.
var familyLists = [][]string{{"IPv4"}, {"IPv6"}, {"IPv4", "IPv6"}, {"IPv6", "IPv4"}}

func (d *decoder) servicePort(p *ServicePort) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "name":
			d.internString(&p.Name)
		case "protocol":
			d.internString(&p.Protocol)
		case "port":
			d.int32(&p.Port)
		case "targetPort":
			d.intOrString(&p.TargetPort)
		case "nodePort":
			d.int32(&p.NodePort)
		case "appProtocol":
			d.internStringPtr(&p.AppProtocol)
		default:
			d.skip()
		}
	}
}

// intOrString reads a number or a string, as IntOrString.UnmarshalJSON:
// null is the number 0.
func (d *decoder) intOrString(v *IntOrString) {
	c, ok := d.next()
	if !ok {
		return
	}
	switch {
	case c == '"':
		s, _ := d.str()
		*v = IntOrString{IsString: true, StrVal: d.intern(s)}
	case c == 'n':
		d.literal("null")
		*v = IntOrString{}
	case c == '-' || '0' <= c && c <= '9':
		if n, ok := d.int32Value(); ok {
			*v = IntOrString{IntVal: n}
		}
	default:
		d.wrongType(c, "a number or a string")
	}
}

func (d *decoder) serviceStatus(st *ServiceStatus) {
	if !d.object() {
		return
	}
	for d.field() {
		if string(d.key()) != "loadBalancer" {
			d.skip()
			continue
		}
		if !d.object() {
			continue
		}
		for d.field() {
			if string(d.key()) == "ingress" {
				decodeSlice(d, &st.LoadBalancer.Ingress, &d.scratchs.ingress, (*decoder).ingress)
			} else {
				d.skip()
			}
		}
	}
}

func (d *decoder) ingress(in *LoadBalancerIngress) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "ip":
			d.string(&in.IP)
		case "hostname":
			d.string(&in.Hostname)
		case "ipMode":
			d.internStringPtr(&in.IPMode)
		default:
			d.skip()
		}
	}
}

func (n *Node) decode(d *decoder) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "metadata":
			d.meta(&n.Metadata, nodeMeta, nil)
		case "spec":
			if !d.object() {
				break
			}
			for d.field() {
				switch string(d.key()) {
				case "unschedulable":
					if v, ok := d.boolValue(); ok {
						n.Spec.Unschedulable = v
					}
				case "taints":
					decodeSlice(d, &n.Spec.Taints, &d.scratchs.taints, (*decoder).taint)
				default:
					d.skip()
				}
			}
		case "status":
			d.nodeStatus(&n.Status)
		default:
			d.skip()
		}
	}
}

func (d *decoder) taint(t *Taint) {
	if !d.object() {
		return
	}
	for d.field() {
		if string(d.key()) == "key" {
			d.internString((*string)(t))
		} else {
			d.skip()
		}
	}
}

func (d *decoder) nodeStatus(st *NodeStatus) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "addresses":
			decodeSlice(d, &st.Addresses, &d.scratchs.addresses, (*decoder).nodeAddress)
		case "conditions":
			decodeSlice(d, &st.Conditions, &d.scratchs.conds, (*decoder).nodeCondition)
		default:
			d.skip()
		}
	}
}

func (d *decoder) nodeAddress(a *NodeAddress) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "type":
			d.internString(&a.Type)
		case "address":
			d.string(&a.Address)
		default:
			d.skip()
		}
	}
}

func (d *decoder) nodeCondition(c *NodeCondition) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "type":
			d.internString(&c.Type)
		case "status":
			d.internString(&c.Status)
		default:
			d.skip()
		}
	}
}

func (s *EndpointSlice) decode(d *decoder) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "metadata":
			d.meta(&s.Metadata, sliceMeta, &s.service)
		case "addressType":
			d.internString(&s.AddressType)
		case "endpoints":
			decodeSlice(d, &s.Endpoints, &d.scratchs.endpoints, (*decoder).endpoint)
		case "ports":
			decodeSlice(d, &s.Ports, &d.scratchs.eports, (*decoder).endpointPort)
		default:
			d.skip()
		}
	}
}

func (d *decoder) endpoint(e *Endpoint) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "addresses":
			decodeSlice(d, &e.Addresses, &d.scratchs.strings, decodeString)
		case "conditions":
			if !d.object() {
				break
			}
			c := &e.Conditions
			for d.field() {
				switch string(d.key()) {
				case "ready":
					d.boolPtr(&c.Ready)
				case "serving":
					d.boolPtr(&c.Serving)
				case "terminating":
					d.boolPtr(&c.Terminating)
				default:
					d.skip()
				}
			}
		case "nodeName":
			d.internStringPtr(&e.NodeName)
		case "targetRef":
			if d.isNull() {
				e.TargetRef = nil
				break
			}
			if !d.object() {
				break
			}
			if e.TargetRef == nil {
				e.TargetRef = new(ObjectReference)
			}
			for d.field() {
				if string(d.key()) == "name" {
					d.string(&e.TargetRef.Name)
				} else {
					d.skip()
				}
			}
		default:
			d.skip()
		}
	}
}

func (d *decoder) endpointPort(p *EndpointPort) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "name":
			d.internStringPtr(&p.Name)
		case "protocol":
			d.internStringPtr(&p.Protocol)
		case "port":
			if d.isNull() {
				p.Port = nil
			} else if n, ok := d.int32Value(); ok {
				p.Port = &n
			}
		default:
			d.skip()
		}
	}
}
