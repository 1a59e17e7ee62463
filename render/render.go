// Package render turns a snapshot of the cluster into the data of an
// operator's text/template, executes the template into a load-balancer
// configuration, and applies the result to disk so that the load balancer
// only ever reads a complete, checked file. The model is the original
// kube2lb's (.Services, .Ports, .Nodes, .Domain, ServerNames and friends)
// plus fields modern templates need; the output is deterministic, and
// untrusted annotation values are validated before they can reach it.
package render

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"

	"github.com/kube2lb/kube2lb/kubeapi"
)

// DefaultServerNameTemplate is the original's -server-name-templates default.
const DefaultServerNameTemplate = "{{ .Service.Name }}.{{ .Service.Namespace }}.svc.{{ .Domain }}"

// Options configure a Renderer.
type Options struct {
	// Domain is passed to templates as .Domain.
	Domain string
	// ServerNameTemplates generate the first ServerNames of each service
	// port, executed with {Service, Domain}; empty means
	// DefaultServerNameTemplate.
	ServerNameTemplates []string
	// DefaultPortMode is the mode of ports without a kube2lb/port-mode
	// entry; "" means "http".
	DefaultPortMode string
	// DefaultLBIP is every PortSpec's IP unless a LoadBalancer service
	// sets spec.loadBalancerIP; nil means 0.0.0.0.
	DefaultLBIP net.IP
	// LBIPRanges are the spec.loadBalancerIP values served: a
	// LoadBalancer service asking for another is skipped. Nil: any but
	// loopback, link-local and multicast addresses.
	LBIPRanges []netip.Prefix
	// NodeAddressType is the type of address preferred for Node.Address:
	// InternalIP (the default), ExternalIP, Hostname, InternalDNS or
	// ExternalDNS.
	NodeAddressType string
	// SanityChecks skips service ports in the host's ephemeral port range
	// and LoadBalancer services whose loadBalancerIP this host cannot
	// bind, as the original did. Turn it off in containers and tests.
	SanityChecks bool
	// LoadBalancerClass selects the LoadBalancer services rendered: those
	// whose spec.loadBalancerClass is this name; "" means those without a
	// class (the Kubernetes convention for the default implementation).
	// Other LoadBalancer services are skipped with a debug-level note.
	// NodePort services are rendered either way.
	LoadBalancerClass string
	// SpillDir is where the template cache keeps the outputs of the range
	// bodies it may reuse, in a file unlinked at once (see spill.go),
	// instead of in memory: the configuration's size off the heap. ""
	// keeps them in memory. A directory on tmpfs saves nothing: its
	// files are memory too. When the file cannot be created or written,
	// a warning is logged and the outputs stay in memory; the next
	// render tries again.
	SpillDir string
	// AllEndpoints keeps every port's endpoints in the model even for a
	// template that names no field Endpoints (-endpoints on): one that
	// reads them in a way the parse tree does not show, such as printf
	// "%#v" of a service.
	AllEndpoints bool
	// Logger receives each warning once, when it first appears; nil
	// means slog.Default().
	Logger *slog.Logger
}

// Renderer builds the template model from snapshots and executes
// templates. It remembers the warnings of its last render so that each is
// logged once, not at every render. It is safe for concurrent use.
type Renderer struct {
	opts  Options
	names *nameSource // the server name templates and the domain (not the Renderer: a model kept does not keep it)
	host  hostSeams

	// modelMu serialises model builds: each starts from what the
	// previous one left in state.
	modelMu sync.Mutex
	state   *modelState // nil: the next model is built from scratch

	mu           sync.Mutex
	lastWarnings map[string]bool
	lastNotes    map[string]bool
	spillWarned  string
	// spillOff keeps the template cache in memory (PauseSpill); spillGC
	// has the next render take its pieces back and run the collector.
	spillOff, spillGC atomic.Bool
	lastSize          atomic.Int64 // of the last output, to size the next one's buffer
}

// PauseSpill keeps the template cache in memory from the next render on,
// while on is true: its pieces are read back from the cache file, which
// is let go. The daemon pauses it when an apply finds no space, which a
// cache file on the same file system holds, and resumes it when an
// apply succeeds (the next render writes the pieces it uses to a new
// file), once the file system has room for the file beside the
// configuration: three times the last output and 1 MiB (the file, its
// compaction's copy, a candidate), so that the next apply does not find
// the disk full again. It reports whether this changed anything (false
// without a SpillDir), and logs a pause.
func (r *Renderer) PauseSpill(on bool) bool {
	switch {
	case r.opts.SpillDir == "":
		return false
	case !on && r.spillOff.Load() && !roomFor(r.opts.SpillDir, 3*r.lastSize.Load()+1<<20):
		return false // still no room for the file: memory
	case r.spillOff.Swap(on) == on:
		return false
	}
	if on {
		r.spillGC.Store(true)
		r.opts.Logger.Warn("no space left: the template cache is kept in memory until an apply succeeds", "dir", r.opts.SpillDir)
	}
	return true
}

