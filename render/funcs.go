package render

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"reflect"
	"strconv"
	"strings"
	"text/template"
)

// funcs are the functions every template can call. Functions that take a
// string take any value and use its printed form, so that a Node, a
// ServerName or an int32 field can be passed as the original's strings were.
var funcs = template.FuncMap{
	"ServerNames":  serverNames,
	"EscapeNode":   escapeNode,
	"IntRange":     intRange,
	"Add":          add,
	"ToLower":      func(v any) string { return strings.ToLower(toString(v)) },
	"ToUpper":      func(v any) string { return strings.ToUpper(toString(v)) },
	"JoinHostPort": joinHostPort,
}

// nameFuncs are the functions of server-name templates: all but
// ServerNames, which would call the template itself.
var nameFuncs = func() template.FuncMap {
	m := template.FuncMap{}
	for k, v := range funcs {
		if k != "ServerNames" {
			m[k] = v
		}
	}
	return m
}()

var nodeNameReplacer = strings.NewReplacer(".", "_", ":", "_")

// escapeNode replaces . and : with _, making a node name or address usable
// as an identifier.
func escapeNode(v any) string { return nodeNameReplacer.Replace(toString(v)) }

// maxIntRange bounds IntRange so that a template mistake cannot exhaust memory.
const maxIntRange = 1 << 20

// intRange returns initial + i*step for i in [0, n). The original returned a
// channel; a slice ranges the same way and also works with len and index.
func intRange(n, initial, step int) ([]int, error) {
	if n > maxIntRange {
		return nil, fmt.Errorf("IntRange: %d elements is more than %d", n, maxIntRange)
	}
	s := make([]int, 0, max(n, 0))
	for i := 0; i < n; i++ {
		s = append(s, initial+i*step)
	}
	return s, nil
}

// add returns the sum of integers of any integer type.
func add(vs ...any) (int, error) {
	sum := 0
	for _, v := range vs {
		n, err := toInt(v)
		if err != nil {
			return 0, fmt.Errorf("Add: %w", err)
		}
		sum += n
	}
	return sum, nil
}

// joinHostPort returns host:port, with an IPv6 host in brackets. host may
// be a string, a net.IP, a Node (its Address) or anything that prints;
// port any integer or a string.
func joinHostPort(host, port any) (string, error) {
	var h string
	switch v := host.(type) {
	case Node:
		h = v.Address
	case *Node:
		h = v.Address
	default:
		h = toString(v)
	}
	var p string
	switch v := port.(type) {
	case string:
		p = v
	default:
		n, err := toInt(v)
		if err != nil {
			return "", fmt.Errorf("JoinHostPort: %w", err)
		}
		p = strconv.Itoa(n)
	}
	return net.JoinHostPort(h, p), nil
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

func toInt(v any) (int, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt {
			return 0, fmt.Errorf("%d overflows int", u)
		}
		return int(u), nil
	case reflect.String:
		return strconv.Atoi(rv.String())
	}
	return 0, fmt.Errorf("%v (%T) is not an integer", v, v)
}

// serverNames returns the service port's server names: each
// -server-name-templates entry executed with {Service, Domain}, then the
// kube2lb/external-domains entries, without duplicates and without the
// names an older service owns on the same port (see ownership.go). The
// model computes them with .Domain before the template runs; other
// domains are computed at every call and not stored, so that templates
// executing concurrently only ever read a nameSet.
func serverNames(s ServiceInformation, domain string) ([]ServerName, error) {
	return serverNamesOf(&s, domain)
}

// serverNamesOf is serverNames without copying the service.
func serverNamesOf(s *ServiceInformation, domain string) ([]ServerName, error) {
	if s.names == nil {
		return appendNames(nil, nil, s.values().External), nil
	}
	if s.names.done && s.names.src.domain == domain {
		return s.names.names, s.names.err
	}
	names, err := computeServerNames(s.names.src, *s, domain, nil)
	return s.names.keep(names), err
}

// computeServerNames runs the name templates for s and appends its
// external domains. A name a template made that generatedNameProblem
// refuses is dropped, with a warning in w when w is not nil.
func computeServerNames(src *nameSource, s ServiceInformation, domain string, w *warnings) ([]ServerName, error) {
	generated := make([]string, 0, len(src.templates))
	var buf bytes.Buffer
	for i, t := range src.templates {
		buf.Reset()
		data := struct {
			Service ServiceInformation
			Domain  string
		}{s, domain}
		if i >= len(src.fast) || src.fast[i] == nil || !src.fast[i].exec(&buf, data) {
			if err := t.Execute(&buf, data); err != nil {
				return nil, fmt.Errorf("server name template %q: %w", t.Root.String(), err)
			}
		}
		if buf.Len() == 0 {
			continue
		}
		n := buf.String()
		if why := generatedNameProblem(n, s.Namespace, domain); why != "" {
			if w != nil {
				w.add("service %s/%s: server name %s from -server-name-templates dropped: %s", s.Namespace, s.Name, quote(n), why)
			}
			continue
		}
		generated = append(generated, n)
	}
	return appendNames(nil, generated, s.External), nil
}

func appendNames(dst []ServerName, lists ...[]string) []ServerName {
	seen := make(map[string]bool)
	for _, l := range lists {
		for _, n := range l {
			if n == "" || seen[n] {
				continue
			}
			seen[n] = true
			dst = append(dst, ServerName(n))
		}
	}
	return dst
}
