package render

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/kube2lb/kube2lb/kubeapi"
)

// ClusterInformation is the root object (`.`) handed to templates. Its
// slices are sorted, so that the same cluster state always renders the same
// bytes.
type ClusterInformation struct {
	// Services has one entry per exposed service port of every NodePort
	// and LoadBalancer service, sorted by namespace, name, port and
	// protocol.
	//
	// The services are pointers to the model's values, as PortServices'
	// and HostRule.Service are: a template reads and prints each as a
	// ServiceInformation (its String method), and functions taking one
	// accept it. A slice of values was a copy of every service port
	// (about 400 bytes each, 8 MB at 20,000 service ports) at every
	// change; this is 8 bytes each.
	Services []*ServiceInformation
	// Ports holds the distinct PortSpecs of Services, sorted by port,
	// IP, protocol and mode.
	Ports []PortSpec
	// Nodes are the nodes that can be backends, sorted by name. Each
	// prints as its name, as the original's plain strings did.
	Nodes []Node
	// AllNodes are all nodes, including those that are not backends.
	AllNodes []Node
	// Domain is the -domain flag.
	Domain string

	filler *viewFiller // PortServices and HostRules; nil when not built by a Renderer
}

// PortServices returns the services listening on port (those whose
// .Port.String equals port.String), in .Services order. Templates should
// prefer `range $.PortServices $port` to ranging over every service for
// every port and comparing, which is quadratic: with 10,000 ports and
// 30,000 service ports, 300 million comparisons.
//
// The services are pointers, as HostRule.Service is: a template reads and
// prints each as a ServiceInformation, and functions taking one accept
// it. A copy of each ServiceInformation (about 400 bytes) for every
// listener a change touched was, for a large cluster, megabytes per
// change, kept while the listener did not change again.
//
// A port whose services did not change since the previous render returns
// the very slice it returned then.
func (c *ClusterInformation) PortServices(port PortSpec) []*ServiceInformation {
	if v := c.view(port); v != nil {
		return v.ptrs
	}
	return nil
}

// HostRule is one server name of one service on a listener: an entry of
// HostRules.
type HostRule struct {
	// Service is the service port the name routes to. It is a pointer
	// so that the rules of a listener with thousands of names stay
	// small; a template reads and prints it as a ServiceInformation,
	// and functions taking one accept it.
	Service *ServiceInformation
	Name    ServerName
}

// HostRules returns the server names of the services on port (each
// service's ServerNames with .Domain) in the order in which a load
// balancer that takes the first matching rule, such as HAProxy with its
// use_backend rules, must test them so that the most specific name wins:
// exact names first (in .PortServices order), then wildcards, the longest
// suffix first (then alphabetically), then regexps, those of the oldest
// service first (creationTimestamp, then namespace and name, as for name
// ownership). Without it, rules in .PortServices (namespace) order would
// let a newer service's *.example.com or regexp catch the host name that
// an older service owns exactly.
//
// A port whose services did not change since the previous render returns
// the very slice it returned then.
func (c *ClusterInformation) HostRules(port PortSpec) ([]HostRule, error) {
	v := c.view(port)
	if v == nil {
		return hostRules(nil, c.Domain)
	}
	v.rulesOnce.Do(func() { v.rules, v.rulesErr = hostRules(v.ptrs, c.Domain) })
	return v.rules, v.rulesErr
}

