package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// defaultServerNameTemplate is the original kube2lb's default.
const defaultServerNameTemplate = "{{ .Service.Name }}.{{ .Service.Namespace }}.svc.{{ .Domain }}"

// options holds every command-line setting after validation.
type options struct {
	apiserver  string
	kubeconfig string
	context    string

	template string
	config   string
	check    string
	notify   []string

	domain              string
	serverNameTemplates []string
	defaultPortMode     string
	defaultLBIP         net.IP
	lbIPRanges          []netip.Prefix
	nodeAddressType     string
	hostChecks          bool

	namespace    string
	selector     string
	nodeSelector string
	endpoints    string // auto, on, off

	loadBalancerClass string
	publishStatus     bool
	publishIPs        []string // canonical, sorted, without duplicates

	wait             waitSpec
	reconnectTimeout time.Duration
	updateTimeout    time.Duration

	cacheDir string // -cache-dir as given; "" for the default (see spillDir)

	once    bool
	dryRun  bool
	listen  string
	version bool

	logFormat string
	logLevel  slog.Level

	glog []string // the original's glog flags given, ignored: see glogFlags
}

// waitSpec is the -wait flag, MIN[:MAX]: after a change, render once no
// further change has arrived for Min, and at the latest Max after the first
// change of a burst. The zero value renders on every change.
type waitSpec struct {
	Min, Max time.Duration
}

func (w waitSpec) String() string {
	if w.Min == 0 && w.Max == 0 {
		return "0"
	}
	return w.Min.String() + ":" + w.Max.String()
}

// UnmarshalText parses MIN[:MAX]; each part is a Go duration or a number
// of seconds. MAX defaults to MIN and may not be shorter than it.
func (w *waitSpec) UnmarshalText(b []byte) error {
	s := string(b)
	minS, maxS, hasMax := strings.Cut(s, ":")
	lo, err := parseSeconds(minS)
	if err != nil {
		return err
	}
	hi := lo
	if hasMax {
		if hi, err = parseSeconds(maxS); err != nil {
			return err
		}
	}
	if hi < lo {
		return fmt.Errorf("maximum %s is shorter than minimum %s", hi, lo)
	}
	*w = waitSpec{Min: lo, Max: hi}
	return nil
}

func (w waitSpec) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// maxSeconds bounds durations given as numbers (a year is plenty).
const maxSeconds = 365 * 24 * 3600

