package render

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"text/template"
)

// fxName has a String method on its value, fxPtrName on its pointer.
type fxName string

func (n fxName) String() string { return "name:" + string(n) }

type fxPtrName struct{ v string }

func (n *fxPtrName) String() string { return "ptr:" + n.v }

type fxErr struct{}

func (fxErr) Error() string { return "an error value" }

type fxInner struct {
	Deep   string
	hidden int
}

type fxEmbedded struct{ Promoted string }

type fxData struct {
	S     string
	Empty string
	I     int
	I32   int32
	I8    int8
	U8    uint8
	U     uint
	F     float64
	B     bool
	N     fxName
	PN    fxPtrName
	PNp   *fxPtrName
	Err   fxErr
	Svc   *ServiceInformation
	EP    ServiceEndpoint
	Inner fxInner
	PI    *fxInner
	Nil   *fxInner
	Any   any
	AnyI  any
	NilA  any
	Str   fmt.Stringer
	Sl    []string
	Nodes []Node
	NilSl []string
	Arr   [2]int
	M     map[string]string
	Ch    chan int
	Fn    func() string
	Items []*fxData
	*fxEmbedded
	*fxInner
}

func (d fxData) Value() string              { return "value-method" }
func (d *fxData) Pointer() string           { return "pointer-method" }
func (d fxData) Pair() (int, error)         { return 7, nil }
func (d fxData) Fails() (int, error)        { return 0, errors.New("fails") }
func (d fxData) Panics() string             { panic("boom") }
func (d fxData) WithArg(s string) string    { return s }
func (d fxData) TwoResults() (string, bool) { return "", true }

func fxSample() *fxData {
	child := &fxData{S: "child", I: 2, Sl: []string{"c"}}
	return &fxData{
		S: "text <&>", I: -3, I32: 42, I8: -8, U8: 200, U: 7, F: 2.5, B: true,
		N: "n", PN: fxPtrName{"p"}, PNp: &fxPtrName{"pp"},
		Svc:   &ServiceInformation{serviceValues: &serviceValues{Name: "web", Namespace: "default"}, Port: PortSpec{Port: 80, Protocol: "tcp", Mode: "http"}},
		EP:    ServiceEndpoint{Name: "pod", IP: "fd00::1", Port: 8080},
		Inner: fxInner{Deep: "deep"}, PI: &fxInner{Deep: "pi"},
		Any: "in-any", AnyI: 5, Str: fxName("str"),
		Sl: []string{"a", "b", "c"}, Nodes: []Node{{Name: "n1", Address: "10.0.0.1"}, {Name: "n2", Address: "fd00::2"}},
		Arr: [2]int{4, 5}, M: map[string]string{"k": "v"}, Fn: func() string { return "fn" },
		Items:      []*fxData{child, {S: "second", I: 3}},
		fxEmbedded: &fxEmbedded{Promoted: "promoted"},
	}
}

