package kubeconfig

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// kubeconfig is the part of one kubeconfig file (or several merged ones)
// that kube2lb uses. Unknown fields are ignored, as kubectl ignores them.
type kubeconfig struct {
	currentContext string
	clusters       map[string]*cluster
	users          map[string]*user
	contexts       map[string]*kcontext
}

// Each entry remembers the file that defined it: errors name it, and
// relative paths resolve against its directory.
type cluster struct {
	file                  string
	server                string
	certificateAuthority  string // path
	caData                []byte
	insecureSkipTLSVerify bool
	tlsServerName         string
	proxyURL              string
}

type user struct {
	file                  string
	clientCertificate     string // path
	clientCertificateData []byte
	clientKey             string // path
	clientKeyData         []byte
	token                 string
	tokenFile             string
	username              string
	password              string
	exec                  *execConfig
	authProvider          string // name, refused
	impersonate           string // the first impersonation field set, refused
}

type kcontext struct {
	file      string
	cluster   string
	user      string
	namespace string
}

// execConfig is a user's exec credential plugin.
type execConfig struct {
	apiVersion         string
	command            string
	args               []string
	env                [][2]string
	installHint        string
	provideClusterInfo bool
	interactiveMode    string
}

// fieldError is an error about one field of one entry of a kubeconfig file.
func fieldError(file, entry, field string, err error) error {
	if entry == "" {
		return fmt.Errorf("kubeconfig %s: %s: %w", file, field, err)
	}
	return fmt.Errorf("kubeconfig %s: %s: %s: %w", file, entry, field, err)
}

// decoder reads fields from nodes, remembering the first error.
type decoder struct {
	file  string
	entry string // `cluster "x"`, for errors
	err   error
}

func (d *decoder) fail(field string, format string, args ...any) {
	if d.err == nil {
		d.err = fieldError(d.file, d.entry, field, fmt.Errorf(format, args...))
	}
}

func (d *decoder) position(n *node) string {
	return fmt.Sprintf("line %d", n.line)
}

func (d *decoder) str(n *node, field string) string {
	v := n.get(field)
	if v == nil || v.kind == nullNode {
		return ""
	}
	if v.kind != scalarNode {
		d.fail(field, "want a string, found %s (%s)", v.kind, d.position(v))
		return ""
	}
	return v.str
}

func (d *decoder) boolean(n *node, field string) bool {
	v := n.get(field)
	if v == nil || v.kind == nullNode {
		return false
	}
	if v.kind == scalarNode && v.plain {
		// YAML 1.1's booleans, as kubectl reads them.
		switch v.str {
		case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y":
			return true
		case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N":
			return false
		}
	}
	d.fail(field, "want true or false (%s)", d.position(v))
	return false
}

func (d *decoder) data(n *node, field string) []byte {
	s := d.str(n, field)
	if s == "" {
		return nil
	}
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// The error only gives an offset, never the data.
		d.fail(field, "base64: %w", err)
	}
	return b
}

// mapping returns the mapping at field, or nil if absent or null.
func (d *decoder) mapping(n *node, field string) *node {
	v := n.get(field)
	if v == nil || v.kind == nullNode {
		return nil
	}
	if v.kind != mapNode {
		d.fail(field, "want a mapping, found %s (%s)", v.kind, d.position(v))
		return nil
	}
	return v
}

// seq returns the items of the sequence at field.
func (d *decoder) seq(n *node, field string) []*node {
	v := n.get(field)
	if v == nil || v.kind == nullNode {
		return nil
	}
	if v.kind != seqNode {
		d.fail(field, "want a sequence, found %s (%s)", v.kind, d.position(v))
		return nil
	}
	return v.items
}

// resolve makes a path named in file absolute, as kubectl does.
func resolve(file, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(file), path)
}

// readKubeconfig reads and decodes one file.
func readKubeconfig(path string) (*kubeconfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return decodeKubeconfig(abs, data)
}

