// Command demo shows kube2lb working, for `make demo`: it starts a local
// Kubernetes control plane (kube-apiserver and etcd, see package
// controlplane), creates Nodes and Services with kube2lb's annotations,
// runs kube2lb with examples/haproxy/haproxy.cfg.tmpl, prints the rendered
// configuration and, when HAProxy is installed, runs it and routes requests
// through it, then adds a Service and shows the new route. Without HAProxy
// it prints kube2lb -dry-run's rendering instead. Everything it starts is
// stopped and every file it wrote is removed before it exits.
//
// The control plane has no kubelet: the nodes' node ports are played by
// small HTTP and TCP servers of the demo on 127.43.0.0/24, each answering
// with its name ("web@node-1"), so a response shows where a request went.
//
//	cd integration && KUBE2LB_BIN=../bin/kube2lb go run ./cmd/demo
//
// With -cluster (make cluster) it starts the control plane, the Nodes and
// the web and db Services with their node-port servers, prints a
// kubeconfig for kube2lb and one for kubectl, and keeps them until
// interrupted: a cluster to try the README's quick starts against.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/kube2lb"
	"github.com/kube2lb/kube2lb/integration/lb"
	"github.com/kube2lb/kube2lb/integration/session"
)

// Where the demo's load balancer listens, and its nodes.
const (
	lbIP     = "127.43.0.1"
	httpPort = 18080
	tcpPort  = 15432
)

var nodes = []struct{ name, ip string }{
	{"node-1", "127.43.0.2"},
	{"node-2", "127.43.0.3"},
}

func main() {
	cluster := flag.Bool("cluster", false, "start the control plane, Nodes and Services, print kubeconfigs, and keep them until interrupted")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Stdout, *cluster))
}

// demo prints the demo's story.
type demo struct {
	out     io.Writer
	section int
	s       *session.Session
	cp      *cp.ControlPlane
	ctx     context.Context
}

func run(ctx context.Context, out io.Writer, cluster bool) int {
	d := &demo{out: out, ctx: ctx}
	d.s = session.New(ctx, "demo", func(msg string) {
		for l := range strings.Lines(msg) {
			fmt.Fprintf(out, "     · %s", strings.TrimRight(l, "\n")+"\n")
		}
	})
	fmt.Fprintln(out, "kube2lb demo: kube2lb watches a Kubernetes API server and renders a load")
	fmt.Fprintln(out, "balancer's configuration from a template, then reloads the load balancer.")

	result := make(chan bool, 1)
	body := d.story
	if cluster {
		body = d.cluster
	}
	go func() { result <- d.s.Run(body) }()
	ok, interrupted := false, false
	select {
	case ok = <-result:
	case <-ctx.Done():
		if cluster { // the way it ends
			ok = <-result
			break
		}
		interrupted = true
		fmt.Fprintln(out, "\ninterrupted")
	}
	d.heading("Cleaning up")
	d.s.RunCleanups()
	d.say("every process stopped, every temporary file removed")
	if interrupted {
		return 130
	}
	if !ok {
		if d.s.Reason() != "" {
			fmt.Fprintf(out, "\ndemo failed: %s\n", d.s.Reason())
		}
		return 1
	}
	if cluster {
		return 0
	}
	fmt.Fprintln(out, "\nNext: `make test` runs every test, including HAProxy, nginx and Caddy for real.")
	return 0
}

func (d *demo) heading(title string) {
	d.section++
	fmt.Fprintf(d.out, "\n== %d. %s ==\n\n", d.section, title)
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "   "+format+"\n", args...)
}

// block prints text indented, as a quoted file or output.
func (d *demo) block(text string) {
	for l := range strings.Lines(text) {
		fmt.Fprintf(d.out, "   | %s", l)
	}
	if !strings.HasSuffix(text, "\n") {
		fmt.Fprintln(d.out)
	}
}