// TestFastMatchesTemplate runs templates with the fast executor and with
// text/template: where the fast one completes, the output is the same;
// where it gives up, it wrote nothing; where text/template fails, it
// gives up. fast tells which cases must complete, so that the comparison
// cannot pass by giving up on everything.
func TestFastMatchesTemplate(t *testing.T) {
	cases := []struct {
		text string
		fast bool
	}{
		{`plain text`, true},
		{`{{.S}}|{{.Empty}}|{{.I}}|{{.I32}}|{{.I8}}|{{.U8}}|{{.U}}|{{.B}}`, true},
		{`{{.F}}`, true},
		{`{{.N}} {{.PN}} {{.PNp}} {{.Err}} {{.Svc}} {{.EP}} {{.Str}}`, true},
		{`{{.Inner}} {{.Inner.Deep}} {{.PI.Deep}} {{.Arr}} {{.Sl}} {{.M}} {{.NilSl}}`, true},
		{`{{.Any}} {{.AnyI}} {{.NilA}} {{.Nil}}`, true},
		{`{{.Nil.Deep}}`, false},
		{`{{.NilA.X}}`, false},
		{`{{.Missing}}`, false},
		{`written first {{.S}}{{range .Sl}}{{.}}{{end}}{{.Missing}}`, false},
		{`{{.Inner.hidden}}`, false},
		{`{{.Promoted}}`, true},
		{`{{.Deep}}`, false}, // through a nil embedded pointer
		{`{{.Value}} {{.Pointer}} {{.Pair}}`, true},
		{`{{.Fails}}`, false},
		{`{{.Panics}}`, false},
		{`{{.WithArg}}`, false},
		{`{{.WithArg "x"}}`, false},
		{`{{.TwoResults}}`, false},
		{`{{.Fn}}`, false},
		{`{{.Ch}}`, false},
		{`{{.M.k}}`, false},
		{`{{.}}`, true},
		{`{{$}}{{$.S}}`, true},
		{`{{$x := .S}}{{$x}}{{$x = "y"}}{{$x}}`, true},
		{`{{if .B}}yes{{else}}no{{end}} {{if .Empty}}yes{{else if .I}}elif{{end}}`, true},
		{`{{if .NilSl}}x{{end}}{{if .Sl}}s{{end}}{{if .M}}m{{end}}{{if .Nil}}n{{end}}{{if .Inner}}i{{end}}{{if .F}}f{{end}}{{if .NilA}}a{{end}}`, true},
		{`{{with .PI}}{{.Deep}}{{end}}{{with .Nil}}x{{else}}none{{end}}{{with $y := .S}}{{$y}}{{end}}`, true},
		{`{{range .Sl}}[{{.}}]{{end}}{{range $i, $v := .Sl}}{{$i}}={{$v}};{{end}}{{range $v := .Arr}}{{$v}}{{end}}`, true},
		{`{{range .NilSl}}x{{else}}empty{{end}}{{range .NilA}}x{{else}}nil{{end}}`, true},
		{`{{range .Nil}}x{{else}}nil{{end}}`, false},
		{`{{range $n := .Nodes}}server {{$n.Name}} {{$n.BracketedAddress}}{{$n}} {{JoinHostPort $n 80}}{{end}}`, true},
		{`{{range .Items}}{{.S}}:{{range .Sl}}{{.}}{{end}};{{end}}`, true},
		{`{{range $i, $it := .Items}}{{$i}}{{$it.S}}{{$.S}}{{end}}`, true},
		{`{{range .M}}{{.}}{{end}}`, false},
		{`{{range 3}}{{.}}{{end}}`, false},
		{`{{range .Sl}}{{break}}{{end}}`, false},
		{`{{range $x = .Sl}}{{end}}`, false},
		{`{{eq .S "text <&>"}} {{eq .I -3}} {{eq .I32 42}} {{eq .B true}} {{eq .S "a" "b" "text <&>"}}`, true},
		{`{{ne .S "x"}} {{lt .I 0}} {{le .I32 42}} {{gt .F 2.0}} {{ge .U 7}} {{lt "a" "b"}}`, false}, // 2.0 is a float constant
		{`{{ne .S "x"}} {{lt .I 0}} {{le .I32 42}} {{gt .I8 -9}} {{lt "a" "b"}}`, true},
		{`{{eq .I .U}}`, false},
		// Every argument is evaluated, even after an equal one.
		{`{{eq .S "text <&>" .Missing}}`, false},
		{`{{eq .I -3 .Fails}}`, false},
		{`{{eq .I -3 .Nil.Deep}}`, false},
		{`{{if eq .S "text <&>" .Panics}}y{{end}}`, false},
		{`{{eq .S "text <&>" "x" "y" "z" .S}}`, true},
		{`{{eq .U8 200}}`, false}, // text/template compares an int with a uint; this one gives up
		{`{{eq .S 1}}`, false},
		{`{{lt .B .B}}`, false},
		{`{{eq .Nil .Nil}}`, false},
		{`{{eq .Any "in-any"}} {{eq .AnyI 5}}`, true},
		{`{{and .B .S}} {{and .Empty .Missing}} {{or .Empty .I}} {{or .Empty ""}} {{not .B}} {{not .Empty}}`, true},
		{`{{or .B .Missing}} {{and .NilA .B}}`, true}, // short-circuit
		{`{{and .B .Missing}}`, false},
		{`{{len .Sl}} {{len .S}} {{len .M}} {{len .Arr}}`, true},
		{`{{len .I}}`, false},
		{`{{index .Sl 1}} {{index .Arr 0}} {{index .Items 1 | print}}`, false}, // a pipe
		{`{{index .Sl 1}} {{index .Arr 0}} {{(index .Items 1).S}}`, false},     // a chain
		{`{{index .Sl 1}} {{index .Arr 0}} {{index .S 0}} {{$it := index .Items 1}}{{$it.S}}`, true},
		{`{{index .Sl 3}}`, false},
		{`{{index .M "k"}}`, false},
		{`{{EscapeNode .EP.IP}} {{ToLower .N}} {{ToUpper .S}} {{Add .I .I32 1}} {{JoinHostPort .EP.IP .EP.Port}}`, true},
		{`{{Add .S}}`, false},
		{`{{EscapeNode .NilA}}`, true},
		{`{{if (eq .I -3)}}{{(len .Sl)}}{{end}}`, true},
		{`{{printf "%d" .I}}`, false},
		{`{{.S | printf "%s"}}`, false},
		{`{{template "x"}}{{define "x"}}x{{end}}`, false},
		{`{{/* comment */}}{{- .S -}}  `, true},
	}
	data := fxSample()
	for _, c := range cases {
		tmpl, err := template.New("t").Funcs(funcs).Parse(c.text)
		if err != nil {
			t.Fatalf("%s: %v", c.text, err)
		}
		var want bytes.Buffer
		wantErr := tmpl.Execute(&want, data)
		prog := compileFast(tmpl.Tree, funcs)
		got := bytes.NewBufferString("prefix:")
		ok := prog != nil && prog.exec(got, data)
		switch {
		case ok && wantErr != nil:
			t.Errorf("%s: fast completed with %q, text/template failed: %v", c.text, got, wantErr)
		case ok && got.String() != "prefix:"+want.String():
			t.Errorf("%s:\nfast          %q\ntext/template %q", c.text, strings.TrimPrefix(got.String(), "prefix:"), want.String())
		case !ok && got.String() != "prefix:":
			t.Errorf("%s: gave up but left %q", c.text, got)
		}
		if ok != c.fast {
			t.Errorf("%s: fast completed: %v, want %v (text/template: %q, %v)", c.text, ok, c.fast, want.String(), wantErr)
		}
	}
}

