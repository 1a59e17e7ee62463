// Package lb runs real load balancers for the integration suite and the
// demo: HAProxy (master-worker), nginx and Caddy 2, each in the foreground
// as a child of the test, configured by the file kube2lb renders, and
// stopped (with its process group) in the test's cleanup. Backends (in
// backend.go) are small HTTP and TCP servers on 127.0.0.0/8 that play node
// ports and pods and answer with their own name, so that a request sent
// through the load balancer tells which backend it reached.
package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Deadline bounds every wait of this package. It is not a performance
// target: the machines that run the suite are shared and slow.
const Deadline = 60 * time.Second

const pollInterval = 50 * time.Millisecond

// stopGrace is how long a load balancer has to exit after SIGTERM.
const stopGrace = 10 * time.Second

// Need returns the path of program, or ends t when it is not installed:
// a skip with the reason on a developer's machine, a failure when the
// environment variable CI is set (CI never skips silently).
func Need(t testing.TB, program, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s is not installed (Debian: apt-get install %s): %v", program, pkg, err)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Example returns the path of a file under the repository's examples/
// directory, e.g. Example("haproxy/haproxy.cfg.tmpl").
func Example(name string) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		panic("lb: cannot locate the repository from this package")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "examples", filepath.FromSlash(name))
}

// Process is a running load balancer.
type Process struct {
	Name   string // "haproxy", "nginx", "caddy"
	Config string // the configuration file it loads
	Dir    string // where its files are: the directory of Config
	Log    string // its standard output and error

	cmd  *exec.Cmd
	done chan struct{} // closed once it exited
	err  error         // cmd.Wait's answer, set before done is closed
}

// start runs bin with args in dir, in a process group of its own, its
// output appended to name.log in dir. It is stopped in t's cleanup (its
// log shown when t failed).
func start(t testing.TB, name, config string, env []string, bin string, args ...string) *Process {
	t.Helper()
	dir := filepath.Dir(config)
	p := &Process{Name: name, Config: config, Dir: dir, Log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own copy
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = f
	p.cmd.Stderr = f
	// Pdeathsig: a test binary that dies without its cleanups takes the
	// load balancer's master with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s %s:\n%s", name, strings.Join(args, " "), p.LogTail(40))
		}
	})
	return p
}