func hostRules(services []*ServiceInformation, domain string) ([]HostRule, error) {
	var exact, wild, re int
	for _, s := range services {
		names, err := serverNamesOf(s, domain)
		if err != nil {
			// The error of the oldest service that has one, as the
			// order of the rules meets them.
			for _, i := range byAgeOf(services) {
				if _, err := serverNamesOf(services[i], domain); err != nil {
					return nil, err
				}
			}
			return nil, err
		}
		for _, n := range names {
			switch {
			case n.IsRegexp():
				re++
			case n.IsWildcard():
				wild++
			default:
				exact++
			}
		}
	}
	// One allocation: the listeners of a large cluster have tens of
	// thousands of names.
	rules := make([]HostRule, exact+wild+re)
	e, w, r := 0, exact, exact+wild
	for _, s := range services {
		names, _ := serverNamesOf(s, domain) // errors returned above
		for _, n := range names {
			if !n.IsRegexp() && !n.IsWildcard() {
				rules[e] = HostRule{Service: s, Name: n}
				e++
			}
		}
	}
	if wild+re == 0 {
		return rules, nil // exact names only: no order by age to compute
	}
	for _, i := range byAgeOf(services) {
		s := services[i]
		names, _ := serverNamesOf(s, domain)
		for _, n := range names {
			switch {
			case n.IsRegexp():
				rules[r] = HostRule{Service: s, Name: n}
				r++
			case n.IsWildcard():
				rules[w] = HostRule{Service: s, Name: n}
				w++
			}
		}
	}
	stableSortFunc(rules[exact:exact+wild], func(a, b *HostRule) int {
		sa, sb := strings.ToLower(a.Name.Suffix()), strings.ToLower(b.Name.Suffix())
		return cmp.Or(cmp.Compare(len(sb), len(sa)), strings.Compare(sa, sb))
	})
	return rules, nil
}

// PortSpec is the listening side of a service port on the load balancer.
type PortSpec struct {
	// IP is spec.loadBalancerIP of a LoadBalancer service, else the
	// -default-lb-ip.
	IP net.IP
	// Port is the service port (spec.ports[].port).
	Port int32
	// Mode is from the kube2lb/port-mode annotation, else the
	// -default-port-mode, lower-case.
	Mode string
	// Protocol is the lower-case protocol: "tcp", "udp" or "sctp".
	Protocol string
}

// String returns `<IP as hex>_<port>_<protocol>_<mode>`, e.g.
// 00000000_80_tcp_http. An IPv4 address is 4 bytes (8 hex digits), an IPv6
// address 16. Templates use it as an identifier in configs.
func (s PortSpec) String() string {
	ip := []byte(s.IP)
	if v4 := s.IP.To4(); v4 != nil {
		ip = v4
	}
	b := make([]byte, 0, 2*len(ip)+len(s.Protocol)+len(s.Mode)+9)
	b = hex.AppendEncode(b, ip)
	b = append(b, '_')
	b = strconv.AppendInt(b, int64(s.Port), 10)
	b = append(b, '_')
	b = append(b, s.Protocol...)
	b = append(b, '_')
	b = append(b, s.Mode...)
	return string(b)
}

// described names s for a person, as warnings do: "80/tcp on 0.0.0.0
// (00000000_80_tcp_http)", the listener and the name templates give it.
// Not inlined: cold, for the binary's size.
//
//go:noinline
func (s PortSpec) described() string {
	return fmt.Sprintf("%d/%s on %s (%s)", s.Port, s.Protocol, s.IP, s)
}

// ServiceInformation is one exposed service port.
type ServiceInformation struct {
	// The service's values, the same for all its ports: Name,
	// Namespace, External, Type, ExternalTrafficPolicy,
	// HealthCheckNodePort, SessionAffinity, LoadBalancerIP, ExternalIPs,
	// Labels and Annotations. One copy per service, not per port
	// (issue 9: a port is 200 bytes, not 416).
	*serviceValues

	// Port is where the load balancer listens for this service port.
	Port PortSpec
	// NodePort is spec.ports[].nodePort; 0 for a LoadBalancer service
	// with allocateLoadBalancerNodePorts false.
	NodePort int32
	// Endpoints are the ready endpoints of this port, or, when none is
	// ready, the serving-but-terminating ones; sorted by IP and port.
	// Empty when EndpointSlices are not watched, or when the template
	// names no field Endpoints (see endpointUse).
	Endpoints []ServiceEndpoint
	// Timeout is the kube2lb/backend-timeout entry of this port in
	// milliseconds, else 0.
	Timeout int

	PortName    string // spec.ports[].name
	TargetPort  string // spec.ports[].targetPort: a number or a port name
	AppProtocol string // spec.ports[].appProtocol, or ""
	// Backends are the nodes to send this port's traffic to: every node
	// of .Nodes, or for externalTrafficPolicy Local only those holding a
	// ready endpoint of this port.
	Backends []Node

	names *nameSet // the ServerNames of this port, computed on first use
	// fp identifies this value: copies share it, and a value built or
	// changed by the model gets a new one (nextFingerprint), never
	// reused. The template cache keys a service port by it; 0 means
	// unknown (sample data), keyed by its fields.
	fp uint64
}

