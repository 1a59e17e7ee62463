package render

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"syscall"
	"text/template"
	"text/template/parse"

	"github.com/kube2lb/kube2lb/kubeapi"
)

// Template is a parsed load-balancer configuration template.
type Template struct {
	path          string
	tmpl          *template.Template
	usesEndpoints bool
	// keepsEndpoints: the template names .Endpoints, not only .Backends;
	// else the model keeps no endpoint of any port (see endpointUse).
	keepsEndpoints bool
	// memo executes tmpl incrementally (see memo.go); nil when no range
	// of the template can be.
	memo *memoSet
}

// ParseTemplate reads and parses the template at path. Errors name the file
// and line. The template is also executed once on sample data, so that a
// misspelt field or a wrong function argument is reported now, when the
// caller can still keep its last good template, rather than at the next
// render.
func ParseTemplate(path string) (*Template, error) {
	text, err := readRegular(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	if len(bytes.TrimSpace(text)) == 0 {
		// Most likely caught between an editor's truncation and its
		// write: it would render an empty configuration.
		return nil, fmt.Errorf("template %s is empty", path)
	}
	return parseTemplate(path, string(text))
}

// readRegular reads the regular file at path, and refuses anything else:
// a FIFO would block the open until a writer came, and the daemon's loop
// with it. It is opened without blocking and checked once open, so that
// the file checked is the file read.
func readRegular(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	var b []byte
	fi, err := f.Stat()
	switch {
	case err != nil:
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	default:
		b, err = io.ReadAll(f)
	}
	f.Close()
	return b, err
}

func parseTemplate(name, text string) (*Template, error) {
	tmpl, err := template.New(name).Funcs(funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	t := &Template{path: name, tmpl: tmpl, usesEndpoints: usesEndpoints(tmpl), keepsEndpoints: namesField(tmpl, endpointsField)}
	var plain bytes.Buffer
	if err := tmpl.Execute(&plain, sampleInfo("cluster.local")); err != nil {
		return nil, fmt.Errorf("template %s fails on sample data: %w", name, err)
	}
	// The incremental execution must write what text/template writes; a
	// template on which it does not is executed plainly.
	if m, err := newMemoSet(tmpl, reflect.TypeFor[*ClusterInformation]()); err == nil && m != nil {
		var out bytes.Buffer
		if err := m.execute(&out, sampleInfo("cluster.local")); err == nil && bytes.Equal(out.Bytes(), plain.Bytes()) {
			t.memo = m
		}
	}
	return t, nil
}

// execute runs the template with info into w.
func (t *Template) execute(w io.Writer, info *ClusterInformation) error {
	if t.memo != nil {
		if first, err := t.memo.executeFirst(t.tmpl, w, info); first {
			return err
		}
		return t.memo.execute(w, info)
	}
	return t.tmpl.Execute(w, info)
}

// output runs the template with info. A plain execution writes into
// chunks, the first sized by sizeHint (the size of the last output); the
// incremental one refers to its cache's pieces instead of copying them.
func (t *Template) output(info *ClusterInformation, sizeHint int) (*Output, error) {
	if t.memo != nil && (t.memo.started.Load() || t.memo.fillsFirst()) {
		return t.memo.output(info)
	}
	w := newChunkWriter(sizeHint)
	if err := t.execute(w, info); err != nil {
		return nil, err
	}
	return w.output(), nil
}

// Path returns the file the template was read from.
func (t *Template) Path() string { return t.path }

// UsesEndpoints reports whether the template reads endpoints: any field
// named Endpoints, or Backends (which depend on endpoints for services with
// externalTrafficPolicy Local), anywhere in it. When it is false the caller
// need not watch EndpointSlices, nor re-render on every pod change.
func (t *Template) UsesEndpoints() bool { return t.usesEndpoints }

// KeepsEndpoints reports whether the template names a field Endpoints.
// When it uses endpoints but does not (it reads .Backends only), a model
// reads only the endpoints of the services of externalTrafficPolicy
// Local, unless Options.AllEndpoints is set.
func (t *Template) KeepsEndpoints() bool { return t.keepsEndpoints }

// endpointFields are the model's fields whose values depend on endpoints;
// endpointsField the one that holds them.
var (
	endpointFields = map[string]bool{"Endpoints": true, "Backends": true}
	endpointsField = map[string]bool{"Endpoints": true}
)

func usesEndpoints(t *template.Template) bool { return namesField(t, endpointFields) }

// namesField reports whether t names one of fields. It errs on the side of
// true: a field of that name on any value counts.
func namesField(t *template.Template, fields map[string]bool) bool {
	for _, tt := range t.Templates() {
		if tt.Tree != nil && walkUses(tt.Tree.Root, fields) {
			return true
		}
	}
	return false
}

// walkUses reports whether the tree below n names one of fields.
func walkUses(n parse.Node, fields map[string]bool) bool {
	idents := func(ids []string) bool {
		for _, id := range ids {
			if fields[id] {
				return true
			}
		}
		return false
	}
	switch n := n.(type) {
	case nil:
		return false
	case *parse.ListNode:
		if n == nil {
			return false
		}
		for _, c := range n.Nodes {
			if walkUses(c, fields) {
				return true
			}
		}
	case *parse.ActionNode:
		return walkUses(n.Pipe, fields)
	case *parse.PipeNode:
		if n == nil {
			return false
		}
		for _, c := range n.Cmds {
			if walkUses(c, fields) {
				return true
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if walkUses(a, fields) {
				return true
			}
		}
	case *parse.FieldNode:
		return idents(n.Ident)
	case *parse.VariableNode:
		return idents(n.Ident)
	case *parse.ChainNode:
		return idents(n.Field) || walkUses(n.Node, fields)
	case *parse.IdentifierNode:
		return fields[n.Ident]
	case *parse.IfNode:
		return walkUses(n.Pipe, fields) || walkUses(n.List, fields) || walkUses(n.ElseList, fields)
	case *parse.RangeNode:
		return walkUses(n.Pipe, fields) || walkUses(n.List, fields) || walkUses(n.ElseList, fields)
	case *parse.WithNode:
		return walkUses(n.Pipe, fields) || walkUses(n.List, fields) || walkUses(n.ElseList, fields)
	case *parse.TemplateNode:
		return walkUses(n.Pipe, fields)
	}
	return false
}

// sampleInfo is the data templates are tried on when parsed: one service
// of each kind, with endpoints, on two nodes.
func sampleInfo(domain string) *ClusterInformation {
	nodes := []Node{
		{Name: "node-a", Address: "10.0.0.1", BracketedAddress: "10.0.0.1", Ready: true, Addresses: NodeAddresses{InternalIP: "10.0.0.1", Hostname: "node-a",
			All: []NodeAddress{{Type: "InternalIP", Address: "10.0.0.1"}, {Type: "Hostname", Address: "node-a"}}}, Labels: map[string]string{"zone": "a"}},
		{Name: "node-b", Address: "fd00::2", BracketedAddress: "[fd00::2]", Ready: true, Addresses: NodeAddresses{InternalIP: "fd00::2",
			All: []NodeAddress{{Type: "InternalIP", Address: "fd00::2"}}}},
	}
	info := &ClusterInformation{
		Services: []*ServiceInformation{
			sampleService("web", 80, "http", net.IPv4zero, "NodePort", nodes, domain),
			sampleService("db", 3306, "tcp", net.ParseIP("192.0.2.10"), "LoadBalancer", nodes, domain),
		},
		Nodes:    nodes,
		AllNodes: nodes,
		Domain:   domain,
	}
	info.Ports = []PortSpec{info.Services[0].Port, info.Services[1].Port}
	return info
}

// sampleService is one of sampleInfo's services.
func sampleService(name string, port int32, mode string, ip net.IP, typ string, nodes []Node, domain string) *ServiceInformation {
	return &ServiceInformation{
		serviceValues: &serviceValues{
			Name: name, Namespace: "default",
			External:              []string{"www.example.com", `~^www\.example\.(com|net)$`},
			Type:                  typ,
			ExternalTrafficPolicy: "Cluster", SessionAffinity: "None",
			labels: kubeapi.Pairs{{Key: "app", Value: name}}, annotations: kubeapi.Pairs{{Key: "example.com/a", Value: "b"}},
		},
		Port:     PortSpec{IP: ip, Port: port, Mode: mode, Protocol: "tcp"},
		NodePort: 30000 + port,
		Endpoints: []ServiceEndpoint{
			{Name: name + "-1", IP: "10.1.0.1", Port: 8080, NodeName: "node-a", Ready: true},
			{Name: name + "-2", IP: "fd00:1::2", Port: 8080, NodeName: "node-b", Ready: true},
		},
		Timeout: 1000, PortName: mode, TargetPort: "8080",
		Backends: nodes,
		names:    &nameSet{src: &nameSource{templates: []*template.Template{sampleNameTemplate}, domain: domain}},
	}
}

var sampleNameTemplate = template.Must(template.New("sample").Parse(DefaultServerNameTemplate))