// decodeKubeconfig decodes the text of the kubeconfig file at path.
func decodeKubeconfig(path string, data []byte) (*kubeconfig, error) {
	root, err := parseYAML(path, data)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %w", err)
	}
	kc := &kubeconfig{
		clusters: map[string]*cluster{},
		users:    map[string]*user{},
		contexts: map[string]*kcontext{},
	}
	if root.kind == nullNode {
		return kc, nil // kubectl accepts empty files
	}
	if root.kind != mapNode {
		return nil, fmt.Errorf("kubeconfig %s: want a mapping at the top, found %s", path, root.kind)
	}
	d := &decoder{file: path}
	if k := d.str(root, "kind"); k != "" && k != "Config" {
		d.fail("kind", "want Config, found %q", k)
	}
	kc.currentContext = d.str(root, "current-context")

	entries := func(list, item string, each func(name string, n *node, d *decoder)) {
		for i, e := range d.seq(root, list) {
			if d.err != nil {
				return
			}
			if e.kind != mapNode {
				d.fail(fmt.Sprintf("%s[%d]", list, i), "want a mapping, found %s (line %d)", e.kind, e.line)
				return
			}
			name := d.str(e, "name")
			if d.err != nil {
				return
			}
			if name == "" {
				d.fail(fmt.Sprintf("%s[%d]", list, i), "missing name (line %d)", e.line)
				return
			}
			ed := &decoder{file: path, entry: fmt.Sprintf("%s %q", item, name)}
			body := ed.mapping(e, item)
			if body == nil {
				body = &node{kind: mapNode}
			}
			each(name, body, ed)
			if ed.err != nil {
				d.err = ed.err
			}
		}
	}
	entries("clusters", "cluster", func(name string, n *node, d *decoder) {
		if _, dup := kc.clusters[name]; dup {
			d.fail("name", "defined twice")
		}
		kc.clusters[name] = &cluster{
			file:                  path,
			server:                d.str(n, "server"),
			certificateAuthority:  resolve(path, d.str(n, "certificate-authority")),
			caData:                d.data(n, "certificate-authority-data"),
			insecureSkipTLSVerify: d.boolean(n, "insecure-skip-tls-verify"),
			tlsServerName:         d.str(n, "tls-server-name"),
			proxyURL:              d.str(n, "proxy-url"),
		}
	})
	entries("users", "user", func(name string, n *node, d *decoder) {
		if _, dup := kc.users[name]; dup {
			d.fail("name", "defined twice")
		}
		u := &user{
			file:                  path,
			clientCertificate:     resolve(path, d.str(n, "client-certificate")),
			clientCertificateData: d.data(n, "client-certificate-data"),
			clientKey:             resolve(path, d.str(n, "client-key")),
			clientKeyData:         d.data(n, "client-key-data"),
			token:                 d.str(n, "token"),
			tokenFile:             resolve(path, d.str(n, "tokenFile")),
			username:              d.str(n, "username"),
			password:              d.str(n, "password"),
		}
		if ap := d.mapping(n, "auth-provider"); ap != nil {
			u.authProvider = d.str(ap, "name")
			if u.authProvider == "" {
				u.authProvider = "(unnamed)"
			}
		}
		if ex := d.mapping(n, "exec"); ex != nil {
			u.exec = decodeExec(path, ex, d)
		}
		for _, f := range []string{"as", "as-uid", "as-groups", "as-user-extra"} {
			// Set as client-go reads them: empty is not set.
			if v := n.get(f); v != nil && (v.str != "" || len(v.keys) > 0 || len(v.items) > 0) {
				u.impersonate = f
				break
			}
		}
		kc.users[name] = u
	})
	entries("contexts", "context", func(name string, n *node, d *decoder) {
		if _, dup := kc.contexts[name]; dup {
			d.fail("name", "defined twice")
		}
		kc.contexts[name] = &kcontext{
			file:      path,
			cluster:   d.str(n, "cluster"),
			user:      d.str(n, "user"),
			namespace: d.str(n, "namespace"),
		}
	})
	if d.err != nil {
		return nil, d.err
	}
	return kc, nil
}

func decodeExec(path string, n *node, parent *decoder) *execConfig {
	d := &decoder{file: path, entry: parent.entry + ": exec"}
	defer func() {
		if parent.err == nil {
			parent.err = d.err
		}
	}()
	ex := &execConfig{
		apiVersion:         d.str(n, "apiVersion"),
		command:            d.str(n, "command"),
		installHint:        d.str(n, "installHint"),
		provideClusterInfo: d.boolean(n, "provideClusterInfo"),
		interactiveMode:    d.str(n, "interactiveMode"),
	}
	// A command with a path separator is a path, relative to the file;
	// a bare name is looked up in $PATH when it runs.
	if strings.ContainsRune(ex.command, filepath.Separator) {
		ex.command = resolve(path, ex.command)
	}
	for i, a := range d.seq(n, "args") {
		if a.kind != scalarNode {
			d.fail(fmt.Sprintf("args[%d]", i), "want a string, found %s (line %d)", a.kind, a.line)
			continue
		}
		ex.args = append(ex.args, a.str)
	}
	for i, e := range d.seq(n, "env") {
		if e.kind != mapNode {
			d.fail(fmt.Sprintf("env[%d]", i), "want a mapping with name and value, found %s (line %d)", e.kind, e.line)
			continue
		}
		name := d.str(e, "name")
		if name == "" {
			d.fail(fmt.Sprintf("env[%d]", i), "missing name (line %d)", e.line)
		}
		ex.env = append(ex.env, [2]string{name, d.str(e, "value")})
	}
	return ex
}

// merge adds what other sets and kc does not: for every map entry and for
// current-context, the first file that sets it wins, as kubectl merges
// the files of KUBECONFIG.
func (kc *kubeconfig) merge(other *kubeconfig) {
	if kc.currentContext == "" {
		kc.currentContext = other.currentContext
	}
	for k, v := range other.clusters {
		if _, ok := kc.clusters[k]; !ok {
			kc.clusters[k] = v
		}
	}
	for k, v := range other.users {
		if _, ok := kc.users[k]; !ok {
			kc.users[k] = v
		}
	}
	for k, v := range other.contexts {
		if _, ok := kc.contexts[k]; !ok {
			kc.contexts[k] = v
		}
	}
}