// TestFastComparisons compares every comparison of every pair of a set of
// operands with text/template's.
func TestFastComparisons(t *testing.T) {
	operands := []string{`.S`, `.Empty`, `.I`, `.I32`, `.I8`, `.U8`, `.U`, `.F`, `.B`, `.N`, `.Any`, `.AnyI`, `.NilA`,
		`.Nil`, `.Sl`, `"text <&>"`, `""`, `"b"`, `0`, `-3`, `42`, `200`, `true`, `false`, `.Inner`, `.Svc`}
	completed := 0
	data := fxSample()
	for _, fn := range []string{"eq", "ne", "lt", "le", "gt", "ge", "and", "or"} {
		for _, a := range operands {
			for _, b := range operands {
				text := fmt.Sprintf("{{%s %s %s}}", fn, a, b)
				tmpl := template.Must(template.New("t").Funcs(funcs).Parse(text))
				var want bytes.Buffer
				wantErr := tmpl.Execute(&want, data)
				var got bytes.Buffer
				prog := compileFast(tmpl.Tree, funcs)
				if prog == nil {
					t.Fatalf("%s: not compiled", text)
				}
				ok := prog.exec(&got, data)
				switch {
				case ok && wantErr != nil:
					t.Errorf("%s: fast completed with %q, text/template failed: %v", text, got.String(), wantErr)
				case ok && got.String() != want.String():
					t.Errorf("%s: fast %q, text/template %q", text, got.String(), want.String())
				case !ok && got.Len() != 0:
					t.Errorf("%s: gave up but left %q", text, got.String())
				}
				if ok {
					completed++
				}
			}
		}
	}
	// Same-kind comparisons of strings and integers complete at least.
	if completed < 300 {
		t.Errorf("only %d comparisons completed", completed)
	}
}

