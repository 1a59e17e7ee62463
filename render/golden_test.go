package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kube2lb/kube2lb/kubeapi"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fixture is the JSON form of a snapshot in testdata: its objects as the
// API server sends them, read by kubeapi's decoder.
type fixture struct {
	Services       []json.RawMessage `json:"services"`
	Nodes          []json.RawMessage `json:"nodes"`
	EndpointSlices []json.RawMessage `json:"endpointSlices"`
}

func loadSnapshot(t testing.TB, path string) kubeapi.Snapshot {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return kubeapi.Snapshot{
		Services:         decodeAll(t, path, f.Services, kubeapi.Decode[*kubeapi.Service]),
		Nodes:            decodeAll(t, path, f.Nodes, kubeapi.Decode[*kubeapi.Node]),
		EndpointSlices:   decodeAll(t, path, f.EndpointSlices, kubeapi.Decode[*kubeapi.EndpointSlice]),
		EndpointsWatched: true,
	}
}

func decodeAll[P any](t testing.TB, path string, raw []json.RawMessage, decode func(io.Reader) (P, error)) []P {
	t.Helper()
	out := make([]P, len(raw))
	for i, r := range raw {
		p, err := decode(bytes.NewReader(r))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out[i] = p
	}
	return out
}

func testOptions() Options {
	return Options{
		Domain: "cluster.local",
		Logger: slog.New(slog.DiscardHandler),
	}
}

// goldenOptions are the options cluster.json is rendered with.
func goldenOptions() Options {
	opts := testOptions()
	opts.LBIPRanges = anyLBIP
	return opts
}

// anyLBIP serves every spec.loadBalancerIP: cluster.json's are loopback
// addresses, which the examples' checks can bind (nginx -t binds) on the
// machine running the tests.
var anyLBIP = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

func newTestRenderer(t testing.TB, opts Options) *Renderer {
	t.Helper()
	r, err := NewRenderer(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", golden, diff)
	}
}

