package kubeapi

import (
	"strconv"
	"time"
)

// The types below are stripped-down copies of the Kubernetes API objects,
// holding only the fields kube2lb renders or reasons about. They are
// written here rather than imported so that kube2lb stays a small static
// binary with the standard library only, and so that decoding a large list
// keeps a few hundred bytes per object instead of whole objects (fields
// such as metadata.managedFields are skipped by the decoder). A field is
// added only when a template or a rule needs it.
//
// Objects handed out by the cache are shared and must be treated as
// read-only: an update replaces the pointer, it never mutates the object.
// Besides dropping the fields not declared here, the cache keeps less than
// the API sends in a few places, said at each: the last-applied
// annotation of Services, the annotations of Nodes and EndpointSlices and
// the labels of EndpointSlices. Repeated values (namespaces, label keys,
// protocols, node names...) are shared between objects, pointers included.

// ObjectMeta is the part of metadata kube2lb uses. Empty Labels and
// Annotations are nil.
type ObjectMeta struct {
	Name              string     `json:"name"`
	Namespace         string     `json:"namespace,omitempty"`
	ResourceVersion   string     `json:"resourceVersion,omitempty"`
	CreationTimestamp time.Time  `json:"creationTimestamp"`
	DeletionTimestamp *time.Time `json:"deletionTimestamp,omitempty"`
	Labels            Pairs      `json:"labels,omitempty"`
	Annotations       Pairs      `json:"annotations,omitempty"`
}

// Key returns the cache key of the object: namespace/name, or name for
// cluster-scoped objects.
func (m *ObjectMeta) Key() string {
	if m.Namespace == "" {
		return m.Name
	}
	return m.Namespace + "/" + m.Name
}

// Service types.
const (
	ServiceTypeClusterIP    = "ClusterIP"
	ServiceTypeNodePort     = "NodePort"
	ServiceTypeLoadBalancer = "LoadBalancer"
	ServiceTypeExternalName = "ExternalName"
)

// Service is a core/v1 Service. The cache drops the annotation
// kubectl.kubernetes.io/last-applied-configuration (a copy of the whole
// object, often kilobytes); the other annotations reach templates.
type Service struct {
	Metadata ObjectMeta    `json:"metadata"`
	Spec     ServiceSpec   `json:"spec"`
	Status   ServiceStatus `json:"status"`
}

// exposed reports whether s is of type NodePort or LoadBalancer.
func exposed(s *Service) bool {
	return s.Spec.Type == ServiceTypeNodePort || s.Spec.Type == ServiceTypeLoadBalancer
}

// ServiceSpec is the part of a Service's spec kube2lb uses.
type ServiceSpec struct {
	Type                  string        `json:"type,omitempty"`
	Ports                 []ServicePort `json:"ports,omitempty"`
	ExternalIPs           []string      `json:"externalIPs,omitempty"`
	LoadBalancerIP        string        `json:"loadBalancerIP,omitempty"`
	LoadBalancerClass     *string       `json:"loadBalancerClass,omitempty"`
	ExternalTrafficPolicy string        `json:"externalTrafficPolicy,omitempty"`
	HealthCheckNodePort   int32         `json:"healthCheckNodePort,omitempty"`
	SessionAffinity       string        `json:"sessionAffinity,omitempty"`
	// IPFamilies are the families of the Service's cluster IPs, its
	// first the primary: "IPv4", "IPv6". The common lists are shared
	// between Services (read only).
	IPFamilies []string `json:"ipFamilies,omitempty"`
	// LoadBalancerSourceRanges are the client CIDRs a LoadBalancer
	// service admits; empty: all.
	LoadBalancerSourceRanges []string `json:"loadBalancerSourceRanges,omitempty"`
}

// ServicePort is one entry of spec.ports.
type ServicePort struct {
	Name        string      `json:"name,omitempty"`
	Protocol    string      `json:"protocol,omitempty"`
	Port        int32       `json:"port"`
	TargetPort  IntOrString `json:"targetPort"`
	NodePort    int32       `json:"nodePort,omitempty"`
	AppProtocol *string     `json:"appProtocol,omitempty"`
}

// ServiceStatus is a Service's status.
type ServiceStatus struct {
	LoadBalancer LoadBalancerStatus `json:"loadBalancer"`
}

// LoadBalancerStatus is status.loadBalancer.
type LoadBalancerStatus struct {
	Ingress []LoadBalancerIngress `json:"ingress,omitempty"`
}

