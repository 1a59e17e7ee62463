package render

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/kube2lb/kube2lb/kubeapi"
)

// memoTemplates are templates that exercise what the incremental
// execution must get right, beside the examples and testdata.
var memoTemplates = map[string]string{
	"index":      `{{range $i, $s := .Services}}{{$i}}:{{$s.Name}} {{end}}`,
	"else":       `{{range .Services}}{{.Name}}{{else}}none{{end}}|{{range .Ports}}{{.}}{{else}}no ports{{end}}`,
	"assign":     `{{$x := 0}}{{range .Services}}{{$x = .NodePort}}{{end}}{{$x}}`,
	"break":      `{{range .Services}}{{if eq .Name "db"}}{{break}}{{end}}{{.Name}}{{end}}`,
	"continue":   `{{range .Services}}{{range .Endpoints}}{{if eq .Port 8080}}{{continue}}{{end}}{{.}}{{end}}{{.Name}};{{end}}`,
	"root":       `{{range .Services}}{{$.Domain}} {{len $.Nodes}} {{range $.Nodes}}{{.}}{{end}};{{end}}`,
	"root-bare":  `{{range .Services}}{{len $.Services}}{{with $}}{{.Domain}}{{end}};{{end}}`,
	"root-meth":  `{{range .Ports}}{{range $.PortServices .}}{{.Name}}{{end}};{{end}}`,
	"define":     `{{range .Services}}{{template "x" .}}{{end}}{{define "x"}}{{.Name}}[{{range .Endpoints}}{{.}} {{end}}]{{end}}`,
	"map":        `{{range (index .Services 0).Labels}}{{.}}{{end}}{{range $k, $v := (index .Services 0).Annotations}}{{$k}}={{$v}}{{end}}`,
	"int":        `{{range 3}}{{.}}{{end}}{{range $i := IntRange 3 1 2}}{{$i}}{{end}}`,
	"with-var":   `{{with $d := .Domain}}{{range $.Services}}{{$d}}/{{.Name}} {{end}}{{end}}`,
	"shadow":     `{{$s := "outer"}}{{range $s := .Services}}{{$s.Name}}{{end}}{{$s}}`,
	"late-decl":  `{{$n := "o"}}{{range .Services}}{{$n}}{{$n := .Name}}{{$n}};{{end}}`,
	"inner-set":  `{{range .Services}}{{$first := true}}{{range .External}}{{if not $first}},{{end}}{{.}}{{$first = false}}{{end}};{{end}}`,
	"strings":    `{{range .Services}}{{range .External}}{{if .}}{{.}}{{end}}{{end}}{{end}}`,
	"nested-if":  `{{if .Services}}{{range .Services}}{{.Port}} {{.Port.IP}}{{end}}{{end}}`,
	"addr":       `{{range .Services}}{{if .Endpoints}}{{printf "%T" .Endpoints}}{{end}}{{end}}`,
	"names":      `{{$domain := .Domain}}{{range $service := .Services}}{{range ServerNames $service $domain}} {{.}}{{end}}{{range ServerNames $service "other.domain"}} {{.}}{{end}};{{end}}`,
	"two-loops":  `{{range .Services}}{{.Name}}{{end}}{{range .Services}}{{.Namespace}}{{end}}{{range .Nodes}}{{.Address}}{{end}}`,
	"host-rules": `{{range $p := .Ports}}{{range $r := $.HostRules $p}}{{$r.Service}} {{$r.Name}};{{end}}{{end}}`,
	// From the review of memo.go: an error in a nested range, one in a
	// {{define}}d template, a variable declared in parentheses, a
	// continue in the else of an inner range.
	"nested-err": `{{range .Services}}{{.Name}}{{range .External}}{{index . 100}}{{end}}{{end}}`,
	"define-err": `{{range .Services}}{{template "x" .}}{{end}}{{define "x"}}{{.Name}}{{index .Endpoints 9}}{{end}}`,
	"paren-decl": `{{range .Services}}{{print ($y := .Name)}}/{{$y}};{{end}}`,
	// A nested range in a range run whole (over a number): its output is
	// returned as a string, there being no entry to splice it into.
	"whole-nested":  `{{range $i := 2}}{{$i}}:{{range $.Services}}{{.Name}},{{end}};{{end}}`,
	"else-continue": `{{$n := 0}}{{range .Services}}{{$n = 1}}{{.Name}}:{{range .External}}{{.}},{{else}}{{continue}}{{end}}!{{end}}`,
}