// serviceValues are the values of a ServiceInformation that are its
// service's. The ports of a service share them: never written once a
// port holds them (a port that needs other values gets a copy).
type serviceValues struct {
	Name      string
	Namespace string
	// External holds the valid kube2lb/external-domains entries, in
	// annotation order.
	External []string

	Type                  string // "NodePort" or "LoadBalancer"
	ExternalTrafficPolicy string // "Cluster" or "Local"
	HealthCheckNodePort   int32  // for LoadBalancer services with policy Local, else 0
	SessionAffinity       string // "None" or "ClientIP"
	LoadBalancerIP        string // spec.loadBalancerIP, or ""
	ExternalIPs           []string
	// IPFamilies is spec.ipFamilies: "IPv4", "IPv6", the primary first;
	// empty from an API server that does not set it. The backends of a
	// single-stack service have addresses of its family (see Backends).
	IPFamilies []string
	// LoadBalancerSourceRanges are the client CIDRs a LoadBalancer
	// service admits (spec.loadBalancerSourceRanges, masked: 10.0.0.0/8);
	// empty: all, and for a NodePort service.
	LoadBalancerSourceRanges []string
	// labels and annotations of the service (see Labels, Annotations).
	labels, annotations kubeapi.Pairs

	created time.Time // the service's creationTimestamp, for name ownership
}

// fingerprints numbers the values of ServiceInformation the model builds.
var fingerprints atomic.Uint64

// nextFingerprint returns a fingerprint no value has had.
func nextFingerprint() uint64 { return fingerprints.Add(1) }

// Labels returns the service's labels, but those whose value could
// break a configuration (see docs/templates.md), as a new map: kept as
// kubeapi.Pairs, a fifth of the memory of the map templates see.
func (s ServiceInformation) Labels() map[string]string { return s.values().labels.Map() }

// Annotations returns the service's annotations, as Labels does, but
// kube2lb's own (kube2lb/*), which reach templates validated.
func (s ServiceInformation) Annotations() map[string]string { return s.values().annotations.Map() }

// values returns the service's values, empty for the zero value.
func (s *ServiceInformation) values() *serviceValues {
	if s.serviceValues == nil {
		return &serviceValues{}
	}
	return s.serviceValues
}

// String returns `<name>_<namespace>_<port>_<protocol>_<mode>`.
func (s ServiceInformation) String() string {
	v := s.values()
	return string(s.appendName(make([]byte, 0, len(v.Name)+len(v.Namespace)+len(s.Port.Protocol)+len(s.Port.Mode)+15)))
}

// appendName appends String's text to b: Sprintf's output, built by
// hand, since every backend name prints it.
func (s *ServiceInformation) appendName(b []byte) []byte {
	v := s.values()
	b = append(append(append(b, v.Name...), '_'), v.Namespace...)
	b = strconv.AppendInt(append(b, '_'), int64(s.Port.Port), 10)
	return append(append(append(append(b, '_'), s.Port.Protocol...), '_'), s.Port.Mode...)
}