// reportSpill logs a failure to keep the template cache in the spill
// directory, once while it is the same.
func (r *Renderer) reportSpill(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil:
		r.spillWarned = ""
	case err.Error() != r.spillWarned:
		r.spillWarned = err.Error()
		r.opts.Logger.Warn("keeping the template cache in memory; trying again at the next render", "dir", r.opts.SpillDir, "err", err)
	}
}

// Result is the outcome of one render.
type Result struct {
	// Output is the executed template.
	Output *Output
	// Services are the rendered service ports, the template's .Services:
	// by namespace, name, port number and protocol, the order of
	// CompareServicePorts; ServicePortName names one. They are the
	// model's values, shared with later renders: do not modify them. (A
	// name per service port, kept from one render to the next, was 1.2
	// MB at 20,000 service ports; the log names only what changed.)
	Services []*ServiceInformation
	// Nodes are the backend nodes, the template's .Nodes: by name, the
	// model's values, as Services are.
	Nodes []*Node
	// Warnings are every warning of this render, in a stable order; new
	// ones are also logged, once.
	Warnings []string
	// HostnameConflicts counts the server names dropped from a service
	// port because an older service claims them on the same PortSpec
	// (each is also a warning).
	HostnameConflicts int
}

var nodeAddressTypes = []string{kubeapi.NodeInternalIP, kubeapi.NodeExternalIP, kubeapi.NodeHostName, kubeapi.NodeInternalDNS, kubeapi.NodeExternalDNS}

