// Command kube2lb configures a load balancer from the Kubernetes API.
//
// It watches Services, Nodes and (when the template uses them)
// EndpointSlices, renders an operator's text/template into the load
// balancer's configuration file for every Service of type NodePort or
// LoadBalancer, and tells the load balancer to reload:
//
//   - connection: -kubecfg, $KUBECONFIG, in-cluster, ~/.kube/config, or a
//     bare -apiserver URL (package kubeconfig);
//   - caches: list+watch over the API's JSON (package kubeapi);
//   - output: the template model, deterministic rendering, and an atomic,
//     checked apply that leaves the last good file in place on any error
//     (package render);
//   - reload: signals to a pid or pidfile, a command, or Caddy's admin API,
//     retried until they succeed (package notify).
//
// Changes are debounced (-wait MIN:MAX); the file is written only when its
// content changes, and the load balancer is notified only then. -once and
// -dry-run render a single time, for scripts and for testing a template
// against a live cluster. -listen serves /healthz, /readyz and /metrics.
//
// Like a cloud's load balancer, kube2lb serves only the LoadBalancer
// services of its class (-load-balancer-class; by default those without
// one), gives each server name to the oldest service claiming it on a
// listener, and with -publish-status writes the services' EXTERNAL-IP
// (status.loadBalancer, status.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// version is stamped at build time (-ldflags "-X main.version=...").
var version = ""

// exitUsage is the exit code of a bad command line.
const exitUsage = 2

func main() {
	_, badGOGC = setGCPercent()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, new(*usageError)):
		fmt.Fprintln(os.Stderr, "kube2lb:", err)
		os.Exit(exitUsage)
	default:
		fmt.Fprintln(os.Stderr, "kube2lb:", err)
		os.Exit(1)
	}
}

// usageError is a bad command line.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// run is kube2lb without the process: it returns when ctx is cancelled
// (nil), when -once or -dry-run are done, or on a fatal error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err}
	}
	if o.version {
		fmt.Fprintln(stdout, "kube2lb", buildVersion())
		return nil
	}
	logger := newLogger(o, stderr)
	if len(o.glog) > 0 {
		logger.Warn("the original's glog flags are ignored: kube2lb logs to standard error, -log-level sets the level", "flags", strings.Join(o.glog, " "))
	}
	if badGOGC != "" {
		logger.Warn("GOGC is neither off nor a number: kube2lb sets the collector's target itself", "GOGC", badGOGC, "target", gcPercent)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d, err := newDaemon(o, logger, stdout)
	if err != nil {
		return err
	}
	if err := d.connect(); err != nil {
		return err
	}
	return d.run(ctx, hup)
}

func newLogger(o *options, w io.Writer) *slog.Logger {
	ho := &slog.HandlerOptions{Level: o.logLevel}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// gcPercent is the collector's target unless GOGC is set: a heap of 1.25
// times the live data instead of Go's twice. Against 10,000 Services it
// takes the peak RSS from about 107 to 77 MiB for 7 to 8 ms more CPU per
// change and 0.15 to 0.2 s more CPU at start-up, the change latency
// within its target with room to spare (BENCHMARKS.md, session 10).
const gcPercent = 25

// badGOGC is the GOGC that setGCPercent ignored, for a warning.
var badGOGC string

// setGCPercent sets gcPercent, unless GOGC holds the operator's choice:
// off or a number, as the runtime reads them. An empty GOGC is no choice
// (the runtime reads it as unset, a templated manifest leaves it so), nor
// is one the runtime cannot read (it takes it as 100, silently): that
// one is returned, for a warning. It reports whether it set the target.
func setGCPercent() (set bool, ignored string) {
	v := os.Getenv("GOGC")
	if v == "off" || isGOGCNumber(v) {
		return false, ""
	}
	debug.SetGCPercent(gcPercent)
	return true, v
}

// isGOGCNumber reports whether the runtime reads s as a GOGC number: an
// optional minus and decimal digits, within an int32.
func isGOGCNumber(s string) bool {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return false
	}
	_, err := strconv.ParseInt(s, 10, 32)
	return err == nil
}

// buildVersion is the stamped version (make build: git describe), else
// "devel". The module version Go records (go install PATH@VERSION) is not
// read: runtime/debug's parser of the build information was 5 KB of the
// binary, which has a size limit (issue 9), and make build stamps.
func buildVersion() string {
	if version != "" {
		return version
	}
	return "devel"
}