// Stop ends the process group: SIGTERM, then SIGKILL after 10 s (and for
// anything left behind, such as nginx workers). It returns once the load
// balancer has exited; calling it again does nothing.
func (p *Process) Stop() {
	pgid := -p.cmd.Process.Pid
	if !p.Exited() {
		syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
		}
	}
	syscall.Kill(pgid, syscall.SIGKILL)
	<-p.done
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Pid returns the process id of the load balancer (HAProxy's and nginx's
// master).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogTail returns the last n lines of the load balancer's output.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls ready until it answers nil, failing t when the process
// exits or Deadline passes.
func (p *Process) waitReady(t testing.TB, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(Deadline)
	for {
		err := ready()
		if err == nil {
			return
		}
		if p.Exited() {
			t.Fatalf("%s exited (%v) before it was ready; its output:\n%s", p.Name, p.err, p.LogTail(40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %v; its output:\n%s", p.Name, Deadline, err, p.LogTail(40))
		}
		time.Sleep(pollInterval)
	}
}

// HAProxy is an HAProxy in master-worker mode.
type HAProxy struct {
	*Process
	Pidfile      string // the master's pid, the same across reloads
	MasterSocket string // the master CLI
}

// HAProxyCheck is the -check command for HAProxy configurations.
const HAProxyCheck = `haproxy -c -f "$KUBE2LB_CANDIDATE"`

// StartHAProxy runs `haproxy -W -f config -p haproxy.pid -S master.sock` in
// the foreground, with its files beside config, and returns once the
// master serves its CLI, which it does only after installing its signal
// handlers (an early SIGUSR2 would kill it).
func StartHAProxy(t testing.TB, config string) *HAProxy {
	t.Helper()
	bin := Need(t, "haproxy", "haproxy")
	dir := filepath.Dir(config)
	h := &HAProxy{Pidfile: filepath.Join(dir, "haproxy.pid"), MasterSocket: filepath.Join(dir, "master.sock")}
	args := []string{"-W", "-f", config, "-p", h.Pidfile, "-S", h.MasterSocket}
	if n, why := fdLimitedMaxconn(config); n > 0 {
		t.Logf("haproxy: %s: running it with -n %d", why, n)
		args = append(args, "-n", strconv.Itoa(n))
	}
	h.Process = start(t, "haproxy", config, nil, bin, args...)
	h.waitReady(t, func() error {
		out, err := h.Master("show proc")
		if err == nil && !strings.Contains(out, "worker") {
			err = fmt.Errorf("show proc: no worker yet:\n%s", out)
		}
		return err
	})
	return h
}

// globalMaxconn finds the maxconn of HAProxy's global section.
var globalMaxconn = regexp.MustCompile(`(?m)^global\s*\n(?:[ \t]+.*\n|\s*\n)*?[ \t]+maxconn[ \t]+(\d+)`)

// fdLimitedMaxconn returns the connection limit (-n) under which HAProxy
// starts here, when the global maxconn of config needs more file
// descriptors than this process may open: HAProxy needs two per
// connection and refuses to start otherwise ("Cannot raise FD limit").
// It returns 0 when the configuration fits.
func fdLimitedMaxconn(config string) (int, string) {
	b, err := os.ReadFile(config)
	if err != nil {
		return 0, ""
	}
	m := globalMaxconn.FindSubmatch(b)
	if m == nil {
		return 0, ""
	}
	maxconn, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return 0, ""
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, ""
	}
	const spare = 1000 // listeners, checks, logs
	if lim.Max >= uint64(2*maxconn+spare) {
		return 0, ""
	}
	n := (int(lim.Max) - spare) / 2
	return n, fmt.Sprintf("global maxconn %d needs about %d file descriptors, but the hard limit here is %d", maxconn, 2*maxconn+spare, lim.Max)
}

// Notifier is the -notify value that reloads h.
func (h *HAProxy) Notifier() string { return "pidfile:SIGUSR2:" + h.Pidfile }

// Master sends one command to the master CLI and returns the answer.
func (h *HAProxy) Master(command string) (string, error) {
	c, err := net.DialTimeout("unix", h.MasterSocket, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", command); err != nil {
		return "", err
	}
	// The master answers once the command's input is over.
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		return "", err
	}
	var b strings.Builder
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String(), sc.Err()
}

// Nginx is an nginx whose prefix is the directory of its configuration
// (the example template's pid file and temporary directories are
// relative to it).
type Nginx struct {
	*Process
	Pidfile string
}

// NginxCheck is the -check command for an nginx configuration in dir.
func NginxCheck(dir string) string {
	return `nginx -t -q -p ` + shellQuote(dir+"/") + ` -c "$KUBE2LB_CANDIDATE"`
}

// StartNginx runs `nginx -p DIR/ -c CONFIG -e stderr -g 'daemon off;'` and
// returns once its pid file exists, which nginx writes after installing
// its signal handlers.
func StartNginx(t testing.TB, config string) *Nginx {
	t.Helper()
	bin := Need(t, "nginx", "nginx-light libnginx-mod-stream")
	dir := filepath.Dir(config)
	n := &Nginx{Pidfile: filepath.Join(dir, "nginx.pid")}
	n.Process = start(t, "nginx", config, nil, bin, "-p", dir+"/", "-c", config, "-e", "stderr", "-g", "daemon off;")
	n.waitReady(t, func() error {
		b, err := os.ReadFile(n.Pidfile)
		if err == nil && strings.TrimSpace(string(b)) != strconv.Itoa(n.Pid()) {
			err = fmt.Errorf("%s holds %q, not %d", n.Pidfile, b, n.Pid())
		}
		return err
	})
	return n
}

// Notifier is the -notify value that reloads n.
func (n *Nginx) Notifier() string { return "pidfile:SIGHUP:" + n.Pidfile }

// Caddy is a Caddy 2 whose admin API listens on Admin.
type Caddy struct {
	*Process
	Admin string // host:port of the admin API
}

// caddyEnv keeps Caddy's state (autosave, certificates) in dir.
func caddyEnv(dir string) []string {
	return []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"), "XDG_DATA_HOME=" + filepath.Join(dir, "data")}
}

// CaddyCheck is the -check command for a Caddyfile whose Caddy keeps its
// state in dir.
func CaddyCheck(dir string) string {
	var b strings.Builder
	for _, kv := range caddyEnv(dir) {
		k, v, _ := strings.Cut(kv, "=")
		b.WriteString(k + "=" + shellQuote(v) + " ")
	}
	return b.String() + `caddy validate --adapter caddyfile --config "$KUBE2LB_CANDIDATE"`
}

// StartCaddy runs `caddy run --config CONFIG --adapter caddyfile`, whose
// global options must set `admin ADMIN`, and returns once the admin API
// answers.
func StartCaddy(t testing.TB, config, admin string) *Caddy {
	t.Helper()
	bin := Need(t, "caddy", "caddy")
	dir := filepath.Dir(config)
	c := &Caddy{Admin: admin}
	c.Process = start(t, "caddy", config, caddyEnv(dir), bin, "run", "--config", config, "--adapter", "caddyfile")
	c.waitReady(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/config/", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New("admin API: " + resp.Status)
		}
		return nil
	})
	return c
}

// Notifier is the -notify value that loads the configuration into c.
func (c *Caddy) Notifier() string { return "caddy:" + c.Admin }

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