// parseSeconds accepts a Go duration ("1.5s", "200ms") or a plain number
// of seconds ("10", "0.5"), as the original's float-seconds flags did.
func parseSeconds(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var d time.Duration
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > maxSeconds {
			return 0, fmt.Errorf("%q is not a number of seconds up to %d", s, maxSeconds)
		}
		d = time.Duration(f * float64(time.Second))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%q is neither a number of seconds nor a Go duration such as 10s or 1m30s", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// durationFlag is a flag.Value for a duration given as seconds or a Go
// duration.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := parseSeconds(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

// listFlag is a repeatable string flag.
type listFlag struct{ list *[]string }

func (f listFlag) String() string {
	if f.list == nil {
		return ""
	}
	return strings.Join(*f.list, " ")
}

func (f listFlag) Set(s string) error {
	*f.list = append(*f.list, s)
	return nil
}

// choiceFlag is a string flag restricted to a few values.
type choiceFlag struct {
	v       *string
	choices []string
}

func (f choiceFlag) String() string {
	if f.v == nil {
		return ""
	}
	return *f.v
}

func (f choiceFlag) Set(s string) error {
	for _, c := range f.choices {
		if strings.EqualFold(s, c) {
			*f.v = c
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", s, strings.Join(f.choices, ", "))
}

// newFlagSet declares kube2lb's flags on a fresh FlagSet writing into o.
func newFlagSet(o *options, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kube2lb", flag.ContinueOnError)
	fs.SetOutput(output)

	*o = options{
		domain:              "cluster.local",
		serverNameTemplates: []string{defaultServerNameTemplate},
		defaultPortMode:     "http",
		defaultLBIP:         net.IPv4zero,
		nodeAddressType:     "InternalIP",
		hostChecks:          true,
		endpoints:           "auto",
		wait:                waitSpec{Min: time.Second, Max: 5 * time.Second},
		updateTimeout:       10 * time.Second,
		logFormat:           "text",
		logLevel:            slog.LevelInfo,
	}

	fs.StringVar(&o.apiserver, "apiserver", "", "API server `URL`; with -kubecfg it overrides the file's server, alone it is used without credentials")
	fs.StringVar(&o.kubeconfig, "kubecfg", "", "kubeconfig `file` (default: $KUBECONFIG, in-cluster, then ~/.kube/config)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "alias of -kubecfg")
	fs.StringVar(&o.context, "context", "", "kubeconfig context `name` (default: the file's current-context)")

	fs.StringVar(&o.template, "template", "", "template `file` (Go text/template)")
	fs.StringVar(&o.config, "config", "", "configuration `file` to write")
	fs.StringVar(&o.check, "check", "", "shell `command` that validates a candidate configuration before it replaces -config; the candidate's path is in $KUBE2LB_CANDIDATE")
	fs.Var(listFlag{&o.notify}, "notify", "notifier run after each applied change, repeatable: command:CMD, pid:SIGNAL:PID, pidfile:SIGNAL:PATH, caddy:ADDRESS, debug:")

	fs.StringVar(&o.domain, "domain", o.domain, "cluster `domain`, passed to templates as .Domain")
	fs.Func("server-name-templates", "comma-separated `templates` of server names (default, also when empty: "+strconv.Quote(defaultServerNameTemplate)+")", func(s string) error {
		var list []string
		for _, t := range strings.Split(s, ",") {
			if t = strings.TrimSpace(t); t != "" {
				list = append(list, t)
			}
		}
		if len(list) == 0 {
			// The original's entrypoint passes an unset variable.
			list = []string{defaultServerNameTemplate}
		}
		o.serverNameTemplates = list
		return nil
	})
	fs.StringVar(&o.defaultPortMode, "default-port-mode", o.defaultPortMode, "`mode` of ports without a kube2lb/port-mode entry")
	fs.Func("default-lb-ip", "listening `IP` of services without spec.loadBalancerIP (default 0.0.0.0)", func(s string) error {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return fmt.Errorf("%q is not an IPv4 or IPv6 address", s)
		}
		o.defaultLBIP = ip
		return nil
	})
	fs.Func("lb-ip-ranges", "`CIDR,...` of loadBalancerIPs served (default: not loopback, link-local, multicast)", func(s string) error {
		o.lbIPRanges = []netip.Prefix{}
		for _, f := range strings.Split(s, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(f))
			if err != nil {
				return err
			}
			o.lbIPRanges = append(o.lbIPRanges, p.Masked())
		}
		return nil
	})
	fs.Var(choiceFlag{&o.nodeAddressType, []string{"InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS"}}, "node-address-type", "node address `type` used as .Address: InternalIP, ExternalIP, Hostname, InternalDNS or ExternalDNS")
	fs.BoolVar(&o.hostChecks, "host-checks", o.hostChecks, "skip ports in this host's ephemeral range and loadBalancerIPs it cannot bind (false in containers and tests)")

	fs.StringVar(&o.namespace, "namespace", "", "watch Services and EndpointSlices of this `namespace` only (default: all)")
	fs.StringVar(&o.selector, "selector", "", "label `selector` for Services, e.g. 'expose=true,tier!=db'")
	fs.StringVar(&o.nodeSelector, "node-selector", "", "label `selector` for Nodes")
	fs.Var(choiceFlag{&o.endpoints, []string{"auto", "on", "off"}}, "endpoints", "watch EndpointSlices: auto (when the template names Endpoints or Backends), on (and keep every port's Endpoints) or off")
	fs.StringVar(&o.loadBalancerClass, "load-balancer-class", "", "serve only LoadBalancer services of this spec.loadBalancerClass `name` (default: only those without a class)")
	fs.BoolVar(&o.publishStatus, "publish-status", false, "write status.loadBalancer.ingress (EXTERNAL-IP) of the LoadBalancer services served: spec.loadBalancerIP, else -publish-ip")
	fs.Func("publish-ip", "comma-separated `IPs` published by -publish-status for services without spec.loadBalancerIP", func(s string) error {
		ips, err := parseIPList(s)
		if err != nil {
			return err
		}
		o.publishIPs = ips
		return nil
	})

	fs.TextVar(&o.wait, "wait", o.wait, "`MIN[:MAX]`: render once changes stop for MIN, at the latest MAX after the first one; 0 renders on every change")
	fs.Var(durationFlag{&o.reconnectTimeout}, "reconnect-timeout", "exit non-zero after this long without a working watch (seconds or a duration; 0 retries forever)")
	fs.Var(durationFlag{&o.updateTimeout}, "update-timeout", "deadline of one check and of one notifier run (seconds or a duration)")

	fs.StringVar(&o.cacheDir, "cache-dir", "", "`directory` of the template cache's file of rendered pieces, unlinked at once (default: that of -config; \""+cacheInMemory+"\": in memory)")
	fs.BoolVar(&o.once, "once", false, "sync, render, apply, notify once and exit")
	fs.BoolVar(&o.dryRun, "dry-run", false, "sync, render to standard output and exit, writing and notifying nothing")
	fs.Func("listen", "`address` serving /healthz, /readyz and /metrics, e.g. 127.0.0.1:9180 (empty: none)", func(s string) error {
		if s == "" { // an unset variable in a wrapper script
			o.listen = ""
			return nil
		}
		_, port, err := net.SplitHostPort(s)
		if err == nil {
			_, err = net.LookupPort("tcp", port) // a number, or a name of /etc/services
		}
		if err != nil {
			return fmt.Errorf("%q is not HOST:PORT, e.g. 127.0.0.1:9180 or :9180 (%v)", s, err)
		}
		o.listen = s
		return nil
	})
	fs.BoolVar(&o.version, "version", false, "print the version and exit")

	fs.Var(choiceFlag{&o.logFormat, []string{"text", "json"}}, "log-format", "log `format`: text or json")
	fs.Func("log-level", "log `level`: debug, info, warn or error (default info)", func(s string) error {
		if err := o.logLevel.UnmarshalText([]byte(s)); err != nil {
			return fmt.Errorf("%q is not one of debug, info, warn, error", s)
		}
		return nil
	})
	for name, isBool := range glogFlags {
		fs.Var(glogFlag{name, isBool, &o.glog}, name, "")
	}
	fs.Usage = func() { usage(fs) }
	return fs
}

// glogFlags are the flags the original accepted from glog, which its
// client-go linked (name: whether it is a bool flag): kube2lb accepts and
// ignores them, so that command lines written for it still start. It logs
// to standard error; -log-level sets the level.
var glogFlags = map[string]bool{
	"logtostderr": true, "alsologtostderr": true, "v": false, "vmodule": false,
	"log_dir": false, "stderrthreshold": false, "log_backtrace_at": false,
}

// glogFlag is one of glogFlags: it records that it was given.
type glogFlag struct {
	name   string
	isBool bool
	given  *[]string
}

func (f glogFlag) String() string   { return "" }
func (f glogFlag) IsBoolFlag() bool { return f.isBool }
func (f glogFlag) Set(v string) error {
	// As glog checked them; the others take any text, but not a flag
	// that a flag given no value would swallow (-log_dir -once).
	switch {
	case f.name == "v":
		if _, err := strconv.ParseInt(v, 10, 32); err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
	case f.name == "stderrthreshold":
		if _, err := strconv.Atoi(v); err != nil && !slices.Contains([]string{"INFO", "WARNING", "ERROR", "FATAL"}, strings.ToUpper(v)) {
			return fmt.Errorf("%q is not INFO, WARNING, ERROR, FATAL or a number", v)
		}
	case !f.isBool && strings.HasPrefix(v, "-"):
		return fmt.Errorf("%q is a flag, not a value", v)
	}
	if !slices.Contains(*f.given, "-"+f.name) {
		*f.given = append(*f.given, "-"+f.name)
	}
	return nil
}

// usage prints the flags but glogFlags, which one line names.
func usage(fs *flag.FlagSet) {
	shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	shown.SetOutput(fs.Output())
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := glogFlags[f.Name]; !ok {
			shown.Var(f.Value, f.Name, f.Usage)
			shown.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	fmt.Fprintln(fs.Output(), "Usage of kube2lb:")
	shown.PrintDefaults()
	fmt.Fprintln(fs.Output(), "  -logtostderr, -alsologtostderr, -v, -vmodule, -log_dir, -stderrthreshold, -log_backtrace_at\n    \tthe original's glog flags, ignored")
}

// isHelp reports whether arg asks for the flag list.
func isHelp(arg string) bool {
	switch strings.TrimLeft(arg, "-") {
	case "h", "help":
		return strings.HasPrefix(arg, "-")
	}
	return false
}

// parseFlags parses and validates the command line.
func parseFlags(args []string, output io.Writer) (*options, error) {
	o := new(options)
	fs := newFlagSet(o, output)
	if !slices.ContainsFunc(args, isHelp) {
		// The caller prints the error once; the flag list is for -help.
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w (kube2lb -help lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: every setting is a flag (see -help)", fs.Arg(0))
	}
	if o.version {
		return o, nil
	}
	for _, p := range []*string{&o.kubeconfig, &o.template, &o.config, &o.cacheDir} {
		*p = expandHome(*p)
	}
	if o.template == "" {
		return nil, errors.New("-template is required: the template file to render")
	}
	if o.once && o.dryRun {
		return nil, errors.New("-once and -dry-run exclude each other")
	}
	if o.config == "" && !o.dryRun {
		return nil, errors.New("-config is required (the file to write), unless -dry-run")
	}
	if o.defaultPortMode == "" {
		return nil, errors.New("-default-port-mode: empty mode")
	}
	if err := checkSelector(o.selector); err != nil {
		return nil, fmt.Errorf("-selector: %w", err)
	}
	if err := checkSelector(o.nodeSelector); err != nil {
		return nil, fmt.Errorf("-node-selector: %w", err)
	}
	if o.updateTimeout == 0 {
		return nil, errors.New("-update-timeout: must be positive (seconds or a duration such as 10s)")
	}
	if len(o.publishIPs) > 0 && !o.publishStatus {
		return nil, errors.New("-publish-ip is only used with -publish-status")
	}
	if strings.ContainsAny(o.loadBalancerClass, " \t\n") {
		return nil, fmt.Errorf("-load-balancer-class: %q holds whitespace", o.loadBalancerClass)
	}
	if strings.Trim(o.defaultPortMode, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
		return nil, fmt.Errorf("-default-port-mode: %q holds characters other than letters, digits, _ and -", o.defaultPortMode)
	}
	if o.cacheDir != "" && o.cacheDir != cacheInMemory {
		if err := isDir(o.cacheDir); err != nil {
			return nil, fmt.Errorf("-cache-dir: %w", err)
		}
	}
	if o.config != "" {
		// The file may not exist yet; its directory must, for the
		// candidate written beside it and renamed into place (checked
		// with -dry-run too: it tries the command line to be used).
		if err := isDir(filepath.Dir(o.config)); err != nil {
			return nil, fmt.Errorf("-config %s: %w", o.config, err)
		}
		// Not a directory, nor the template itself: a typo in a unit
		// file would overwrite the template with its rendering, and
		// kube2lb would then render that.
		if fi, err := os.Stat(o.config); err == nil {
			if fi.IsDir() {
				return nil, fmt.Errorf("-config %s is a directory", o.config)
			}
			if ti, err := os.Stat(o.template); err == nil && os.SameFile(fi, ti) {
				return nil, fmt.Errorf("-config %s is the -template file", o.config)
			}
		}
	}
	return o, nil
}

// expandHome replaces a leading ~/ of a path flag with the home directory:
// the original's README wrote -kubecfg=~/.kube/config, and a shell does
// not expand ~ after a flag's =. A path without a home ($HOME unset) is
// left as it is.
func expandHome(path string) string {
	rest, ok := strings.CutPrefix(path, "~/")
	if !ok {
		return path
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return path
	}
	return filepath.Join(home, rest)
}

// isDir returns why dir is not a directory, or nil.
func isDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// cacheInMemory is the -cache-dir that keeps the template cache in memory.
const cacheInMemory = "memory"

// spillDir is where the renderer keeps the template cache: -cache-dir,
// else the directory of -config; "" (in memory) for -once and -dry-run,
// which render once and reuse nothing.
func (o *options) spillDir() string {
	switch {
	case o.once || o.dryRun || o.cacheDir == cacheInMemory:
		return ""
	case o.cacheDir != "":
		return o.cacheDir
	}
	return filepath.Dir(o.config)
}

// parseIPList parses IP[,IP...] into canonical strings, sorted and without
// duplicates, so that two instances given the same IPs in another order
// publish the same status.
func parseIPList(s string) ([]string, error) {
	var addrs []netip.Addr
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IPv4 or IPv6 address", f)
		}
		addrs = append(addrs, a.Unmap())
	}
	if len(addrs) == 0 {
		return nil, errors.New("no IP given")
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) }) // one sort for every type: see render/sort.go
	addrs = slices.Compact(addrs)
	ips := make([]string, len(addrs))
	for i, a := range addrs {
		ips[i] = a.String()
	}
	return ips, nil
}