// memoSnapshots are cluster states that render differently.
func memoSnapshots(t *testing.T) []kubeapi.Snapshot {
	golden := loadSnapshot(t, "testdata/cluster.json")
	small := withEndpoints(bigSnapshot(12, 4), 2)
	fewer := small
	fewer.Services = small.Services[:7]
	// The same listeners with other host names: .Ports is shared with
	// the previous model, HostRules are not.
	renamed := golden
	renamed.Services = slices.Clone(golden.Services)
	renamed.Services[0] = annotated(renamed.Services[0], AnnotationExternalDomains, "www.example.com")
	renamed.Services[1] = annotated(renamed.Services[1], AnnotationExternalDomains, "www.example.com")
	// Listeners with more than minNested host names, and one change.
	big := withEndpoints(bigSnapshot(120, 3), 2)
	bigger := big
	bigger.Services = slices.Clone(big.Services)
	bigger.Services[7] = annotated(bigger.Services[7], AnnotationExternalDomains, "www.example.com")
	// A node more: every port gets new backends (the model rebases).
	moreNodes := renamed
	moreNodes.Nodes = append(slices.Clone(renamed.Nodes), readyNode("node-extra", "10.9.9.9"))
	return []kubeapi.Snapshot{golden, renamed, golden, renamed, moreNodes, renamed, small, fewer, {}, big, bigger, big, golden}
}

// plainAndMemo returns the template's plain (text/template) and
// incremental executions.
func plainAndMemo(t *testing.T, name, text string) (*template.Template, *memoSet) {
	t.Helper()
	plain, err := template.New(name).Funcs(funcs).Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMemoSet(plain, reflect.TypeFor[*ClusterInformation]())
	if err != nil {
		t.Fatal(err)
	}
	return plain, m
}

// TestMemoMatchesPlain renders every template of the project and the
// templates above over a sequence of cluster states with one incremental
// execution, which reuses bodies from one state to the next, and checks
// that every output and error is what text/template writes.
func TestMemoMatchesPlain(t *testing.T) {
	texts := map[string]string{}
	for k, v := range memoTemplates {
		texts[k] = v
	}
	for _, pattern := range []string{"testdata/*.tmpl", "../examples/*/*.tmpl"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			texts[f] = string(readTestFile(t, f))
		}
	}
	snaps := memoSnapshots(t)
	r := newTestRenderer(t, testOptions())
	memoised := 0
	defer func(n int, c int64) { minNested, spillCompactMin = n, c }(minNested, spillCompactMin)
	// With a spill file, compacted whenever it holds more garbage than
	// live outputs.
	spillCompactMin = 0
	for _, c := range []struct {
		minNested int
		spill     bool
	}{{64, false}, {1, false}, {1, true}} {
		minNested = c.minNested
		for name, text := range texts {
			t.Run(fmt.Sprintf("%s/minNested=%d/spill=%v", name, c.minNested, c.spill), func(t *testing.T) {
				plain, m := plainAndMemo(t, name, text)
				if m == nil {
					t.Logf("no range of %s is memoised", name)
					return
				}
				if c.spill {
					m.useSpillDir(t.TempDir())
					t.Cleanup(func() { m.mu.Lock(); m.mu.Unlock() }) // the last sweep, which may compact
				}
				memoised++
				// Twice over, so that the second pass reuses bodies.
				for i, snap := range append(snaps, snaps...) {
					info, _ := r.Model(snap)
					var want, got bytes.Buffer
					werr := plain.Execute(&want, info)
					gerr := m.execute(&got, info)
					// The same error, and the element a body failed for.
					if w, g := fmt.Sprint(werr), fmt.Sprint(gerr); g != w && (werr == nil || !strings.HasPrefix(g, w+" (for ")) {
						t.Fatalf("state %d: error %v, want %v", i, gerr, werr)
					}
					if werr != nil {
						continue
					}
					if diff := cmp.Diff(want.String(), got.String()); diff != "" {
						t.Fatalf("state %d: output differs (-plain +memo):\n%s", i, diff)
					}
				}
				if err := m.spillError(); err != nil {
					t.Errorf("spill: %v", err)
				}
			})
		}
	}
	if memoised < len(texts) {
		t.Errorf("only %d of %d templates have a memoised range", memoised, len(texts))
	}
}

func readTestFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMemoRanges checks which ranges are executed incrementally.
func TestMemoRanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		want int // memoised ranges
	}{
		{"index", 1},
		{"else", 2},
		{"assign", 0},
		{"break", 0},
		{"continue", 1},
		{"root", 2},      // $.Domain and $.Nodes are fields of the root; the range inside
		{"root-bare", 0}, // $ itself
		{"root-meth", 1}, // the outer body calls $.PortServices: only the inner range
		{"define", 1},    // not the range inside "x"
		{"two-loops", 3},
		{"else-continue", 0}, // the outer assigns $n; the inner's else continues the outer
		{"host-rules", 2},    // the outer range calls $.HostRules of its element; the inner
		{"../examples/haproxy/haproxy-endpoints.cfg.tmpl", 5}, // with the acl lines of a backend's source ranges
		{"../examples/nginx/nginx.conf.tmpl", 7},              // with the source ranges of an http and a stream server
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, ok := memoTemplates[tc.name]
			if !ok {
				text = string(readTestFile(t, tc.name))
			}
			_, m := plainAndMemo(t, tc.name, text)
			got := 0
			if m != nil {
				got = len(m.ranges)
			}
			if got != tc.want {
				t.Errorf("%d memoised ranges, want %d", got, tc.want)
			}
		})
	}
}

// TestMemoReuse checks that a second execution over an unchanged model
// runs no body, and that one changed service runs only its own.
func TestMemoReuse(t *testing.T) {
	tmpl, err := ParseTemplate("../examples/haproxy/haproxy-endpoints.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.memo == nil {
		t.Fatal("the HAProxy example is not executed incrementally")
	}
	snap := withEndpoints(bigSnapshot(50, 5), 3)
	info, _ := newTestRenderer(t, testOptions()).Model(snap)
	var first, second bytes.Buffer
	if err := tmpl.execute(&first, info); err != nil {
		t.Fatal(err)
	}
	// The first execution is text/template's; the cache fills after it.
	tmpl.memo.mu.Lock()
	s := tmpl.memo.last
	tmpl.memo.mu.Unlock()
	if s.ran == 0 {
		t.Fatalf("cache filled after the first execution: %+v, want bodies run", s)
	}
	if err := tmpl.execute(&second, info); err != nil {
		t.Fatal(err)
	}
	if s := tmpl.memo.last; s.ran != 0 || s.reused == 0 {
		t.Errorf("same model again: %+v, want every body reused", s)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Error("same model, different output")
	}
	// One service port changes: only its body runs again.
	changed := *info
	changed.Services = slices.Clone(info.Services)
	changeService(changed.Services, 3, func(s *ServiceInformation) { s.Timeout = 1234 })
	var third bytes.Buffer
	if err := tmpl.execute(&third, &changed); err != nil {
		t.Fatal(err)
	}
	if s := tmpl.memo.last; s.ran != 1 {
		t.Errorf("one service port changed: %+v, want 1 body run", s)
	}
	// The others are found by position, without their keys.
	if s := tmpl.memo.last; s.byPosition != len(info.Services)-1 {
		t.Errorf("one service port changed: %+v, want %d found by position", s, len(info.Services)-1)
	}
	var want bytes.Buffer
	if err := tmpl.tmpl.Execute(&want, &changed); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.String(), third.String()); diff != "" {
		t.Errorf("after a change (-plain +memo):\n%s", diff)
	}
}