// ServiceEndpoint is one endpoint (usually a pod) of a service port.
type ServiceEndpoint struct {
	// Name is the pod's name, or the IP when the endpoint has no pod.
	Name string
	IP   string
	// NodeName is the node the endpoint runs on, or "".
	NodeName string
	// Port is the target port number.
	Port int32
	// Ready is false for a serving-but-terminating endpoint, used only
	// when no endpoint of the port is ready.
	Ready bool
	// (Port and Ready last: 56 bytes, not 64; three per port of make
	// bench's cluster.)
}

// String returns IP:port, with the IP in brackets when it is IPv6.
func (e ServiceEndpoint) String() string {
	return net.JoinHostPort(e.IP, strconv.Itoa(int(e.Port)))
}

// Node is a cluster node. It prints as its name.
type Node struct {
	Name string
	// Address is the preferred address: of Options.NodeAddressType if the
	// node has one, else the first of InternalIP, ExternalIP, InternalDNS,
	// ExternalDNS, Hostname, else the node's name.
	Address string
	// BracketedAddress is Address, in brackets when it is an IPv6
	// address: `{{ .BracketedAddress }}:{{ $service.NodePort }}` is a
	// valid host:port, and much cheaper to render than a function call
	// when a template writes one line per node for every service.
	BracketedAddress string
	Addresses        NodeAddresses
	// Ready is the node's Ready condition.
	Ready         bool
	Unschedulable bool
	Labels        map[string]string
}

// String returns the node's name.
func (n Node) String() string { return n.Name }

// NodeAddresses are a node's addresses: the first of each type, and all.
type NodeAddresses struct {
	InternalIP  string
	ExternalIP  string
	Hostname    string
	InternalDNS string
	ExternalDNS string
	// All holds every valid address in the order the node lists them.
	All []NodeAddress
}

// NodeAddress is one of a node's addresses.
type NodeAddress struct {
	Type    string // InternalIP, ExternalIP, Hostname, InternalDNS, ExternalDNS
	Address string
}

// String returns the address.
func (a NodeAddress) String() string { return a.Address }

// ServerName is one name returned by the ServerNames function: a host name
// (possibly a `*.` wildcard), or a regular expression when it starts with ~.
type ServerName string

// IsRegexp reports whether the name is a regular expression (starts with ~).
func (s ServerName) IsRegexp() bool { return strings.HasPrefix(string(s), "~") }

// Regexp returns the name without its leading ~.
func (s ServerName) Regexp() string { return strings.TrimPrefix(string(s), "~") }

// IsWildcard reports whether the name starts with `*.`.
func (s ServerName) IsWildcard() bool { return strings.HasPrefix(string(s), "*.") }

// Suffix returns a wildcard name without its leading `*`, e.g. ".example.com",
// and other names unchanged.
func (s ServerName) Suffix() string {
	if s.IsWildcard() {
		return string(s[1:])
	}
	return string(s)
}

// nameSet holds a service port's server names. The model computes them,
// with the Renderer's domain, before the template runs (done); it is
// read-only from then on, as are the slices and maps it holds.
type nameSet struct {
	src   *nameSource
	done  bool
	names []ServerName
	err   error
	// lost are the names (nameKey) that an older service owns on this
	// port: left out of every ServerNames result.
	lost map[string]bool
}

// nameSource is what server names are made of: the server name
// templates and a domain. The ports of a model share one.
type nameSource struct {
	templates []*template.Template
	// fast are the templates compiled for the fast executor (nil where
	// one is outside its subset, or for all when none was compiled):
	// text/template looks a field up by name at every use, and a
	// service's values are embedded (.Service.Name is a promoted field,
	// a search of the type that allocates) — 20 % of the model's CPU.
	fast   []*fastProg
	domain string
}

// keep returns names without those the service lost.
func (n *nameSet) keep(names []ServerName) []ServerName {
	if len(n.lost) == 0 {
		return names
	}
	var out []ServerName
	for _, name := range names {
		if !n.lost[nameKey(name)] {
			out = append(out, name)
		}
	}
	return out
}