// story is the demo; it runs as a test body (see session).
func (d *demo) story() {
	s := d.s
	_, haproxyErr := exec.LookPath("haproxy")

	c := d.startCluster()
	d.createService("web", "NodePort", "http", httpPort, false, map[string]string{
		"kube2lb/external-domains": "www.example.test",
		"kube2lb/backend-timeout":  `{"http": 20000}`,
	})
	d.createService("db", "NodePort", "db", tcpPort, true, map[string]string{
		"kube2lb/port-mode": `{"db": "tcp"}`,
	})
	d.say("")
	d.say("No kubelet runs here: servers of this demo listen on each node's address")
	d.say("and node port, and answer with their name, e.g. \"web@node-1\".")

	dir := s.TempDir()
	config := filepath.Join(dir, "haproxy.cfg")
	template := lb.Example("haproxy/haproxy.cfg.tmpl")
	common := []string{
		"-kubecfg", c.Minimal.Kubeconfig,
		"-template", template,
		"-default-lb-ip", lbIP,
		"-host-checks=false", // the demo's addresses are loopback addresses
	}
	args := append(slices.Clone(common), "-config", config, "-check", lb.HAProxyCheck, "-wait", "200ms:2s")

	if haproxyErr != nil {
		d.heading("kube2lb renders examples/haproxy/haproxy.cfg.tmpl (-dry-run)")
		d.say("HAProxy is not installed (Debian: apt-get install haproxy), so kube2lb prints")
		d.say("the configuration instead of writing it and reloading HAProxy:")
		d.say("")
		dryRun := append(common, "-dry-run")
		d.command(dryRun)
		d.say("")
		r := kube2lb.Run(s, dryRun...)
		if r.Code != 0 {
			s.Fatalf("kube2lb -dry-run exited %d:\n%s", r.Code, r.Logs)
		}
		d.block(r.Stdout)
		return
	}

	d.heading("kube2lb renders examples/haproxy/haproxy.cfg.tmpl")
	d.say("First a one-shot run writes the configuration HAProxy starts with:")
	d.say("")
	d.command(append(args, "-once"))
	if r := kube2lb.Run(s, append(args, "-once")...); r.Code != 0 {
		s.Fatalf("kube2lb -once exited %d:\n%s", r.Code, r.Logs)
	}
	b, err := os.ReadFile(config)
	if err != nil {
		s.Fatal(err)
	}
	d.say("")
	d.say("%s:", config)
	d.block(string(b))

	d.heading("HAProxy serves it")
	h := lb.StartHAProxy(s, config)
	d.say("haproxy -W -f %s (master pid %d)", config, h.Pid())
	d.say("and kube2lb keeps watching, reloading HAProxy with SIGUSR2 at every change:")
	d.say("")
	daemonArgs := append(args, "-notify", h.Notifier())
	d.command(daemonArgs)
	k := kube2lb.Start(s, daemonArgs...)
	d.say("")
	web := net.JoinHostPort(lbIP, strconv.Itoa(httpPort))
	for range 4 {
		d.request(web, "www.example.test")
	}
	d.tcp(net.JoinHostPort(lbIP, strconv.Itoa(tcpPort)))
	d.say("")
	d.say("HAProxy balances www.example.test over both nodes; db (port-mode tcp) is plain TCP.")

	d.heading("A change: a new Service")
	d.createService("api", "LoadBalancer", "http", httpPort, false, map[string]string{
		"kube2lb/external-domains": "api.example.test",
	})
	d.say("")
	before := string(b)
	after := d.waitConfig(config, func(s string) bool { return strings.Contains(s, "api.example.test") })
	d.say("kube2lb rendered, checked and applied the new configuration; it gained:")
	d.block(addedLines(before, after))
	d.say("")
	d.say("and reloaded HAProxy (SIGUSR2 to the master, pid %d): the new host name is", h.Pid())
	d.say("routed on the same port, while the old ones keep working:")
	d.say("")
	d.request(web, "api.example.test")
	d.request(web, "www.example.test")
	if k.Exited() {
		s.Fatalf("kube2lb exited:\n%s", k.Logs())
	}
}

// startCluster starts the control plane and creates the demo's Nodes.
func (d *demo) startCluster() *cp.ControlPlane {
	s := d.s
	d.heading("A local Kubernetes control plane")
	d.say("kube-apiserver and etcd, built from source once (cached in ~/.cache/kube2lb),")
	d.say("listening on 127.0.0.1 only. Starting...")
	c := cp.Start(s)
	d.cp = c
	d.say("API server ready at %s", c.URL)

	d.heading("Nodes and Services")
	for _, n := range nodes {
		c.Admin.Create(s, cp.Nodes, "", cp.Object{
			"metadata": cp.Object{"name": n.name},
			"status": cp.Object{
				"addresses":  []cp.Object{{"type": "InternalIP", "address": n.ip}},
				"conditions": []cp.Object{{"type": "Ready", "status": "True"}},
			},
		})
		d.say("Node %-8s InternalIP %s, Ready", n.name, n.ip)
	}
	return c
}

// cluster starts the control plane, the demo's Nodes and Services with
// their node-port servers, says how to reach them, and waits for the end.
func (d *demo) cluster() {
	c := d.startCluster()
	d.createService("web", "NodePort", "http", httpPort, false, map[string]string{"kube2lb/external-domains": "www.example.test"})
	d.createService("db", "NodePort", "db", tcpPort, true, map[string]string{"kube2lb/port-mode": `{"db": "tcp"}`})
	d.say("")
	d.say("Servers of this command answer on each node's address and node port with their")
	d.say("name, e.g. \"web@node-1\": no kubelet runs here.")

	d.heading("Try it")
	d.say("kube2lb's kubeconfig (a token user with the RBAC of examples/kubernetes/rbac.yaml):")
	d.say("    %s", c.Minimal.Kubeconfig)
	d.say("kubectl's (cluster admin):")
	d.say("    %s", c.Admin.Kubeconfig)
	d.say("")
	d.say("e.g., from the repository's top:")
	d.say("    bin/kube2lb -kubecfg %s -template examples/nginx/nginx.conf.tmpl -default-lb-ip %s -host-checks=false -dry-run", c.Minimal.Kubeconfig, lbIP)
	d.say("    kubectl --kubeconfig %s create service nodeport shop --tcp=80:8080", c.Admin.Kubeconfig)
	d.say("then a quick start of README.md with -kubecfg above and -default-lb-ip %s", lbIP)
	d.say("(the listeners on that loopback address, port 18080 for web, 15432 for db).")
	d.say("")
	d.say("Ctrl-C stops everything and removes every file.")
	<-d.ctx.Done()
}