func renderFile(t *testing.T, r *Renderer, tmplPath string, snap kubeapi.Snapshot) *Result {
	t.Helper()
	tmpl, err := ParseTemplate(tmplPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Render(tmpl, snap)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestGolden renders every testdata/*.tmpl with the cluster fixture.
func TestGolden(t *testing.T) {
	snap := loadSnapshot(t, "testdata/cluster.json")
	files, err := filepath.Glob("testdata/*.tmpl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			res := renderFile(t, newTestRenderer(t, goldenOptions()), f, snap)
			checkGolden(t, strings.TrimSuffix(f, ".tmpl")+".golden", res.Output.Bytes())
		})
	}
	t.Run("warnings", func(t *testing.T) {
		res := renderFile(t, newTestRenderer(t, goldenOptions()), "testdata/original.tmpl", snap)
		var buf bytes.Buffer
		for _, w := range res.Warnings {
			buf.WriteString(w + "\n")
		}
		buf.WriteString("services:\n")
		for _, s := range res.Services {
			buf.WriteString("  " + ServicePortName(s) + "\n")
		}
		buf.WriteString("nodes:\n")
		for _, n := range res.Nodes {
			buf.WriteString("  " + n.Name + "\n")
		}
		checkGolden(t, "testdata/cluster.warnings.golden", buf.Bytes())
	})
}

// examples are the templates shipped in ../examples, with the command that
// validates their output.
var examples = []struct {
	name     string
	template string
	validate func(t *testing.T, dir, file string) *exec.Cmd
}{
	{"haproxy.cfg", "../examples/haproxy/haproxy.cfg.tmpl", func(t *testing.T, dir, file string) *exec.Cmd {
		return exec.Command("haproxy", "-c", "-f", file)
	}},
	{"haproxy-endpoints.cfg", "../examples/haproxy/haproxy-endpoints.cfg.tmpl", func(t *testing.T, dir, file string) *exec.Cmd {
		return exec.Command("haproxy", "-c", "-f", file)
	}},
	{"nginx.conf", "../examples/nginx/nginx.conf.tmpl", func(t *testing.T, dir, file string) *exec.Cmd {
		return exec.Command("nginx", "-t", "-p", dir+"/", "-c", file, "-e", "stderr")
	}},
	{"Caddyfile", "../examples/caddy/Caddyfile.tmpl", func(t *testing.T, dir, file string) *exec.Cmd {
		cmd := exec.Command("caddy", "validate", "--adapter", "caddyfile", "--config", file)
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir+"/config", "XDG_DATA_HOME="+dir+"/data")
		return cmd
	}},
}

// exampleSnapshots are the cluster states each example is rendered with.
func exampleSnapshots(t *testing.T) map[string]kubeapi.Snapshot {
	return map[string]kubeapi.Snapshot{
		"cluster": loadSnapshot(t, "testdata/cluster.json"),
		// the cluster and what any namespace's users can write to break a
		// load balancer's configuration (rendered with exampleOptions).
		"hostile": func() kubeapi.Snapshot {
			s := loadSnapshot(t, "testdata/cluster.json")
			h := loadSnapshot(t, "testdata/hostile.json")
			s.Services = append(s.Services, h.Services...)
			s.EndpointSlices = append(s.EndpointSlices, h.EndpointSlices...)
			return s
		}(),
		"empty": {EndpointsWatched: true},
		// services but no backend node at all: every upstream is empty.
		"nonodes": func() kubeapi.Snapshot {
			s := loadSnapshot(t, "testdata/cluster.json")
			s.Nodes = nil
			return s
		}(),
	}
}

// exampleOptions are the options each example snapshot is rendered with.
func exampleOptions(snapshot string) Options {
	opts := testOptions()
	opts.LBIPRanges = anyLBIP
	if snapshot == "hostile" {
		// Same-named services of two namespaces get the same name; an
		// annotation's value (any namespace's users write it) is one.
		opts.ServerNameTemplates = []string{"{{ .Service.Name }}.example.com", `{{ index .Service.Annotations "example.com/host" }}`}
	}
	return opts
}

// TestExamples renders the shipped examples into golden files.
func TestExamples(t *testing.T) {
	for _, ex := range examples {
		for name, snap := range exampleSnapshots(t) {
			t.Run(ex.name+"/"+name, func(t *testing.T) {
				res := renderFile(t, newTestRenderer(t, exampleOptions(name)), ex.template, snap)
				checkGolden(t, filepath.Join("testdata", "examples", ex.name+"."+name+".golden"), res.Output.Bytes())
				if name == "hostile" { // what kube2lb refused, and why
					checkGolden(t, filepath.Join("testdata", "examples", "hostile.warnings.golden"), []byte(strings.Join(res.Warnings, "\n")+"\n"))
				}
			})
		}
	}
}

// TestExamplesValidate feeds the golden outputs of the examples to the real
// load balancers' configuration checks.
func TestExamplesValidate(t *testing.T) {
	for _, ex := range examples {
		for name := range exampleSnapshots(t) {
			t.Run(ex.name+"/"+name, func(t *testing.T) {
				dir := t.TempDir()
				golden, err := os.ReadFile(filepath.Join("testdata", "examples", ex.name+"."+name+".golden"))
				if err != nil {
					t.Fatal(err)
				}
				file := filepath.Join(dir, ex.name)
				if err := os.WriteFile(file, golden, 0o644); err != nil {
					t.Fatal(err)
				}
				cmd := ex.validate(t, dir, file)
				if _, err := exec.LookPath(cmd.Path); err != nil && !errors.Is(err, exec.ErrDot) {
					needProgram(t, cmd.Args[0])
				}
				if cmd.Args[0] == "nginx" && os.Geteuid() != 0 {
					// nginx -t binds the listeners, ports below 1024 included.
					if os.Getenv("CI") != "" {
						t.Fatal("nginx -t needs root to bind ports below 1024, and CI must not skip")
					}
					t.Skip("nginx -t needs root to bind ports below 1024")
				}
				if cmd.Args[0] == "nginx" {
					if _, err := os.Stat("/usr/lib/nginx/modules/ngx_stream_module.so"); err != nil {
						needProgram(t, "nginx stream module (libnginx-mod-stream)")
					}
				}
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
				}
				// Caddy's admin API answers 200 with the adapter's warnings
				// (such as a Caddyfile not formatted), and then an error that
				// it can no longer give a status: the examples are formatted.
				if cmd.Args[0] == "caddy" {
					fmtCmd := exec.Command("caddy", "fmt", file)
					fmtCmd.Env = cmd.Env
					formatted, err := fmtCmd.Output()
					if err != nil {
						t.Fatalf("caddy fmt: %v", err)
					}
					if diff := cmp.Diff(string(golden), string(formatted)); diff != "" {
						t.Errorf("not as caddy fmt writes it (-golden +formatted):\n%s", diff)
					}
				}
			})
		}
	}
}

// needProgram skips the test on a developer's machine that lacks an outside
// program, and fails it in CI.
func needProgram(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (CI never skips)", what)
	}
	t.Skipf("%s is not installed", what)
}

// TestExamplesEnforceSourceRanges checks that each example filters every
// rendered port of cluster.json's services with loadBalancerSourceRanges
// (shop/api, http, and shop/ssh, tcp, both 10.0.0.0/8 and more): one rule
// naming 10.0.0.0/8 each, where the example serves the port; and of
// default/noports, whose annotation names 192.0.2.0/24.
func TestExamplesEnforceSourceRanges(t *testing.T) {
	want := map[string]int{
		"haproxy.cfg":           2, // http-request deny, tcp-request content reject
		"haproxy-endpoints.cfg": 2,
		"nginx.conf":            2, // an http and a stream server's allow
		"Caddyfile":             1, // Caddy has no tcp proxy: shop/ssh is left out
	}
	snap := loadSnapshot(t, "testdata/cluster.json")
	for _, ex := range examples {
		res := renderFile(t, newTestRenderer(t, exampleOptions("cluster")), ex.template, snap)
		if got := strings.Count(res.Output.String(), "10.0.0.0/8"); got != want[ex.name] {
			t.Errorf("%s: %d rules name 10.0.0.0/8, want %d", ex.name, got, want[ex.name])
		}
		// default/noports has them in the annotation the cloud providers read.
		if got := strings.Count(res.Output.String(), "192.0.2.0/24"); got != 1 {
			t.Errorf("%s: %d rules name 192.0.2.0/24, want 1", ex.name, got)
		}
	}
}