// TestFastGivesUpForGood checks that a body that keeps giving up is left
// to text/template, even one that completed a few times, and that one
// that completes often enough is not.
func TestFastGivesUpForGood(t *testing.T) {
	tmpl := template.Must(template.New("t").Parse(`{{if .}}{{.Missing}}{{else}}ok{{end}}`))
	prog := compileFast(tmpl.Tree, funcs)
	for range fastGiveUp {
		if prog.exec(new(bytes.Buffer), fxSample()) {
			t.Fatal("completed")
		}
	}
	if prog.exec(new(bytes.Buffer), (*fxData)(nil)) {
		t.Errorf("ran after %d failures without a success", fastGiveUp)
	}
	// Completing one time in five or more keeps it.
	prog = compileFast(tmpl.Tree, funcs)
	for range 10 {
		if !prog.exec(new(bytes.Buffer), (*fxData)(nil)) {
			t.Fatal("did not complete")
		}
		for range fastGiveUpRatio {
			prog.exec(new(bytes.Buffer), fxSample())
		}
	}
	if !prog.exec(new(bytes.Buffer), (*fxData)(nil)) {
		t.Errorf("a body that completes one time in %d was given up", fastGiveUpRatio+1)
	}
	// Completing once, then giving up again and again, does not.
	prog = compileFast(tmpl.Tree, funcs)
	if !prog.exec(new(bytes.Buffer), (*fxData)(nil)) {
		t.Fatal("did not complete")
	}
	for range 100 {
		prog.exec(new(bytes.Buffer), fxSample())
	}
	if prog.exec(new(bytes.Buffer), (*fxData)(nil)) {
		t.Errorf("ran after %d failures and one success", 100)
	}
}

// TestFastRunsExamples checks that the bodies of the shipped HAProxy
// examples' backends run on the fast executor, without giving up.
func TestFastRunsExamples(t *testing.T) {
	// The ranges left to text/template: the listeners', whose bodies
	// call $.HostRules or $.PortServices (the memo's own range calls), one
	// per port. Anything per service there costs start-up and memory at
	// scale: an unsupported builtin (slice) in the HAProxy example's
	// backends took make bench's nodes case from 0.5 to 1.3 s to its first
	// configuration. Caddy's sites are an exception: their body calls
	// {{ template "proxy" }}.
	for name, want := range map[string]struct {
		slow []int // range ids
		ran  int64 // at least
	}{
		// 100 services × 3 ports: one body each, and the host rules.
		"haproxy/haproxy.cfg.tmpl":           {[]int{0}, 300},
		"haproxy/haproxy-endpoints.cfg.tmpl": {[]int{0}, 300},
		"nginx/nginx.conf.tmpl":              {[]int{2, 5}, 300},
		"caddy/Caddyfile.tmpl":               {[]int{0, 1}, 0},
	} {
		tmpl, err := ParseTemplate("../examples/" + name)
		if err != nil {
			t.Fatal(err)
		}
		r := newTestRenderer(t, testOptions())
		if _, err := r.Render(tmpl, withEndpoints(bigSnapshot(100, 10), 3)); err != nil {
			t.Fatal(err)
		}
		var ran int64
		for _, mr := range tmpl.memo.ranges {
			if mr.fast == nil {
				if !slices.Contains(want.slow, mr.id) {
					t.Errorf("%s: range %d is not compiled for the fast executor", name, mr.id)
				}
				continue
			}
			ran += mr.fast.ran.Load()
			if n := mr.fast.bailed.Load(); n > 0 {
				t.Errorf("%s: range %d gave up %d times", name, mr.id, n)
			}
		}
		if ran < want.ran {
			t.Errorf("%s: %d bodies ran on the fast executor, want at least %d", name, ran, want.ran)
		}
	}
}