// LoadBalancerIngress is one entry of status.loadBalancer.ingress.
type LoadBalancerIngress struct {
	IP       string  `json:"ip,omitempty"`
	Hostname string  `json:"hostname,omitempty"`
	IPMode   *string `json:"ipMode,omitempty"`
}

// IntOrString is a targetPort: a port number or the name of a container
// port. The zero value is the number 0 (targetPort not set).
type IntOrString struct {
	IsString bool
	IntVal   int32
	StrVal   string
}

// String returns the number or the name.
func (v IntOrString) String() string {
	if v.IsString {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// Node address types.
const (
	NodeInternalIP  = "InternalIP"
	NodeExternalIP  = "ExternalIP"
	NodeHostName    = "Hostname"
	NodeInternalDNS = "InternalDNS"
	NodeExternalDNS = "ExternalDNS"
)

// Node is a core/v1 Node. The cache drops its annotations: nothing reads
// them, and kubelets and network plugins write kilobytes of them.
type Node struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     NodeSpec   `json:"spec"`
	Status   NodeStatus `json:"status"`
}

// NodeSpec is the part of a Node's spec kube2lb uses.
type NodeSpec struct {
	Unschedulable bool    `json:"unschedulable,omitempty"`
	Taints        []Taint `json:"taints,omitempty"`
}

// Taint is the key of one entry of spec.taints, the rest of which is not
// kept. (A string rather than a struct of one: its decoding shares the
// code of []string's, for the binary's size.)
type Taint string

// NodeStatus is the part of a Node's status kube2lb uses.
type NodeStatus struct {
	Addresses  []NodeAddress   `json:"addresses,omitempty"`
	Conditions []NodeCondition `json:"conditions,omitempty"`
}

// NodeAddress is one entry of status.addresses.
type NodeAddress struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// NodeCondition is one entry of status.conditions, reduced to what the
// Ready check needs.
type NodeCondition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

// Ready reports whether the node's Ready condition is True.
func (n *Node) Ready() bool {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// LabelServiceName is the EndpointSlice label naming its Service.
const LabelServiceName = "kubernetes.io/service-name"

// EndpointSlice is a discovery.k8s.io/v1 EndpointSlice. The cache keeps
// none of its labels and annotations but its Service's name (see
// ServiceName): a map costs more than the rest of a slice.
type EndpointSlice struct {
	Metadata    ObjectMeta     `json:"metadata"`
	AddressType string         `json:"addressType"`
	Endpoints   []Endpoint     `json:"endpoints"`
	Ports       []EndpointPort `json:"ports"`

	service string // the kubernetes.io/service-name label, as decoded
}

// ServiceName returns the name of the Service the slice belongs to (its
// kubernetes.io/service-name label), or "".
func (s *EndpointSlice) ServiceName() string {
	if s.service != "" {
		return s.service
	}
	v, _ := s.Metadata.Labels.Get(LabelServiceName)
	return v
}

// Endpoint is one entry of an EndpointSlice's endpoints.
type Endpoint struct {
	Addresses  []string           `json:"addresses"`
	Conditions EndpointConditions `json:"conditions"`
	NodeName   *string            `json:"nodeName,omitempty"`
	TargetRef  *ObjectReference   `json:"targetRef,omitempty"`
}

// EndpointConditions are an endpoint's conditions. A nil Ready means
// unknown, which consumers treat as ready (the API's convention); nil
// Serving and Terminating follow Ready and false respectively. The
// pointers are shared between objects: never write through them.
type EndpointConditions struct {
	Ready       *bool `json:"ready,omitempty"`
	Serving     *bool `json:"serving,omitempty"`
	Terminating *bool `json:"terminating,omitempty"`
}

// ObjectReference is an endpoint's targetRef, reduced to what kube2lb
// uses: the name of the pod.
type ObjectReference struct {
	Name string `json:"name,omitempty"`
}

// EndpointPort is one entry of an EndpointSlice's ports.
type EndpointPort struct {
	Name     *string `json:"name,omitempty"`
	Protocol *string `json:"protocol,omitempty"`
	Port     *int32  `json:"port,omitempty"`
}

// Snapshot is a consistent view of the cache at one moment. Its slices
// are sorted (services and slices by namespace/name, nodes by name) and
// its objects are shared: read-only.
type Snapshot struct {
	Services       []*Service
	Nodes          []*Node
	EndpointSlices []*EndpointSlice

	// EndpointsWatched is false when EndpointSlices are not watched (the
	// templates do not use endpoints); EndpointSlices is then empty.
	EndpointsWatched bool
}