// changeService replaces ss[i] with a changed copy of a new fingerprint,
// as the model changes a service port: it never writes to what it
// published.
func changeService(ss []*ServiceInformation, i int, change func(*ServiceInformation)) {
	s := *ss[i]
	change(&s)
	s.fp = nextFingerprint()
	ss[i] = &s
}

// TestMemoEviction checks that the cache holds the entries in use and no
// others after each execution: an entry keeps alive what its key points
// to (for a listener's body, its views and host rules).
func TestMemoEviction(t *testing.T) {
	plain, m := plainAndMemo(t, "evict.tmpl", `{{range .Services}}{{.Name}} {{.Timeout}};{{end}}`)
	if m == nil {
		t.Fatal("range not memoised")
	}
	info, _ := newTestRenderer(t, testOptions()).Model(bigSnapshot(100, 1))
	live := len(info.Services)
	for step := range 20 {
		changed := *info
		changed.Services = slices.Clone(info.Services)
		for i := range 3 {
			changeService(changed.Services, (step*3+i)%live, func(s *ServiceInformation) { s.Timeout = step })
		}
		info = &changed
		var want, got bytes.Buffer
		if err := plain.Execute(&want, info); err != nil {
			t.Fatal(err)
		}
		if err := m.execute(&got, info); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("step %d: output differs from text/template's", step)
		}
		m.mu.Lock() // the sweep, done
		n := len(m.entries)
		m.mu.Unlock()
		if n != live {
			t.Fatalf("step %d: %d entries for %d service ports", step, n, live)
		}
	}
}

// TestMemoErrors checks that an error in a body is reported as
// text/template reports it, naming the user's template, and the element
// it failed for (text/template does not say which), and that the first
// error in output order wins.
func TestMemoErrors(t *testing.T) {
	text := "{{range .Services}}{{.Name}}\n{{index .Endpoints 2}}\n{{end}}{{index .Nodes 99}}"
	plain, m := plainAndMemo(t, "errors.tmpl", text)
	if m == nil {
		t.Fatal("range not memoised")
	}
	snap := withEndpoints(bigSnapshot(5, 2), 3)
	snap.EndpointSlices = snap.EndpointSlices[:3] // services 3 and 4 have no endpoints
	info, _ := newTestRenderer(t, testOptions()).Model(snap)
	var want, got bytes.Buffer
	werr := plain.Execute(&want, info)
	gerr := m.execute(&got, info)
	if werr == nil || gerr == nil || gerr.Error() != werr.Error()+" (for svc-00003_ns-3_80_tcp_http)" {
		t.Fatalf("error %v, want %v and the service port", gerr, werr)
	}
	if !strings.Contains(gerr.Error(), `executing "errors.tmpl"`) {
		t.Errorf("error %v does not name the template", gerr)
	}
	if got.Len() != 0 {
		t.Errorf("wrote %d bytes on error", got.Len())
	}
	// The failing bodies are not kept: the same state fails again.
	if err := m.execute(&got, info); err == nil || err.Error() != gerr.Error() {
		t.Errorf("second execution: %v, want %v", err, gerr)
	}
}

