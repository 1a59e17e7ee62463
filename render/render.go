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
	"slices"
	"strconv"
	"strings"
	"sync"
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
	lastSize     int // of the last output, to size the next one's buffer
	spillWarned  string
	lastNames    serviceNames // of the last Result
}

// serviceNames are a Result's names of services: for each service port
// of .Services, its "namespace/name:port/proto".
type serviceNames struct {
	services []*ServiceInformation
	ports    []string
}

// namesOf returns the names of services, taking those of the service
// ports last's were made for (found by position, as identRun finds
// entries): 30,000 strings made at every change were a tenth of its
// allocations.
func namesOf(services []*ServiceInformation, last serviceNames) serviceNames {
	n := serviceNames{services: services, ports: make([]string, len(services))}
	var name []byte
	j := 0
	for i, s := range services {
		if s.fp != 0 {
			if k, ok := ahead(len(last.services), &j, func(k int) bool { return last.services[k] == s }); ok {
				n.ports[i] = last.ports[k]
				continue
			}
		}
		name = append(append(append(append(name[:0], s.Namespace...), '/'), s.Name...), ':')
		name = append(append(strconv.AppendInt(name, int64(s.Port.Port), 10), '/'), s.Port.Protocol...)
		n.ports[i] = string(name)
	}
	return n
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
	// Services are "namespace/name:port/proto" of every rendered service
	// port, in .Services order: by namespace, name, port number and
	// protocol, the order of CompareServicePorts. (Sorted as strings
	// instead, they cost a tenth of a change's render at 20,000.) The
	// Renderer reuses them for the next Result: do not modify them.
	Services []string
	// Nodes are the backend node names, sorted.
	Nodes []string
	// Warnings are every warning of this render, in a stable order; new
	// ones are also logged, once.
	Warnings []string
	// LoadBalancers are "namespace/name" of every LoadBalancer service
	// with at least one rendered port, by namespace and name: the services the load
	// balancer serves (not those of another load balancer class, nor those
	// skipped by the sanity checks).
	LoadBalancers []string
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
		return nil, fmt.Errorf("default port mode %q: want lower-case letters, digits, - and _", opts.DefaultPortMode)
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
		if _, err := computeServerNames(r.names, *s, opts.Domain); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Render builds the model from snap and executes t with it. An execution
// error is returned with the template's file:line; the warnings of the
// model are logged either way.
func (r *Renderer) Render(t *Template, snap kubeapi.Snapshot) (*Result, error) {
	info, b := r.model(snap)
	warns := b.w
	r.logWarnings(warns)
	r.logNotes(b.notes)
	r.mu.Lock()
	hint := r.lastSize
	r.mu.Unlock()
	if t.memo != nil {
		t.memo.useSpillDir(r.opts.SpillDir)
	}
	out, err := t.output(info, hint)
	if t.memo != nil {
		r.reportSpill(t.memo.spillError())
	}
	if err != nil {
		return nil, fmt.Errorf("execute template: %w", err)
	}
	r.mu.Lock()
	r.lastSize = out.Len()
	last := r.lastNames
	r.mu.Unlock()
	res := &Result{Output: out, Warnings: warns, HostnameConflicts: b.conflicts}
	names := namesOf(info.Services, last)
	r.mu.Lock()
	r.lastNames = names
	r.mu.Unlock()
	if len(names.ports) > 0 {
		res.Services = names.ports
	}
	for i, s := range info.Services {
		if s.Type != kubeapi.ServiceTypeLoadBalancer {
			continue
		}
		// "namespace/name" of its port's name; the ports of a service
		// are next to each other.
		lb := names.ports[i][:len(s.Namespace)+1+len(s.Name)]
		if len(res.LoadBalancers) == 0 || res.LoadBalancers[len(res.LoadBalancers)-1] != lb {
			res.LoadBalancers = append(res.LoadBalancers, lb)
		}
	}
	for _, n := range info.Nodes {
		res.Nodes = append(res.Nodes, n.Name)
	}
	return res, nil
}

// CompareServicePorts orders the "namespace/name:port/proto" of
// Result.Services as they come: by namespace, name, port number and
// protocol. It returns -1, 0 or +1.
func CompareServicePorts(a, b string) int {
	an, aname, aport, aproto := splitServicePort(a)
	bn, bname, bport, bproto := splitServicePort(b)
	return cmp.Or(strings.Compare(an, bn), strings.Compare(aname, bname), cmp.Compare(aport, bport), strings.Compare(aproto, bproto))
}

// splitServicePort splits "namespace/name:port/proto"; namespaces and
// names hold neither / nor :.
func splitServicePort(s string) (ns, name string, port int, proto string) {
	ns, rest, _ := strings.Cut(s, "/")
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		name, rest = rest[:i], rest[i+1:]
	}
	p, proto, _ := strings.Cut(rest, "/")
	port, _ = strconv.Atoi(p)
	return ns, name, port, proto
}

// Model returns the template data for snap and the warnings found while
// building it, without logging them. The model shares its values with the
// Renderer's later models: it must not be modified.
func (r *Renderer) Model(snap kubeapi.Snapshot) (*ClusterInformation, []string) {
	info, b := r.model(snap)
	return info, b.w
}

// model builds the template data; the builder holds the sorted warnings,
// notes and counts. It rebuilds only what changed since the previous
// model (see incremental.go); the model it returns is never written to
// afterwards.
func (r *Renderer) model(snap kubeapi.Snapshot) (*ClusterInformation, *builder) {
	r.modelMu.Lock()
	defer r.modelMu.Unlock()
	b := &builder{r: r}
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
