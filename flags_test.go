package main

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	base := []string{"-template", "t.tmpl", "-config", "out.cfg"}
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, o *options)
	}{
		{"defaults", base, func(t *testing.T, o *options) {
			want := waitSpec{Min: time.Second, Max: 5 * time.Second}
			if o.wait != want {
				t.Errorf("wait = %v, want %v", o.wait, want)
			}
			if o.domain != "cluster.local" || o.defaultPortMode != "http" || !o.defaultLBIP.Equal(net.IPv4zero) {
				t.Errorf("domain, port mode, lb ip = %q %q %v", o.domain, o.defaultPortMode, o.defaultLBIP)
			}
			if diff := cmp.Diff([]string{defaultServerNameTemplate}, o.serverNameTemplates); diff != "" {
				t.Errorf("server name templates (-want +got):\n%s", diff)
			}
			if o.updateTimeout != 10*time.Second || o.reconnectTimeout != 0 {
				t.Errorf("update timeout %v, reconnect timeout %v", o.updateTimeout, o.reconnectTimeout)
			}
			if o.endpoints != "auto" || o.nodeAddressType != "InternalIP" || !o.hostChecks || o.logLevel != slog.LevelInfo {
				t.Errorf("endpoints %q, node address %q, host checks %v, level %v", o.endpoints, o.nodeAddressType, o.hostChecks, o.logLevel)
			}
			if o.spillDir() != "." {
				t.Errorf("cache in %q, want the directory of -config", o.spillDir())
			}
		}},
		{"cache dir", append([]string{"-cache-dir", os.TempDir()}, base...), func(t *testing.T, o *options) {
			if o.spillDir() != os.TempDir() {
				t.Errorf("cache in %q, want %q", o.spillDir(), os.TempDir())
			}
		}},
		{"cache in memory", append([]string{"-cache-dir", "memory"}, base...), func(t *testing.T, o *options) {
			if o.spillDir() != "" {
				t.Errorf("cache in %q, want memory", o.spillDir())
			}
		}},
		{"cache of -once in memory", append([]string{"-once", "-config", "/etc/haproxy/haproxy.cfg"}, base...), func(t *testing.T, o *options) {
			if o.spillDir() != "" {
				t.Errorf("cache in %q, want memory for a single render", o.spillDir())
			}
		}},
		{"original command line", []string{
			"-kubecfg=/etc/kube/config", "-apiserver", "https://10.0.0.1:6443",
			"-template=/etc/kube2lb/haproxy.tpl", "-config=/etc/haproxy/haproxy.cfg",
			"-domain=local", "-notify=command:haproxy -f /etc/haproxy.cfg -sf $(cat /run/haproxy.pid)",
			"-server-name-templates", "{{ .Service.Name }}.example.com,{{ .Service.Name }}.{{ .Service.Namespace }}.svc.{{ .Domain }}",
			"-default-port-mode=tcp", "-default-lb-ip=10.1.2.3", "-reconnect-timeout=300", "-update-timeout=2.5",
		}, func(t *testing.T, o *options) {
			if o.kubeconfig != "/etc/kube/config" || o.apiserver != "https://10.0.0.1:6443" {
				t.Errorf("kubeconfig %q apiserver %q", o.kubeconfig, o.apiserver)
			}
			if diff := cmp.Diff([]string{"command:haproxy -f /etc/haproxy.cfg -sf $(cat /run/haproxy.pid)"}, o.notify); diff != "" {
				t.Errorf("notify (-want +got):\n%s", diff)
			}
			if len(o.serverNameTemplates) != 2 || o.serverNameTemplates[0] != "{{ .Service.Name }}.example.com" {
				t.Errorf("server name templates %q", o.serverNameTemplates)
			}
			if o.defaultPortMode != "tcp" || o.defaultLBIP.String() != "10.1.2.3" || o.domain != "local" {
				t.Errorf("port mode %q lb ip %v domain %q", o.defaultPortMode, o.defaultLBIP, o.domain)
			}
			if o.reconnectTimeout != 300*time.Second || o.updateTimeout != 2500*time.Millisecond {
				t.Errorf("reconnect %v update %v", o.reconnectTimeout, o.updateTimeout)
			}
		}},
		{"kubeconfig alias and new flags", append([]string{
			"-kubeconfig", "k", "-context", "ctx", "-namespace", "ns", "-selector", "a=b", "-node-selector", "role=lb",
			"-node-address-type", "externalip", "-wait", "200ms:2s", "-check", "haproxy -c -f \"$KUBE2LB_CANDIDATE\"",
			"-notify", "pidfile:SIGUSR2:/run/haproxy.pid", "-notify", "debug:", "-listen", "127.0.0.1:9180",
			"-log-format", "json", "-log-level", "debug", "-endpoints", "on", "-host-checks=false", "-update-timeout", "1m",
		}, base...), func(t *testing.T, o *options) {
			if o.kubeconfig != "k" || o.context != "ctx" || o.namespace != "ns" || o.selector != "a=b" || o.nodeSelector != "role=lb" {
				t.Errorf("connection flags %+v", o)
			}
			if o.nodeAddressType != "ExternalIP" || o.endpoints != "on" || o.hostChecks || o.logFormat != "json" || o.logLevel != slog.LevelDebug {
				t.Errorf("choices %q %q %v %q %v", o.nodeAddressType, o.endpoints, o.hostChecks, o.logFormat, o.logLevel)
			}
			if o.wait != (waitSpec{200 * time.Millisecond, 2 * time.Second}) || o.updateTimeout != time.Minute {
				t.Errorf("wait %v update %v", o.wait, o.updateTimeout)
			}
			if len(o.notify) != 2 || o.check == "" || o.listen != "127.0.0.1:9180" {
				t.Errorf("notify %q check %q listen %q", o.notify, o.check, o.listen)
			}
		}},
		{"wait zero", append([]string{"-wait", "0"}, base...), func(t *testing.T, o *options) {
			if o.wait != (waitSpec{}) {
				t.Errorf("wait = %v, want 0", o.wait)
			}
		}},
		{"wait seconds", append([]string{"-wait", "0.5:3"}, base...), func(t *testing.T, o *options) {
			if o.wait != (waitSpec{500 * time.Millisecond, 3 * time.Second}) {
				t.Errorf("wait = %v", o.wait)
			}
		}},
		{"dry run needs no config", []string{"-template", "t", "-dry-run"}, func(t *testing.T, o *options) {
			if !o.dryRun || o.config != "" {
				t.Errorf("dry run %v config %q", o.dryRun, o.config)
			}
		}},
		{"version needs nothing", []string{"-version"}, func(t *testing.T, o *options) {
			if !o.version {
				t.Error("version not set")
			}
		}},
		{"empty server name templates: the default", append([]string{"-server-name-templates", " , ", "-server-name-templates="}, base...), func(t *testing.T, o *options) {
			if diff := cmp.Diff([]string{defaultServerNameTemplate}, o.serverNameTemplates); diff != "" {
				t.Errorf("server name templates (-want +got):\n%s", diff)
			}
		}},
		{"the original's glog flags", append([]string{
			"-logtostderr", "-alsologtostderr=false", "-v", "2", "-vmodule=x=3", "-log_dir", "/tmp", "-stderrthreshold", "INFO",
			"-log_backtrace_at=a.go:1", "-v=4", "-domain", "after.example",
		}, base...), func(t *testing.T, o *options) {
			want := []string{"-logtostderr", "-alsologtostderr", "-v", "-vmodule", "-log_dir", "-stderrthreshold", "-log_backtrace_at"}
			if diff := cmp.Diff(want, o.glog); diff != "" {
				t.Errorf("glog flags (-want +got):\n%s", diff)
			}
			if o.domain != "after.example" || o.template != "t.tmpl" {
				t.Errorf("flags after the glog ones: domain %q template %q", o.domain, o.template)
			}
		}},
		{"DNS node address, a named port", append([]string{"-node-address-type", "internaldns", "-listen", "localhost:http"}, base...), func(t *testing.T, o *options) {
			if o.nodeAddressType != "InternalDNS" || o.listen != "localhost:http" {
				t.Errorf("node address type %q, listen %q", o.nodeAddressType, o.listen)
			}
		}},
		{"empty listen: none", append([]string{"-listen", ":9180", "-listen", ""}, base...), func(t *testing.T, o *options) {
			if o.listen != "" {
				t.Errorf("listen %q, want none", o.listen)
			}
		}},
		{"lb ip ranges", append([]string{"-lb-ip-ranges", "192.0.2.7/28, 2001:db8::/120"}, base...), func(t *testing.T, o *options) {
			want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28"), netip.MustParsePrefix("2001:db8::/120")}
			if !slices.Equal(o.lbIPRanges, want) {
				t.Errorf("lbIPRanges = %v, want %v", o.lbIPRanges, want)
			}
		}},
		{"ipv6 lb ip", append([]string{"-default-lb-ip", "::"}, base...), func(t *testing.T, o *options) {
			if !o.defaultLBIP.Equal(net.IPv6unspecified) {
				t.Errorf("lb ip %v", o.defaultLBIP)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			tt.check(t, o)
		})
	}
}