// TestModelMethodSets guards an assumption of the incremental execution:
// a value it hands a body is addressable where text/template's might not
// be, which matters only for methods with pointer receivers. Calling one
// can only make a template that fails succeed (such as net.IP's
// UnmarshalText), but printing through one would change the output: no
// type a template can reach from the model has a String or Error method
// with a pointer receiver.
func TestModelMethodSets(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var check func(reflect.Type)
	check = func(typ reflect.Type) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		if typ.Name() != "" && typ.Kind() != reflect.Pointer && typ.Kind() != reflect.Interface {
			for _, name := range []string{"String", "Error"} {
				_, val := typ.MethodByName(name)
				_, ptr := reflect.PointerTo(typ).MethodByName(name)
				if ptr && !val {
					t.Errorf("%v has a %s method with a pointer receiver", typ, name)
				}
			}
		}
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			check(typ.Elem())
		case reflect.Map:
			check(typ.Key())
			check(typ.Elem())
		case reflect.Struct:
			for i := range typ.NumField() {
				if f := typ.Field(i); f.IsExported() {
					check(f.Type)
				}
			}
		}
		for i := range typ.NumMethod() {
			m := typ.Method(i).Type
			for j := range m.NumOut() {
				check(m.Out(j))
			}
		}
	}
	root := reflect.TypeFor[ClusterInformation]()
	seen[root] = true
	for i := range root.NumField() {
		if f := root.Field(i); f.IsExported() {
			check(f.Type)
		}
	}
	ptr := reflect.TypeFor[*ClusterInformation]()
	for i := range ptr.NumMethod() {
		m := ptr.Method(i).Type
		for j := range m.NumOut() {
			check(m.Out(j))
		}
	}
	for _, f := range funcs {
		ft := reflect.TypeOf(f)
		for j := range ft.NumOut() {
			check(ft.Out(j))
		}
	}
}