// TestServiceInformationString checks the hand-built String against the
// Sprintf it replaced.
func TestServiceInformationString(t *testing.T) {
	for _, s := range []ServiceInformation{
		{},
		{serviceValues: &serviceValues{Name: "web", Namespace: "default"}, Port: PortSpec{Port: 443, Protocol: "tcp", Mode: "http"}},
		{serviceValues: &serviceValues{Name: "ünï", Namespace: "x_y"}, Port: PortSpec{Port: -1, Protocol: "udp", Mode: ""}},
		{serviceValues: &serviceValues{Name: strings.Repeat("n", 63), Namespace: strings.Repeat("s", 63)}, Port: PortSpec{Port: 2147483647, Protocol: "sctp", Mode: "tcp"}},
	} {
		var v serviceValues // the zero value prints as a port without a service
		if s.serviceValues != nil {
			v = *s.serviceValues
		}
		want := fmt.Sprintf("%s_%s_%d_%s_%s", v.Name, v.Namespace, s.Port.Port, s.Port.Protocol, s.Port.Mode)
		if got := s.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// FuzzFastMatchesTemplate runs templates with the fast executor and with
// text/template: where the fast one completes, text/template succeeds with
// the same output; where it gives up, it wrote nothing.
func FuzzFastMatchesTemplate(f *testing.F) {
	for _, s := range []string{
		`{{range $i, $n := .Nodes}}{{$i}} {{$n.Name}} {{if eq $n.Address "fd00::2"}}v6{{else}}v4{{end}}{{end}}`,
		`{{with .PI}}{{.Deep}}{{end}}{{and .B .S}}{{or .Empty .I}}{{not .B}}{{len .Sl}}{{index .Sl 1}}`,
		`{{if lt .I32 43}}{{.Svc}}{{end}}{{EscapeNode .EP.IP}}{{.EP}}{{.N}}{{.PN}}{{.Any}}{{.Pair}}`,
		`{{range .Items}}{{.S}}{{range .Sl}}{{.}}{{else}}none{{end}}{{end}}{{$x := .S}}{{$x = "y"}}{{$x}}`,
	} {
		f.Add(s)
	}
	data := fxSample()
	f.Fuzz(func(t *testing.T, text string) {
		// Loops text/template would run long: ranges over numbers,
		// recursion.
		if len(text) > 400 || strings.Contains(text, "template") || strings.Contains(text, "block") {
			return
		}
		for i := 0; i+3 < len(text); i++ {
			if isDigits(text[i : i+4]) {
				return
			}
		}
		tmpl, err := template.New("t").Funcs(funcs).Parse(text)
		if err != nil || tmpl.Tree == nil {
			return
		}
		var want bytes.Buffer
		wantErr := tmpl.Execute(&want, data)
		prog := compileFast(tmpl.Tree, funcs)
		if prog == nil {
			return
		}
		got := bytes.NewBufferString("prefix:")
		ok := prog.exec(got, data)
		switch {
		case ok && wantErr != nil:
			t.Errorf("%s: fast completed with %q, text/template failed: %v", text, got, wantErr)
		case ok && got.String() != "prefix:"+want.String():
			t.Errorf("%s:\nfast          %q\ntext/template %q", text, strings.TrimPrefix(got.String(), "prefix:"), want.String())
		case !ok && got.String() != "prefix:":
			t.Errorf("%s: gave up but left %q", text, got)
		}
	})
}

func isDigits(s string) bool {
	return strings.Trim(s, "0123456789") == ""
}