// TestUsage checks -help: every flag but the glog ones, which one line
// names.
func TestUsage(t *testing.T) {
	var out strings.Builder
	if _, err := parseFlags([]string{"-help"}, &out); err == nil {
		t.Fatal("-help: no error")
	}
	help := out.String()
	for _, want := range []string{"Usage of kube2lb:\n", "\n  -template file\n", "\n  -logtostderr, -alsologtostderr, -v, -vmodule, -log_dir, -stderrthreshold, -log_backtrace_at\n"} {
		if !strings.Contains(help, want) {
			t.Errorf("-help lacks %q:\n%s", want, help)
		}
	}
	for name := range glogFlags {
		if strings.Contains(help, "\n  -"+name+" ") || strings.Contains(help, "\n  -"+name+"\n") {
			t.Errorf("-help lists -%s on its own line", name)
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	base := []string{"-template", "t.tmpl", "-config", "out.cfg"}
	tests := []struct {
		name string
		args []string
		want string // substring of the error
	}{
		{"no template", []string{"-config", "x"}, "-template is required"},
		{"no config", []string{"-template", "x"}, "-config is required"},
		{"once and dry run", append([]string{"-once", "-dry-run"}, base...), "exclude each other"},
		{"unknown flag", append([]string{"-bogus"}, base...), "flag provided but not defined: -bogus"},
		{"positional", append(base, "extra"), `unexpected argument "extra"`},
		{"bad wait", append([]string{"-wait", "soon"}, base...), `invalid value "soon" for flag -wait: "soon" is neither a number of seconds nor a Go duration`},
		{"wait max below min", append([]string{"-wait", "5s:1s"}, base...), "maximum 1s is shorter than minimum 5s"},
		{"negative wait", append([]string{"-wait", "-1"}, base...), `"-1" is negative`},
		{"bad update timeout", append([]string{"-update-timeout", "ten"}, base...), "flag -update-timeout"},
		{"zero update timeout", append([]string{"-update-timeout", "0"}, base...), "-update-timeout: must be positive"},
		{"bad reconnect timeout", append([]string{"-reconnect-timeout", "x"}, base...), "flag -reconnect-timeout"},
		{"bad lb ip", append([]string{"-default-lb-ip", "10.0.0"}, base...), `invalid value "10.0.0" for flag -default-lb-ip: "10.0.0" is not an IPv4 or IPv6 address`},
		{"bad lb ip range", append([]string{"-lb-ip-ranges", "192.0.2.0/28,192.0.2.9"}, base...), `invalid value "192.0.2.0/28,192.0.2.9" for flag -lb-ip-ranges: netip.ParsePrefix("192.0.2.9"): no '/'`},
		{"bad endpoints", append([]string{"-endpoints", "maybe"}, base...), `"maybe" is not one of auto, on, off`},
		{"listen without a port", append([]string{"-listen", "nonsense"}, base...), `invalid value "nonsense" for flag -listen: "nonsense" is not HOST:PORT, e.g. 127.0.0.1:9180 or :9180 (address nonsense: missing port in address)`},
		{"listen on a bad port", append([]string{"-listen", "127.0.0.1:99999"}, base...), `"127.0.0.1:99999" is not HOST:PORT`},
		{"glog -v without a value", append([]string{"-v", "-dry-run"}, base...), `invalid value "-dry-run" for flag -v: "-dry-run" is not a number`},
		{"glog -log_dir without a value", append([]string{"-log_dir", "-once"}, base...), `invalid value "-once" for flag -log_dir: "-once" is a flag, not a value`},
		{"glog bad threshold", append([]string{"-stderrthreshold", "LOUD"}, base...), `"LOUD" is not INFO, WARNING, ERROR, FATAL or a number`},
		{"bad node address type", append([]string{"-node-address-type", "Public"}, base...), "is not one of InternalIP, ExternalIP, Hostname"},
		{"bad log format", append([]string{"-log-format", "xml"}, base...), `"xml" is not one of text, json`},
		{"bad log level", append([]string{"-log-level", "loud"}, base...), `"loud" is not one of debug, info, warn, error`},
		{"NaN seconds", append([]string{"-update-timeout", "NaN"}, base...), `"NaN" is not a number of seconds`},
		{"huge seconds", append([]string{"-update-timeout", "1e12"}, base...), `"1e12" is not a number of seconds`},
		{"bad selector", append([]string{"-selector", "a b"}, base...), `-selector: label key "a b"`},
		{"bad node selector", append([]string{"-node-selector", "role in (lb"}, base...), "-node-selector"},
		{"port mode with spaces", append([]string{"-default-port-mode", "http; x"}, base...), "-default-port-mode"},
		{"missing cache dir", append([]string{"-cache-dir", "/nonexistent/kube2lb"}, base...), "-cache-dir: stat /nonexistent/kube2lb: no such file or directory"},
		{"cache dir a file", append([]string{"-cache-dir", "flags_test.go"}, base...), "-cache-dir: flags_test.go is not a directory"},
		{"config in a missing directory", []string{"-template", "t.tmpl", "-config", "/nonexistent/kube2lb/lb.cfg"}, "-config /nonexistent/kube2lb/lb.cfg: stat /nonexistent/kube2lb: no such file or directory"},
		{"config under a file", []string{"-template", "t.tmpl", "-config", "flags_test.go/lb.cfg"}, "-config flags_test.go/lb.cfg: flags_test.go is not a directory"},
		{"config a directory", []string{"-template", "t.tmpl", "-config", "."}, "-config . is a directory"},
		{"config the template", []string{"-template", "flags_test.go", "-config", "./flags_test.go"}, "-config ./flags_test.go is the -template file"},
		{"dry run, config in a missing directory", []string{"-template", "t.tmpl", "-dry-run", "-config", "/nonexistent/kube2lb/lb.cfg"}, "-config /nonexistent/kube2lb/lb.cfg: stat /nonexistent/kube2lb: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if err == nil {
				t.Fatalf("parseFlags(%q) succeeded, want error containing %q", tt.args, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseFlags(%q) = %q, want it to contain %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestFlagsExpandHome: a path flag's leading ~/ is the home directory, as
// the original's README wrote -kubecfg=~/.kube/config (no shell expands it
// after =); other forms are left alone.
func TestFlagsExpandHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	o, err := parseFlags([]string{"-kubecfg=~/.kube/config", "-template=~/t.tmpl", "-config=~/lb.cfg", "-cache-dir=~/"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{o.kubeconfig, o.template, o.config, o.cacheDir}
	want := []string{filepath.Join(home, ".kube/config"), filepath.Join(home, "t.tmpl"), filepath.Join(home, "lb.cfg"), home}
	if !slices.Equal(got, want) {
		t.Errorf("paths %q, want %q", got, want)
	}
	for _, p := range []string{"~user/x", "~", "a/~/b", "./~/x"} {
		if got := expandHome(p); got != p {
			t.Errorf("expandHome(%q) = %q, want it unchanged", p, got)
		}
	}
}