// BenchmarkRenderOneChange renders, alternately, two cluster states that
// differ in one Service (10,000 services × 3 ports): the cost of a change
// with `-wait 0`. "plain" executes the template with text/template alone.
func BenchmarkRenderOneChange(b *testing.B) {
	for _, tc := range []struct {
		name, template string
		snap           kubeapi.Snapshot
	}{
		{"endpoints", "../examples/haproxy/haproxy-endpoints.cfg.tmpl", withEndpoints(bigSnapshot(10000, 1000), 3)},
		{"nodes=50", "../examples/haproxy/haproxy.cfg.tmpl", bigSnapshot(10000, 50)},
	} {
		changed := tc.snap
		changed.Services = append([]*kubeapi.Service(nil), tc.snap.Services...)
		svc := *changed.Services[5000]
		svc.Metadata.Annotations = kubeapi.Pairs{{Key: AnnotationBackendTimeout, Value: `{"http": 1000}`}}
		changed.Services[5000] = &svc
		// spilled: memo, with the cache's outputs in a spill file.
		for _, mode := range []string{"memo", "spilled", "plain"} {
			b.Run(tc.name+"/"+mode, func(b *testing.B) {
				tmpl, err := ParseTemplate(tc.template)
				if err != nil {
					b.Fatal(err)
				}
				if mode == "plain" {
					tmpl.memo = nil
				}
				opts := testOptions()
				if mode == "spilled" {
					opts.SpillDir = b.TempDir()
					b.Cleanup(func() { tmpl.memo.mu.Lock(); tmpl.memo.mu.Unlock() })
				}
				r := newTestRenderer(b, opts)
				// The first render, then one with the cache filled.
				for range 2 {
					if _, err := r.Render(tmpl, tc.snap); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				i := 0
				for b.Loop() {
					snap := tc.snap
					if i%2 == 0 {
						snap = changed
					}
					i++
					if _, err := r.Render(tmpl, snap); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestServiceKey checks that the key of a ServiceInformation tells apart
// two values that differ in any field a template can read, as the
// reflective key would; and that a new field cannot be forgotten.
func TestServiceKey(t *testing.T) {
	typ, vtyp := reflect.TypeFor[ServiceInformation](), reflect.TypeFor[serviceValues]()
	if typ.NumField() != 11 || vtyp.NumField() != 14 {
		t.Fatalf("ServiceInformation has %d fields, serviceValues %d: update serviceKey, then this test", typ.NumField(), vtyp.NumField())
	}
	base := *sampleInfo("cluster.local").Services[0]
	key := func(s *ServiceInformation) string {
		m := &memoSet{types: map[reflect.Type]uint64{}}
		x := &memoExec{set: m}
		v := reflect.ValueOf(s).Elem()
		if !x.keyOf(v, 0) {
			t.Fatal("not keyable")
		}
		return string(x.key)
	}
	want := key(&base)
	if again := base; key(&again) != want {
		t.Fatal("the same value keys differently")
	}
	// own gives s its own copy of the service's values, which the sample
	// ports share: changing them must not change base.
	own := func(s *ServiceInformation) *serviceValues {
		v := *s.serviceValues
		s.serviceValues = &v
		return &v
	}
	if again := base; key(&again) != want || (func() bool { own(&again); return key(&again) != want })() {
		t.Fatal("the same values key differently")
	}
	change := func(name string, fv reflect.Value, changed *ServiceInformation) {
		fv = reflect.NewAt(fv.Type(), unsafe.Pointer(fv.UnsafeAddr())).Elem() // settable
		switch fv.Kind() {
		case reflect.String:
			fv.SetString(fv.String() + "x")
		case reflect.Int, reflect.Int32:
			fv.SetInt(fv.Int() + 1)
		case reflect.Slice, reflect.Map, reflect.Pointer:
			c := reflect.New(fv.Type()).Elem()
			switch fv.Kind() {
			case reflect.Slice:
				c = reflect.Append(reflect.AppendSlice(reflect.MakeSlice(fv.Type(), 0, fv.Len()+1), fv), reflect.New(fv.Type().Elem()).Elem())
			case reflect.Map:
				c = reflect.MakeMap(fv.Type())
			case reflect.Pointer:
				c = reflect.New(fv.Type().Elem())
			}
			fv.Set(c)
		case reflect.Struct: // PortSpec
			changed.Port.Mode += "x"
		default:
			t.Fatalf("field %s: kind %v not covered", name, fv.Kind())
		}
		if key(changed) == want {
			t.Errorf("field %s changed, key unchanged", name)
		}
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Name == "fp" || f.Anonymous { // the service's values: below
			continue
		}
		changed := base
		change(f.Name, reflect.NewAt(typ, unsafe.Pointer(&changed)).Elem().Field(i), &changed)
	}
	for i := range vtyp.NumField() {
		f := vtyp.Field(i)
		if f.Name == "created" {
			continue
		}
		changed := base
		v := own(&changed)
		change(f.Name, reflect.NewAt(vtyp, unsafe.Pointer(v)).Elem().Field(i), &changed)
	}
	// Each field of the PortSpec, and the content of the plain slices.
	for name, change := range map[string]func(*ServiceInformation){
		"Port.IP":       func(s *ServiceInformation) { s.Port.IP = []byte{1, 2, 3, 4} },
		"Port.Port":     func(s *ServiceInformation) { s.Port.Port++ },
		"Port.Protocol": func(s *ServiceInformation) { s.Port.Protocol = "udp" },
		"External[0]":   func(s *ServiceInformation) { own(s).External = []string{"other", s.External[1]} },
		"ExternalIPs":   func(s *ServiceInformation) { own(s).ExternalIPs = []string{"192.0.2.1"} },
	} {
		changed := base
		change(&changed)
		if key(&changed) == want {
			t.Errorf("%s changed, key unchanged", name)
		}
	}
	if key(&base) != want {
		t.Error("changing copies changed the sample's key: a change wrote to the shared values")
	}
}

// TestMemoGuardedRange checks a range that the trial run on sample data
// does not reach (its condition is false there), executed incrementally
// on data that reaches it.
func TestMemoGuardedRange(t *testing.T) {
	text := `{{if ne .Domain "cluster.local"}}{{range .Services}}{{print ($y := .Name)}}/{{$y}};{{end}}{{end}}`
	tmpl, err := parseTemplate("guarded", text)
	if err != nil || tmpl.memo == nil {
		t.Fatalf("parse: %v, memoised: %v", err, tmpl != nil && tmpl.memo != nil)
	}
	other := sampleInfo("example.org")
	var want, got bytes.Buffer
	werr := tmpl.tmpl.Execute(&want, other)
	for range 2 { // the first execution is text/template's, the second the cache's
		got.Reset()
		if err := tmpl.execute(&got, other); fmt.Sprint(err) != fmt.Sprint(werr) {
			t.Fatalf("error %v, want %v", err, werr)
		}
	}
	if got.String() != want.String() {
		t.Errorf("output %q, want %q", got.String(), want.String())
	}
}

// TestFirstExecution checks who writes the first configuration: on more
// than one CPU the incremental execution, filling the cache with its
// bodies spread over the CPUs (the output then refers to its pieces); on
// one, text/template (one chunk), the cache being filled afterwards. Both
// write the same bytes.
func TestFirstExecution(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	info, _ := newTestRenderer(t, testOptions()).Model(withEndpoints(bigSnapshot(20, 3), 2))
	var outputs []string
	for _, procs := range []int{1, 2} {
		runtime.GOMAXPROCS(procs)
		tmpl, err := ParseTemplate("../examples/haproxy/haproxy-endpoints.cfg.tmpl")
		if err != nil {
			t.Fatal(err)
		}
		out, err := tmpl.output(info, 1<<20) // a plain execution writes one chunk
		if err != nil {
			t.Fatal(err)
		}
		if plain := len(out.pieces) == 1; plain != (procs == 1) {
			t.Errorf("GOMAXPROCS %d: %d pieces, want the plain execution: %v", procs, len(out.pieces), procs == 1)
		}
		tmpl.memo.mu.Lock() // the cache, filled (after the plain execution: in the background)
		if tmpl.memo.last.ran == 0 {
			t.Errorf("GOMAXPROCS %d: no body ran into the cache", procs)
		}
		tmpl.memo.mu.Unlock()
		outputs = append(outputs, string(out.Bytes()))
	}
	if outputs[0] != outputs[1] {
		t.Error("the first configurations differ")
	}
}

// TestLookupPanic checks that a panic while keying a range (in a method
// a key calls) leaves no entry in the cache that would be reused unfilled
// or waited for forever: the entries it made fail.
func TestLookupPanic(t *testing.T) {
	_, m := plainAndMemo(t, "panic.tmpl", `{{range $p := .Ports}}{{range $.PortServices $p}}{{.Name}}{{end}};{{end}}`)
	if m == nil {
		t.Fatal("range not memoised")
	}
	var r *memoRange
	for _, mr := range m.ranges {
		if len(mr.rootCalls) > 0 {
			r = mr
		}
	}
	if r == nil {
		t.Fatal("no range keyed by a root call")
	}
	calls := 0
	r.rootCalls[0].fn = func(*ClusterInformation, PortSpec) (any, error) {
		if calls++; calls == 2 {
			panic("boom")
		}
		return calls, nil
	}
	info, _ := newTestRenderer(t, testOptions()).Model(bigSnapshot(3, 1))
	if len(info.Ports) < 2 {
		t.Fatalf("%d ports, want 2 or more", len(info.Ports))
	}
	x := &memoExec{set: m, nested: true}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the panic", p)
			}
		}()
		x.lookup(r, nil, reflect.ValueOf(info.Ports), reflect.ValueOf(info), nil)
	}()
	if len(m.entries) == 0 {
		t.Fatal("no entry made before the panic")
	}
	for k, e := range m.entries {
		done := make(chan struct{})
		go func() { e.wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("entry %x is waited for forever", k)
		}
		if e.err() == nil {
			t.Errorf("entry %x made before the panic did not fail", k)
		}
	}
}

// TestMemoRulesByPosition checks that when a listener's host rules
// change, the rules of the services that did not change are found by
// position, and that the output is text/template's.
func TestMemoRulesByPosition(t *testing.T) {
	// The service of a listener's first rule changing again and again
	// (a deployment's rollout, say) must neither lose the listener's
	// rules by position nor pile up runs of the rules it had.
	for _, changing := range []int{100, 0} {
		t.Run(fmt.Sprint(changing), func(t *testing.T) { testMemoRulesByPosition(t, changing) })
	}
}

func testMemoRulesByPosition(t *testing.T, changing int) {
	tmpl, err := ParseTemplate("../examples/haproxy/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	snap := bigSnapshot(200, 3)
	// In the cache's order (namespace, name), as kubeapi's snapshots
	// are: the first service is the listener's first rule.
	slices.SortFunc(snap.Services, func(a, b *kubeapi.Service) int {
		return strings.Compare(a.Metadata.Key(), b.Metadata.Key())
	})
	r := newTestRenderer(t, testOptions())
	for range 2 {
		if _, err := r.Render(tmpl, snap); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("new%d.example.com", i), "other.example.com,new.example.com", "")
	}
	for step, name := range names {
		changed := snap
		changed.Services = slices.Clone(snap.Services)
		svc := *changed.Services[changing]
		svc.Metadata.Annotations = withPair(svc.Metadata.Annotations, AnnotationExternalDomains, name)
		changed.Services[changing] = &svc
		res, err := r.Render(tmpl, changed)
		if err != nil {
			t.Fatal(err)
		}
		// The listener of port 80 has a rule per service (200): all but
		// the changed service's are found by position, as are the 599
		// unchanged backends.
		if s := tmpl.memo.last; s.byPosition < 599+190 {
			t.Errorf("step %d: %+v, want at least %d found by position", step, s, 599+190)
		}
		info, _ := newTestRenderer(t, testOptions()).Model(changed)
		var want bytes.Buffer
		if err := tmpl.tmpl.Execute(&want, info); err != nil {
			t.Fatal(err)
		}
		got, err := res.Output.readAll()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.String(), string(got)); diff != "" {
			t.Errorf("step %d (-plain +memo):\n%s", step, diff)
		}
		snap = changed
	}
	for _, rg := range tmpl.memo.ranges {
		if n := len(rg.lastRules); n > 4 {
			t.Errorf("a nested range keeps %d runs of host rules, want one per listener", n)
		}
	}
}

// TestIdentRunMatch checks matching by position: the same service with
// another name is another rule, removed elements are skipped within the
// lookahead, and a match advances past the element found.
func TestIdentRunMatch(t *testing.T) {
	p, q := &ServiceInformation{fp: 1}, &ServiceInformation{fp: 2}
	e := []*memoEntry{{}, {}, {}, {}}
	rules := &identRun{rules: []HostRule{{p, "a"}, {p, "b"}, {q, "a"}, {q, "*.c"}}, entries: e}
	j := 0
	if got := rules.match(p, "b", &j); got != e[1] || j != 2 {
		t.Errorf("(p, b): entry %p, j %d; want %p, 2", got, j, e[1])
	}
	if got := rules.match(q, "*.c", &j); got != e[3] || j != 4 {
		t.Errorf("(q, *.c): entry %p, j %d; want %p, 4", got, j, e[3])
	}
	j = 0
	if got := rules.match(q, "b", &j); got != nil || j != 0 {
		t.Errorf("(q, b): entry %p, j %d; want none, 0", got, j)
	}
	services := &identRun{services: []*ServiceInformation{p, q}, entries: e[:2]}
	j = 1
	if got := services.match(p, "", &j); got != nil {
		t.Errorf("p before j: entry %p, want none", got)
	}
	if got := services.match(q, "", &j); got != e[1] || j != 2 {
		t.Errorf("q: entry %p, j %d; want %p, 2", got, j, e[1])
	}
}

// TestMemoSameRangeTwice runs a top-level range twice in one execution
// over collections that share services, with bodies text/template runs
// (printf): the second lookup finds by position entries whose bodies may
// still be running. Under -race, this caught a read of their error
// racing with the worker's write.
func TestMemoSameRangeTwice(t *testing.T) {
	plain, m := plainAndMemo(t, "twice.tmpl",
		`{{range $k := IntRange 3 0 1}}{{if $}}{{end}}{{range slice $.Services $k}}{{printf "%s" .Name}}:{{.Port.Port}} {{end}}
{{end}}`)
	if m == nil {
		t.Fatal("range not memoised")
	}
	info, _ := newTestRenderer(t, testOptions()).Model(bigSnapshot(300, 3))
	for range 3 {
		var want, got bytes.Buffer
		if err := plain.Execute(&want, info); err != nil {
			t.Fatal(err)
		}
		if err := m.execute(&got, info); err != nil {
			t.Fatal(err)
		}
		if want.String() != got.String() {
			t.Fatalf("memo output differs from text/template's")
		}
	}
}