// waitConfig polls the configuration file until cond accepts it.
func (d *demo) waitConfig(path string, cond func(string) bool) string {
	var content string
	d.poll("the new configuration in "+path, func(context.Context) error {
		b, err := os.ReadFile(path)
		content = string(b)
		if err == nil && !cond(content) {
			err = fmt.Errorf("not rendered yet")
		}
		return err
	})
	return content
}

// addedLines returns the lines that after adds to before (a longest
// common subsequence diff), with "..." where unchanged lines were skipped.
func addedLines(before, after string) string {
	a, b := slices.Collect(strings.Lines(before)), slices.Collect(strings.Lines(after))
	// lcs[i][j] is the length of the longest common subsequence of a[i:]
	// and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	gap := false
	for i, j := 0, 0; j < len(b); {
		switch {
		case i < len(a) && a[i] == b[j]:
			i, j = i+1, j+1
			gap = out.Len() > 0
		case i < len(a) && lcs[i+1][j] >= lcs[i][j+1]:
			i++ // a line removed
		default:
			if gap {
				out.WriteString("...\n")
				gap = false
			}
			out.WriteString(b[j])
			j++
		}
	}
	return out.String()
}

// createService creates a service with one port named portName and
// starts its node-port backends on every node.
func (d *demo) createService(name, typ, portName string, port int, tcp bool, annotations map[string]string) {
	s := d.s
	obj := d.cp.Admin.Create(s, cp.Services, "default", cp.Object{
		"metadata": cp.Object{"name": name, "annotations": annotations},
		"spec": cp.Object{"type": typ, "selector": cp.Object{"app": name},
			"ports": []cp.Object{{"name": portName, "port": port, "protocol": "TCP", "targetPort": 8080}}},
	})
	var created struct {
		Spec struct {
			Ports []struct {
				NodePort int `json:"nodePort"`
			} `json:"ports"`
		} `json:"spec"`
	}
	j, _ := json.Marshal(obj)
	if err := json.Unmarshal(j, &created); err != nil || len(created.Spec.Ports) != 1 || created.Spec.Ports[0].NodePort == 0 {
		s.Fatalf("service %s: no node port in %s", name, j)
	}
	nodePort := created.Spec.Ports[0].NodePort
	for _, n := range nodes {
		addr := net.JoinHostPort(n.ip, strconv.Itoa(nodePort))
		if tcp {
			lb.ServeTCP(s, name+"@"+n.name, addr)
		} else {
			lb.ServeHTTP(s, name+"@"+n.name, addr)
		}
	}
	var notes []string
	for k, v := range annotations {
		notes = append(notes, k+": "+v)
	}
	d.say("Service default/%-4s %-12s port %d -> node port %d", name, typ, port, nodePort)
	slices.Sort(notes)
	for _, n := range notes {
		d.say("    %s", n)
	}
}

// command prints a kube2lb command line, one flag per line, shell-quoted
// where needed.
func (d *demo) command(args []string) {
	var b strings.Builder
	b.WriteString("$ kube2lb")
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			b.WriteString(" \\\n         ")
		} else {
			b.WriteByte(' ')
		}
		if strings.ContainsAny(a, " \"'$&;|") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		b.WriteString(a)
	}
	d.say("%s", b.String())
}

// request sends one request through the load balancer and prints it.
func (d *demo) request(addr, host string) {
	resp := d.waitRoute(addr, host)
	d.say("GET http://%s/  Host: %-17s -> HTTP %d, answered by %s", addr, host, resp.Status, strings.TrimSpace(resp.Body))
}

// tcp connects through the load balancer and prints what it read.
func (d *demo) tcp(addr string) {
	var line string
	d.poll("a TCP connection to "+addr, func(ctx context.Context) error {
		var err error
		line, err = lb.ReadTCP(ctx, addr)
		return err
	})
	d.say("TCP %s -> read %q", addr, line)
}

// waitRoute polls until a request for host reaches a backend: HAProxy
// reloads asynchronously.
func (d *demo) waitRoute(addr, host string) *lb.Response {
	var resp *lb.Response
	d.poll("Host "+host+" on "+addr, func(ctx context.Context) error {
		var err error
		resp, err = lb.Get(ctx, addr, host)
		if err == nil && (resp.Status != 200 || !strings.Contains(resp.Body, "@")) {
			err = fmt.Errorf("HTTP %d", resp.Status)
		}
		return err
	})
	return resp
}

// poll calls try until it succeeds, failing the demo after lb.Deadline.
func (d *demo) poll(what string, try func(context.Context) error) {
	deadline := time.Now().Add(lb.Deadline)
	for {
		ctx, cancel := context.WithTimeout(d.s.Context(), 10*time.Second)
		err := try(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || d.s.Context().Err() != nil {
			d.s.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