// NewRenderer checks the options and parses the server-name templates. A
// server-name template that fails on a sample service, or that uses
// endpoints, is an error.
func NewRenderer(opts Options) (*Renderer, error) {
	opts.DefaultPortMode = strings.ToLower(cmp.Or(opts.DefaultPortMode, "http"))
	if !isMode(opts.DefaultPortMode) {
		return nil, fmt.Errorf("default port mode %q: want 1 to 32 letters, digits, - and _, starting with a letter", opts.DefaultPortMode)
	}
	if opts.DefaultLBIP == nil {
		opts.DefaultLBIP = net.IPv4zero
	}
	if opts.DefaultLBIP.To16() == nil {
		return nil, fmt.Errorf("default load balancer IP %v: not an IP", opts.DefaultLBIP)
	}
	opts.NodeAddressType = cmp.Or(opts.NodeAddressType, kubeapi.NodeInternalIP)
	if !slices.Contains(nodeAddressTypes, opts.NodeAddressType) {
		return nil, fmt.Errorf("node address type %q: want one of %s", opts.NodeAddressType, strings.Join(nodeAddressTypes, ", "))
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	texts := opts.ServerNameTemplates
	if len(texts) == 0 {
		texts = []string{DefaultServerNameTemplate}
	}
	r := &Renderer{
		opts: opts,
		host: hostSeams{procSys: "/proc/sys", interfaceAddrs: net.InterfaceAddrs},
	}
	var templates []*template.Template
	var fast []*fastProg
	for i, text := range texts {
		t, err := template.New(fmt.Sprintf("server-name-template-%d", i+1)).Funcs(nameFuncs).Parse(text)
		if err != nil {
			return nil, fmt.Errorf("server name template %q: %w", text, err)
		}
		if usesEndpoints(t) {
			return nil, fmt.Errorf("server name template %q: uses endpoints or backends", text)
		}
		templates = append(templates, t)
		fast = append(fast, compileFast(t.Tree, nameFuncs))
	}
	r.names = &nameSource{templates: templates, fast: fast, domain: opts.Domain}
	sample := sampleInfo(opts.Domain)
	for _, s := range sample.Services {
		if _, err := computeServerNames(r.names, *s, opts.Domain, nil); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Render builds the model from snap and executes t with it. An execution
// error is returned with the template's file:line; the warnings of the
// model are logged either way.
func (r *Renderer) Render(t *Template, snap kubeapi.Snapshot) (*Result, error) {
	info, b := r.model(snap, t.keepsEndpoints || r.opts.AllEndpoints)
	warns := b.w
	r.logWarnings(warns)
	r.logNotes(b.notes)
	hint, dir := int(r.lastSize.Load()), r.opts.SpillDir
	if r.spillOff.Load() {
		dir = ""
	}
	if t.memo != nil {
		if r.spillGC.Swap(false) {
			t.memo.collectOnce()
		}
		t.memo.useSpillDir(dir)
	}
	out, err := t.output(info, hint)
	if t.memo != nil {
		r.reportSpill(t.memo.spillError())
	}
	if err != nil {
		return nil, fmt.Errorf("execute template: %w", err)
	}
	r.lastSize.Store(int64(out.Len()))
	res := &Result{Output: out, Services: info.Services, Warnings: warns, HostnameConflicts: b.conflicts}
	res.Nodes = make([]*Node, len(info.Nodes))
	for i := range info.Nodes {
		res.Nodes[i] = &info.Nodes[i]
	}
	return res, nil
}

// LoadBalancers returns "namespace/name" of every LoadBalancer service
// with at least one rendered port, by namespace and name: the services
// the load balancer serves (not those of another load balancer class,
// nor those skipped by the sanity checks).
func (res *Result) LoadBalancers() []string {
	var lbs []string
	var last *serviceValues
	for _, s := range res.Services {
		// The ports of a service are next to each other and share
		// its values.
		if s.Type != kubeapi.ServiceTypeLoadBalancer || s.serviceValues == last {
			continue
		}
		last = s.serviceValues
		if lb := s.Namespace + "/" + s.Name; len(lbs) == 0 || lbs[len(lbs)-1] != lb {
			lbs = append(lbs, lb)
		}
	}
	return lbs
}

// ServicePortName returns "namespace/name:port/proto" of a service port.
func ServicePortName(s *ServiceInformation) string {
	return s.Namespace + "/" + s.Name + ":" + strconv.Itoa(int(s.Port.Port)) + "/" + s.Port.Protocol
}

// CompareServicePorts orders service ports as Result.Services are: by
// namespace, name, port number and protocol. It returns -1, 0 or +1.
func CompareServicePorts(a, b *ServiceInformation) int {
	if a == b {
		return 0 // most, when the daemon compares two renders' ports
	}
	return cmp.Or(
		strings.Compare(a.Namespace, b.Namespace),
		strings.Compare(a.Name, b.Name),
		cmp.Compare(a.Port.Port, b.Port.Port),
		strings.Compare(a.Port.Protocol, b.Port.Protocol),
	)
}

// Model returns the template data for snap and the warnings found while
// building it, without logging them. The model shares its values with the
// Renderer's later models: it must not be modified.
func (r *Renderer) Model(snap kubeapi.Snapshot) (*ClusterInformation, []string) {
	info, b := r.model(snap, true)
	return info, b.w
}

// model builds the template data; the builder holds the sorted warnings,
// notes and counts. It rebuilds only what changed since the previous
// model (see incremental.go); the model it returns is never written to
// afterwards. Its ports keep their endpoints when keepEndpoints is set
// (the template names .Endpoints); otherwise only the backends of
// services of policy Local are chosen by them.
func (r *Renderer) model(snap kubeapi.Snapshot, keepEndpoints bool) (*ClusterInformation, *builder) {
	r.modelMu.Lock()
	defer r.modelMu.Unlock()
	b := &builder{r: r}
	switch {
	case !snap.EndpointsWatched:
		b.endpoints = noEndpoints
	case keepEndpoints:
		b.endpoints = allEndpoints
	default:
		b.endpoints = backendsOnly
	}
	if r.opts.SanityChecks {
		b.sanity = r.host.load(&b.w)
		b.sanity.loadLocal()
	}
	var prev []*kubeapi.Service
	if r.state != nil {
		prev = r.state.svcs
	}
	services, unique := sortedServices(snap.Services, prev)
	st := r.state
	if st == nil || !unique || !sameSanity(st.sanity, b.sanity) {
		st = newModelState(b.sanity)
	}
	info := st.build(b, snap, services, unique)
	r.state = nil
	if unique {
		r.state = st
	}
	b.w = slices.Compact(b.w)
	b.notes = slices.Compact(b.notes)
	return info, b
}

// logWarnings logs the warnings that were not in the previous render's set.
func (r *Renderer) logWarnings(warns []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[string]bool, len(warns))
	for _, w := range warns {
		if !r.lastWarnings[w] && !next[w] {
			r.opts.Logger.Warn("render warning", "warning", w)
		}
		next[w] = true
	}
	r.lastWarnings = next
}

// logNotes logs, at level Debug, the notes that were not in the previous
// render's set: services left out on purpose (another load balancer
// class), which are not worth a warning but explain a missing service.
func (r *Renderer) logNotes(notes []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[string]bool, len(notes))
	for _, n := range notes {
		if !r.lastNotes[n] {
			r.opts.Logger.Debug("render note", "note", n)
		}
		next[n] = true
	}
	r.lastNotes = next
}
