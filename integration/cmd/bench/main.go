// Command bench measures kube2lb at cluster scale, for `make bench`: it
// starts a local control plane (see package controlplane) holding a large
// cluster — 10,000 Services of type NodePort and LoadBalancer with 1 to 3
// ports and kube2lb's annotations in 50 namespaces, 1,000 Nodes, an
// EndpointSlice of 3 ready endpoints per Service — then runs the built
// kube2lb with the HAProxy examples and -wait 0, and reports the time to the
// first configuration, the latency of changes made through the API, memory,
// CPU, the bytes read from the API server and the binary's size; then the
// same against a fixture of 3,000 Services (-small). It prints a table per
// fixture and one of the targets (targets.go), writes them, with the machine
// and the command, into BENCHMARKS.md between the markers of the generated
// section, and exits 1 when a target is missed.
//
// Loading the cluster takes minutes, so the etcd data directory is saved
// under ${KUBE2LB_CACHE:-~/.cache/kube2lb}/bench/HASH, HASH covering the
// generator's parameters, its version and the control plane's build, and
// reused while they stay the same.
//
//	cd integration && KUBE2LB_BIN=../bin/kube2lb go run ./cmd/bench
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/session"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	f := fixture{Version: fixtureVersion, Namespaces: 50, Endpoints: 3, NodePortMin: 30000}
	fs.IntVar(&f.Services, "services", 10000, "services in the fixture")
	fs.IntVar(&f.Nodes, "nodes", 1000, "nodes in the fixture")
	fs.IntVar(&f.ClusterIP, "clusterip", 0, "ClusterIP services in the fixture besides, each with an EndpointSlice (not rendered)")
	fs.IntVar(&f.SmallPool, "small-pool", 50, "nodes of the nodes-variant case (labelled "+poolLabel+"=small)")
	changes := fs.Int("changes", 200, "changes measured per case")
	concurrency := fs.Int("concurrency", 16, "requests in flight while loading the fixture")
	small := fs.Int("small", smallServices, fmt.Sprintf("services of a second fixture, measured after the first, whose peak RSS is held to the target for clusters of up to %d services (0: none)", smallServices))
	nodesFull := fs.Bool("nodes-full", false, "also run the nodes variant on every node (start-up only: its configuration is about 1 GiB)")
	var env []string
	fs.Func("kube2lb-env", "`KEY=VALUE` added to kube2lb's environment (e.g. GOMEMLIMIT=40MiB), repeatable", func(s string) error {
		if !strings.Contains(s, "=") {
			return fmt.Errorf("want KEY=VALUE")
		}
		env = append(env, s)
		return nil
	})
	root := fs.String("root", "..", "the repository root (templates, BENCHMARKS.md)")
	out := fs.String("out", "", "file to write the results into (default ROOT/BENCHMARKS.md; - for none)")
	cache := fs.String("cache", defaultCache(), "cache directory; the fixture is saved in CACHE/bench/HASH")
	fs.StringVar(&keepLogs, "logs", "", "`directory` to copy each case's kube2lb log and last configuration into (SERVICES-CASE.log, SERVICES-CASE.cfg)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *small < 0 || *small > smallServices {
		return fmt.Errorf("-small %d: want 0 (none) to %d, the largest cluster the 40 MB target is for", *small, smallServices)
	}
	bin := os.Getenv("KUBE2LB_BIN")
	if bin == "" {
		return fmt.Errorf("KUBE2LB_BIN is not set: run `make bench`, or build kube2lb with `make build` and set KUBE2LB_BIN")
	}
	if *out == "" {
		*out = filepath.Join(*root, "BENCHMARKS.md")
	}
	bins, missing, err := cp.Locate()
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("control plane not built (%s): run `make controlplane`", strings.Join(missing, ", "))
	}
	f.Binaries = filepath.Base(filepath.Dir(bins.KubeAPIServer)) + "," + filepath.Base(filepath.Dir(bins.Etcd))

	cases := []benchCase{
		{Name: "endpoints", Template: "examples/haproxy/haproxy-endpoints.cfg.tmpl", Changes: *changes},
		{Name: fmt.Sprintf("nodes, %d nodes", f.SmallPool), Template: "examples/haproxy/haproxy.cfg.tmpl",
			Args: []string{"-node-selector", poolLabel + "=small"}, Changes: *changes},
	}
	if *nodesFull {
		cases = append(cases, benchCase{Name: fmt.Sprintf("nodes, %d nodes", f.Nodes), Template: "examples/haproxy/haproxy.cfg.tmpl", Unchecked: true})
	}
	for i := range cases {
		cases[i].Env = env
	}

	// A fixture of up to smallServices is held to the small clusters'
	// memory target, whichever it is.
	runs := []fixtureRun{{fixture: f, small: f.Services <= smallServices}}
	switch {
	case *small > 0 && *small < f.Services:
		g := f
		g.Services, g.ClusterIP = *small, 0
		runs = append(runs, fixtureRun{fixture: g, small: true})
	case *small > 0:
		logf("no second fixture: -small %d is not under -services %d", *small, f.Services)
	}
	var done []fixtureRun
	for i, fr := range runs {
		var cs []benchCase
		for _, bc := range cases {
			if i == 0 || !bc.Unchecked { // -nodes-full measures the first fixture only
				cs = append(cs, bc)
			}
		}
		fr.results, err = runFixture(ctx, fr.fixture, bin, *root, *cache, *concurrency, cs)
		if err != nil {
			break // what was measured is still reported
		}
		done = append(done, fr)
	}
	if len(done) == 0 {
		return err
	}
	rep := newReport(done, bin, args)
	fmt.Print(rep.table())
	if *out != "-" {
		if err := rep.writeInto(*out); err != nil {
			return err
		}
		logf("results written into %s", *out)
	}
	if err != nil {
		return err
	}
	if missed := rep.missed(); len(missed) > 0 {
		return fmt.Errorf("targets missed: %s", strings.Join(missed, "; "))
	}
	return nil
}

// runFixture loads (or reuses) fixture f in a control plane of its own,
// runs the cases against it, and stops it.
func runFixture(ctx context.Context, f fixture, bin, root, cache string, concurrency int, cases []benchCase) ([]result, error) {
	s := session.New(ctx, "bench", func(msg string) { logf("%s", msg) })
	var results []result
	ok := s.Run(func() {
		saved := savedFixture(s, f, cache, concurrency)
		begin := time.Now()
		c := cp.StartWith(s, cp.Options{APIServerFlags: apiServerFlags, EtcdDataDir: copyDir(s, saved)})
		logf("control plane with the fixture of %d services ready in %s", f.Services, time.Since(begin).Round(time.Millisecond))
		for i, bc := range cases {
			results = append(results, runCase(s, c, f, bin, root, bc, i))
		}
	})
	s.RunCleanups()
	if !ok {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s", s.Reason())
	}
	return results, nil
}

func defaultCache() string {
	if d := os.Getenv("KUBE2LB_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "kube2lb")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "kube2lb")
}
