package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube2lb/kube2lb/kubeapi"
	"github.com/kube2lb/kube2lb/notify"
)

// fakeSource is an in-memory stand-in for the kubeapi caches.
type fakeSource struct {
	mu      sync.Mutex
	snap    kubeapi.Snapshot
	synced  bool
	status  []kubeapi.ResourceStatus
	changed chan struct{}
}

func newFakeSource() *fakeSource {
	return &fakeSource{changed: make(chan struct{}, 1), synced: true}
}

func (f *fakeSource) Run(ctx context.Context)    { <-ctx.Done() }
func (f *fakeSource) Changed() <-chan struct{}   { return f.changed }
func (f *fakeSource) Synced() bool               { f.mu.Lock(); defer f.mu.Unlock(); return f.synced }
func (f *fakeSource) Snapshot() kubeapi.Snapshot { f.mu.Lock(); defer f.mu.Unlock(); return f.snap }
func (f *fakeSource) Status() []kubeapi.ResourceStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// setServices replaces the cluster with NodePort services of these names
// and signals a change.
func (f *fakeSource) setServices(names ...string) {
	f.mu.Lock()
	var svcs []*kubeapi.Service
	for i, n := range names {
		svcs = append(svcs, &kubeapi.Service{
			Metadata: kubeapi.ObjectMeta{Name: n, Namespace: "default", CreationTimestamp: time.Unix(int64(i), 0)},
			Spec: kubeapi.ServiceSpec{Type: "NodePort", Ports: []kubeapi.ServicePort{
				{Name: "http", Protocol: "TCP", Port: 80, NodePort: int32(30000 + i), TargetPort: kubeapi.IntOrString{IntVal: 8080}},
			}},
		})
	}
	f.snap = kubeapi.Snapshot{Services: svcs, Nodes: []*kubeapi.Node{{
		Metadata: kubeapi.ObjectMeta{Name: "node-a"},
		Status: kubeapi.NodeStatus{
			Addresses:  []kubeapi.NodeAddress{{Type: "InternalIP", Address: "10.0.0.1"}},
			Conditions: []kubeapi.NodeCondition{{Type: "Ready", Status: "True"}},
		},
	}}}
	f.mu.Unlock()
	f.signal()
}

func (f *fakeSource) signal() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

const testTemplate = `{{- range .Services }}
{{ .Name }} {{ .Port.Port }} {{ .NodePort }}
{{- end }}
`

// testDaemon is a daemon wired to a fake source, a template and a config
// file in a temporary directory, and a command notifier that appends a
// line to a file per notification.
type testDaemon struct {
	*daemon
	src      *fakeSource
	dir      string
	config   string
	template string
	notified string
	logs     *syncBuffer
}

func newTestDaemon(t *testing.T, args ...string) *testDaemon {
	t.Helper()
	return newTestDaemonWith(t, testTemplate, args...)
}

// newTestDaemonWith is newTestDaemon with another template.
func newTestDaemonWith(t *testing.T, template string, args ...string) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	td := &testDaemon{
		src:      newFakeSource(),
		dir:      dir,
		config:   filepath.Join(dir, "lb.cfg"),
		template: filepath.Join(dir, "lb.tmpl"),
		notified: filepath.Join(dir, "notified"),
		logs:     new(syncBuffer),
	}
	if err := os.WriteFile(td.template, []byte(template), 0o644); err != nil {
		t.Fatal(err)
	}
	args = append([]string{
		"-template", td.template, "-config", td.config, "-host-checks=false",
		"-notify", "command:echo x >> " + td.notified,
	}, args...)
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(td.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := newDaemon(o, logger, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d.newSource = func(slicesWanted) (source, error) { return td.src, nil }
	td.daemon = d
	return td
}

// start runs the daemon until the test ends. stop cancels it and returns
// run's result; done is closed when run has returned.
func (td *testDaemon) start(t *testing.T, hup chan os.Signal) (stop func() error, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	var err error
	go func() {
		defer close(ch)
		err = td.run(ctx, hup)
	}()
	stop = func() error {
		cancel()
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Error("daemon did not stop")
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop, ch
}

func (td *testDaemon) notifications() int {
	b, _ := os.ReadFile(td.notified)
	return strings.Count(string(b), "x\n")
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (td *testDaemon) configHas(s string) func() bool {
	return func() bool {
		b, _ := os.ReadFile(td.config)
		return strings.Contains(string(b), s)
	}
}

func TestDaemonRendersAndNotifiesOncePerChange(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0")
	td.src.setServices("web")
	td.start(t, nil)

	waitFor(t, "first render", td.configHas("web 80 30000"))
	waitFor(t, "first notification", func() bool { return td.notifications() == 1 })

	// A change that does not alter the output writes and notifies nothing.
	td.src.signal()
	td.src.setServices("web")
	td.src.setServices("web", "api")
	waitFor(t, "second render", td.configHas("api 80 30001"))
	waitFor(t, "second notification", func() bool { return td.notifications() == 2 })
	if got := td.metrics.applies.get("unchanged"); got == 0 {
		t.Errorf("unchanged applies = 0, want the identical renders counted as skipped")
	}
	waitFor(t, "two notifications counted", func() bool {
		st := td.chain.Stats()
		return len(st) == 1 && st[0].Successes == 2
	})
	if st := td.chain.Stats(); st[0].Failures != 0 {
		t.Errorf("notification stats = %+v, want no failure", st)
	}
	// The log of each apply says what changed and how long it took.
	applied := regexp.MustCompile(`msg="configuration applied" .*services_added=default/api:80/tcp .*render_time=[0-9.]+[mµn]?s apply_time=[0-9.]+[mµn]?s`)
	waitFor(t, "the second apply logged", func() bool { return applied.MatchString(td.logs.String()) })
}

func TestDaemonDebounceCoalesces(t *testing.T) {
	// A long quiet period: the burst below is sent well within it.
	td := newTestDaemon(t, "-wait", "2s:60s")
	td.src.setServices("a")
	td.start(t, nil)
	waitFor(t, "first render", td.configHas("a 80 30000"))
	waitFor(t, "first notification", func() bool { return td.notifications() == 1 })

	names := []string{"a"}
	for i := range 50 {
		names = append(names, fmt.Sprintf("s%02d", i))
		td.src.setServices(names...)
	}
	waitFor(t, "burst rendered", td.configHas("s49 80 30050"))
	waitFor(t, "burst notified", func() bool { return td.notifications() >= 2 })
	if got := td.notifications(); got != 2 {
		t.Errorf("notifications = %d, want 2 (one for the first sync, one for the whole burst)", got)
	}
}

func TestDaemonDebounceMaxBoundsAStream(t *testing.T) {
	// The quiet period is never reached: changes keep coming faster than
	// it. Only the maximum delay can render.
	td := newTestDaemon(t, "-wait", "1s:2s")
	td.src.setServices("a")
	td.start(t, nil)
	waitFor(t, "first render", td.configHas("a 80 30000"))

	stop := make(chan struct{})
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		td.src.setServices("a", "b")
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				td.src.signal()
			}
		}
	}()
	waitFor(t, "render during a steady stream of changes", td.configHas("b 80 30001"))
	close(stop)
	<-streamDone
}

func TestDaemonSIGHUPWithBrokenTemplateKeepsTheOldOne(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0")
	td.src.setServices("a")
	hup := make(chan os.Signal, 1)
	td.start(t, hup)
	waitFor(t, "first render", td.configHas("a 80 30000"))

	if err := os.WriteFile(td.template, []byte("{{ range .Services }}broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	hup <- nil
	waitFor(t, "reload refused", func() bool { return td.metrics.templateReloads.get("error") == 1 })
	td.src.setServices("a", "b")
	waitFor(t, "render with the old template", td.configHas("b 80 30001"))

	// A good template is picked up by the next SIGHUP.
	if err := os.WriteFile(td.template, []byte("{{ len .Services }} services\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hup <- nil
	waitFor(t, "render with the new template", td.configHas("2 services"))
}

func TestDaemonRenderErrorKeepsLastConfig(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0")
	td.src.setServices("a")
	hup := make(chan os.Signal, 1)
	td.start(t, hup)
	waitFor(t, "first render", td.configHas("a 80 30000"))
	waitFor(t, "first notification", func() bool { return td.notifications() == 1 }) // runs after the file is in place
	before, _ := os.ReadFile(td.config)

	// Parses, and executes on kube2lb's sample data, but fails on this
	// cluster: a service named "a" calls a template that does not exist.
	if err := os.WriteFile(td.template, []byte(`{{ range .Services }}{{ if eq .Name "a" }}{{ template "missing" }}{{ end }}{{ end }}`), 0o644); err != nil {
		t.Fatal(err)
	}
	hup <- nil
	waitFor(t, "render error counted", func() bool { return td.metrics.renders.get("error") >= 1 })
	after, _ := os.ReadFile(td.config)
	if !bytes.Equal(before, after) {
		t.Errorf("config changed after a failed render:\n%s", after)
	}
	if err := td.metrics.ready(); err == nil {
		t.Error("ready after a failed render")
	}
	if n := td.notifications(); n != 1 {
		t.Errorf("notifications = %d, want 1", n)
	}

	// Every change fails the same way: one error line, not one a change.
	for i := range 3 {
		td.src.setServices("a", fmt.Sprint("b", i))
		waitFor(t, "another failed render", func() bool { return td.metrics.renders.get("error") >= uint64(2+i) })
	}
	if n := strings.Count(td.logs.String(), "render failed; the last good configuration stays"); n != 1 {
		t.Errorf("%d error lines for one failure that repeats, want 1:\n%s", n, td.logs)
	}
	if n := strings.Count(td.logs.String(), "render failed again, same error"); n != 3 {
		t.Errorf("%d debug lines for the repeats, want 3", n)
	}

	// Reloaded, a template failing with the same text is logged whole:
	// whoever just tried a fix must see that it did not work.
	if err := os.WriteFile(td.template, []byte(`{{ range .Services }}{{ if eq .Name "a" }}{{ template "missing" }}{{ end }}{{ end }}{{/* fixed? */}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	hup <- nil
	waitFor(t, "the reloaded template's error", func() bool {
		return strings.Count(td.logs.String(), "render failed; the last good configuration stays") == 2
	})
}

func TestDaemonSIGTERMDuringApplyLetsItFinish(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "check-started")
	td := newTestDaemon(t, "-wait", "0", "-check", "touch "+marker+" && sleep 1")
	td.src.setServices("a")
	stop, _ := td.start(t, nil)
	waitFor(t, "check started", func() bool { _, err := os.Stat(marker); return err == nil })
	if err := stop(); err != nil {
		t.Fatalf("run = %v, want nil after SIGTERM", err)
	}
	if !td.configHas("a 80 30000")() {
		t.Error("the apply in progress at SIGTERM did not finish")
	}
	if n := td.notifications(); n != 1 {
		t.Errorf("notifications = %d, want 1: the file changed, so the load balancer must hear of it", n)
	}
}

func TestDaemonFirstApplyNotifiesEvenWhenUnchanged(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0")
	td.src.setServices("a")
	if err := os.WriteFile(td.config, []byte("\na 80 30000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	td.start(t, nil)
	waitFor(t, "notification of the configuration already in place", func() bool { return td.notifications() == 1 })
	if got := td.metrics.applies.get("changed"); got != 0 {
		t.Errorf("changed applies = %d, want 0: the file was right", got)
	}
}

func TestDaemonSIGHUPRestartingWatchesWaitsForSync(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0")
	td.src.setServices("a", "b")
	// The restarted caches (the new template uses endpoints) start empty
	// and unsynced.
	restarted := newFakeSource()
	restarted.synced = false
	first := true
	td.newSource = func(slicesWanted) (source, error) {
		if first {
			first = false
			return td.src, nil
		}
		return restarted, nil
	}
	hup := make(chan os.Signal, 1)
	td.start(t, hup)
	waitFor(t, "first render", td.configHas("b 80 30001"))

	if err := os.WriteFile(td.template, []byte("{{ range .Services }}{{ .Name }} endpoints {{ len .Endpoints }}\n{{ end }}"), 0o644); err != nil {
		t.Fatal(err)
	}
	hup <- nil
	waitFor(t, "watches restarted", func() bool { return td.metrics.templateReloads.get("ok") == 1 })
	restarted.signal() // a change before the first list completes
	before, _ := os.ReadFile(td.config)

	restarted.mu.Lock()
	restarted.synced = true
	restarted.mu.Unlock()
	restarted.setServices("a", "b", "c")
	waitFor(t, "render of the synced caches", td.configHas("c endpoints 0"))
	if !strings.Contains(string(before), "b 80 30001") {
		t.Errorf("config before the new caches synced = %q, want the old rendering", before)
	}
}

func TestDaemonReconnectTimeout(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0", "-reconnect-timeout", "1")
	td.src.status = []kubeapi.ResourceStatus{{Resource: "services", Synced: true, Watching: false,
		LastError: fmt.Errorf("connection refused")}}
	td.src.setServices("a")
	stop, done := td.start(t, nil)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("run did not give up")
	}
	if err := stop(); err == nil || !strings.Contains(err.Error(), "no working watch of services") {
		t.Fatalf("run = %v, want the reconnect timeout", err)
	}
}

func TestDaemonDryRun(t *testing.T) {
	td := newTestDaemon(t, "-dry-run")
	var out bytes.Buffer
	td.stdout = &out
	td.src.setServices("a")
	if err := td.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "a 80 30000") {
		t.Errorf("dry-run output %q", out.String())
	}
	if _, err := os.Stat(td.config); !os.IsNotExist(err) {
		t.Errorf("dry-run wrote %s", td.config)
	}
	if td.notifications() != 0 {
		t.Error("dry-run notified")
	}
}

func TestDaemonOnce(t *testing.T) {
	td := newTestDaemon(t, "-once")
	td.src.setServices("a")
	if err := td.run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !td.configHas("a 80 30000")() || td.notifications() != 1 {
		t.Errorf("once: config written %v, notifications %d", td.configHas("a 80 30000")(), td.notifications())
	}

	td = newTestDaemon(t, "-once", "-notify", "command:exit 3")
	td.src.setServices("a")
	if err := td.run(context.Background(), nil); err == nil {
		t.Error("once with a failing notifier succeeded")
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDiff compares diff's merge with set differences computed naively,
// over random sorted lists. Its items are pointers, as the services are:
// an item of b equal by compare to one of a, but not the same pointer (a
// service port the render changed), is neither added nor removed.
func TestDiff(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Lists of "ns/name:port/proto" in the order of
	// render.CompareServicePorts, not of strings: web, web-api, web1.
	ports := func() []string {
		var l []string
		for _, name := range []string{"web", "web-api", "web1"} {
			for _, p := range []int{80, 443, 9000} {
				for range rng.IntN(3) { // 0, 1 or 2 copies: services of one name
					l = append(l, fmt.Sprintf("ns/%s:%d/tcp", name, p))
				}
			}
		}
		return l
	}
	portOrder := func(a, b *string) int {
		an, ap, _ := strings.Cut(*a, ":")
		bn, bp, _ := strings.Cut(*b, ":")
		anum, _ := strconv.Atoi(strings.TrimSuffix(ap, "/tcp"))
		bnum, _ := strconv.Atoi(strings.TrimSuffix(bp, "/tcp"))
		return cmp.Or(strings.Compare(an, bn), cmp.Compare(anum, bnum))
	}
	minus := func(a, b []string) []string {
		var out []string
		for _, s := range a {
			if !slices.Contains(b, s) {
				out = append(out, s)
			}
		}
		return slices.Compact(out)
	}
	names := func(l []*string) []string {
		var out []string
		for _, p := range l {
			out = append(out, *p)
		}
		return out
	}
	for range 200 {
		a, b := ports(), ports()
		// b's items: a's very pointer where a has the name, else (and
		// at random) a new pointer to an equal string.
		pa := make([]*string, len(a))
		for i := range a {
			pa[i] = &a[i]
		}
		pb := make([]*string, len(b))
		for i := range b {
			pb[i] = &b[i]
			if k := slices.Index(a, b[i]); k >= 0 && rng.IntN(2) == 0 {
				pb[i] = pa[k]
			}
		}
		added, removed := diff(pa, pb, portOrder)
		if got, want := names(added), minus(b, a); !slices.Equal(got, want) {
			t.Fatalf("diff(%q, %q): added %q, want %q", a, b, got, want)
		}
		if got, want := names(removed), minus(a, b); !slices.Equal(got, want) {
			t.Fatalf("diff(%q, %q): removed %q, want %q", a, b, got, want)
		}
	}
}

func TestSummary(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want string
	}{
		{0, ""},
		{2, "0 1"},
		{summaryMax, "0 1 2 3 4 5 6 7 8 9"},
		{summaryMax + 3, "0 1 2 3 4 5 6 7 8 9 (and 3 more)"},
	} {
		items := make([]int, tt.n)
		for i := range items {
			items[i] = i
		}
		if got := summary(items, strconv.Itoa); got != tt.want {
			t.Errorf("summary of %d items = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// TestDaemonEndpointsOn checks that -endpoints on keeps the endpoints of
// a template that reads them without naming the field (printf "%#v"),
// which auto leaves empty: it names only Backends.
func TestDaemonEndpointsOn(t *testing.T) {
	const tmpl = `{{ range .Services }}{{ range .Backends }}{{ end }}{{ printf "%#v" . }}{{ end }}`
	for _, mode := range []string{"auto", "on"} {
		t.Run(mode, func(t *testing.T) {
			td := newTestDaemonWith(t, tmpl, "-wait", "0", "-endpoints", mode)
			td.src.setServices("web")
			td.src.mu.Lock()
			web := td.src.snap.Services[0]
			td.src.snap.EndpointsWatched = true
			td.src.snap.EndpointSlices = []*kubeapi.EndpointSlice{{
				Metadata:    kubeapi.ObjectMeta{Name: "web-1", Namespace: "default", Labels: kubeapi.Pairs{{Key: kubeapi.LabelServiceName, Value: web.Metadata.Name}}},
				AddressType: "IPv4",
				Ports:       []kubeapi.EndpointPort{{Name: &web.Spec.Ports[0].Name, Port: &web.Spec.Ports[0].TargetPort.IntVal}},
				Endpoints:   []kubeapi.Endpoint{{Addresses: []string{"10.1.0.4"}}},
			}}
			td.src.mu.Unlock()
			td.start(t, nil)
			waitFor(t, "first render", td.configHas("render.ServiceInformation{"))
			b, err := os.ReadFile(td.config)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Contains(string(b), `IP:"10.1.0.4"`), mode == "on"; got != want {
				t.Errorf("the endpoint in the configuration: %v, want %v:\n%s", got, want, b)
			}
		})
	}
}

// TestDaemonFailedNotifierRunsOncePerAttempt checks that a notifier that
// fails is run once, its failure logged as the first attempt, and retried
// after the backoff alone; the notifiers before it are not run again.
func TestDaemonFailedNotifierRunsOncePerAttempt(t *testing.T) {
	saved := notifyBackoff
	notifyBackoff = notify.Backoff{Initial: time.Hour, Max: time.Hour}
	t.Cleanup(func() { notifyBackoff = saved })
	failed := filepath.Join(t.TempDir(), "failed")
	td := newTestDaemon(t, "-wait", "0", "-notify", "command:echo y >> "+failed+"; exit 3")
	td.src.setServices("a")
	td.start(t, nil)
	waitFor(t, "the failure logged", func() bool { return strings.Contains(td.logs.String(), "notification failed, will retry") })
	b, _ := os.ReadFile(failed)
	if n := strings.Count(string(b), "y\n"); n != 1 {
		t.Errorf("the failing notifier ran %d times before its retry, want 1", n)
	}
	if n := td.notifications(); n != 1 {
		t.Errorf("the notifier before it ran %d times, want 1", n)
	}
	if logs := td.logs.String(); !strings.Contains(logs, "attempt=1 ") || strings.Count(logs, "notification failed") != 1 {
		t.Errorf("want one failure logged, as attempt 1:\n%s", logs)
	}
}

// TestDaemonWarnsOfACheckWithoutTheCandidate: a -check that does not name
// $KUBE2LB_CANDIDATE most likely checks the file in place, which passes
// forever.
func TestDaemonWarnsOfACheckWithoutTheCandidate(t *testing.T) {
	for check, warned := range map[string]bool{
		"haproxy -c -f /etc/haproxy/haproxy.cfg": true,
		`haproxy -c -f "$KUBE2LB_CANDIDATE"`:     false,
	} {
		td := newTestDaemon(t, "-check", check)
		if got := strings.Contains(td.logs.String(), "-check does not name $KUBE2LB_CANDIDATE"); got != warned {
			t.Errorf("-check %q: warned %v, want %v:\n%s", check, got, warned, td.logs.String())
		}
	}
}

// TestDaemonRetriesAFailedApply: an apply that failed is tried again with
// no change of the cluster, and succeeds once its cause is gone (here a
// -check that refuses until a file appears; a full disk or a read-only
// directory in production).
func TestDaemonRetriesAFailedApply(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "fixed")
	td := newTestDaemon(t, "-wait", "0", "-check", "test -e "+marker+" # $KUBE2LB_CANDIDATE")
	td.src.setServices("a")
	td.start(t, nil)
	waitFor(t, "the failed apply", func() bool { return td.metrics.applies.get("error") >= 1 })
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the configuration applied again, without a change", td.configHas("a 80 30000"))
}

// TestDaemonRepeatedApplyFailureLoggedOnce: a check that keeps refusing
// is logged whole once, then briefly as it is tried again, although each
// attempt's error differs in its numbers: the candidate's random name,
// the pid a load balancer's check prints. A change that fails is logged
// whole: its error may be another.
func TestDaemonRepeatedApplyFailureLoggedOnce(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0", "-check", `echo "[ALERT] ($$) : parsing [$KUBE2LB_CANDIDATE:2] : unknown keyword"; exit 1`)
	if err := os.WriteFile(td.config, []byte("the last good one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	td.src.setServices("a")
	td.start(t, nil)
	const whole = `level=ERROR msg="apply failed; the last good configuration stays"`
	const again = "apply failed again, same error"
	// The first retry (the start's updates, one per pending change, are
	// logged whole: a change's failure may be another).
	waitFor(t, "the first retry", func() bool { return strings.Contains(td.logs.String(), again) })
	failed, logged := td.metrics.applies.get("error"), strings.Count(td.logs.String(), whole)
	waitFor(t, "another retry", func() bool { return td.metrics.applies.get("error") >= failed+1 })
	if n := strings.Count(td.logs.String(), whole); n != logged {
		t.Errorf("%d error lines after the retries, want %d:\n%s", n, logged, td.logs)
	}
	if n := strings.Count(td.logs.String(), again); n < 2 {
		t.Errorf("%d lines for the repeats, want 2 or more", n)
	}
	td.src.setServices("a", "b")
	waitFor(t, "the change's failure logged whole", func() bool { return strings.Count(td.logs.String(), whole) == logged+1 })
}

// TestDaemonApplyFailureWithoutConfig: with no configuration in place, a
// failed apply does not speak of the last good one.
func TestDaemonApplyFailureWithoutConfig(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0", "-check", "false # $KUBE2LB_CANDIDATE")
	td.src.setServices("a")
	td.start(t, nil)
	waitFor(t, "the failed apply", func() bool { return td.metrics.applies.get("error") >= 1 })
	if logs := td.logs.String(); !strings.Contains(logs, `level=ERROR msg="apply failed; no configuration written yet"`) {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestFailureKey(t *testing.T) {
	for in, want := range map[string]string{
		"": "",
		"check .lb.cfg.kube2lb-123456 (4242): line 7": "check .lb.cfg.kube#lb-# (#): line #",
		"0a00b":     "#a#b",
		"no digits": "no digits",
	} {
		if got := failureKey(in); got != want {
			t.Errorf("failureKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDaemonReloadsAChangedTemplate checks that a template file that
// changed is read again without SIGHUP, as the original read it at every
// render (a ConfigMap volume replaces it in place), that one that no longer
// parses leaves the last good one in use with one error, and that the file
// is read once per change.
func TestDaemonReloadsAChangedTemplate(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0")
	td.src.setServices("a")
	td.start(t, nil)
	waitFor(t, "first render", td.configHas("a 80 30000"))

	// A ConfigMap volume: a new file renamed over the old one.
	next := filepath.Join(td.dir, "next.tmpl")
	if err := os.WriteFile(next, []byte("{{ len .Services }} services\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, td.template); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "render with the new template", td.configHas("1 services"))

	// Edited in place into a template that does not parse.
	if err := os.WriteFile(td.template, []byte("{{ range .Services }}broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reload refused", func() bool { return td.metrics.templateReloads.get("error") == 1 })
	td.src.setServices("a", "b")
	waitFor(t, "render with the last good template", td.configHas("2 services"))
	time.Sleep(2500 * time.Millisecond) // two ticks more: no second attempt at the same file
	if n := td.metrics.templateReloads.get("error"); n != 1 {
		t.Errorf("%d failed reloads of one broken file, want 1", n)
	}
	if n := td.metrics.templateReloads.get("ok"); n != 1 {
		t.Errorf("%d reloads, want 1", n)
	}

	// Removed: said once, the last good template stays; back, it is read.
	if err := os.Remove(td.template); err != nil {
		t.Fatal(err)
	}
	const missing = "template file cannot be read; the last good template stays in use"
	waitFor(t, "the warning of a missing template", func() bool { return strings.Contains(td.logs.String(), missing) })
	td.src.setServices("a", "b", "c")
	waitFor(t, "render with the last good template", td.configHas("3 services"))
	time.Sleep(2500 * time.Millisecond) // two ticks more: no second warning
	if err := os.WriteFile(td.template, []byte("{{ len .Services }} services again\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "render with the template back", td.configHas("3 services again"))
	if n := strings.Count(td.logs.String(), missing); n != 1 {
		t.Errorf("%d warnings of the missing template, want 1", n)
	}
}

// TestWantEndpoints: the caches keep no EndpointSlice for a template that
// reads neither .Endpoints nor .Backends, only those of the Services of
// policy Local for one that reads .Backends alone, and all for one that
// names .Endpoints or with -endpoints on.
func TestWantEndpoints(t *testing.T) {
	const (
		none     = `rendered {{ range .Services }}{{ .Name }}{{ end }}`
		backends = `rendered {{ range .Services }}{{ range .Backends }}{{ .Name }}{{ end }}{{ end }}`
		all      = `rendered {{ range .Services }}{{ range .Endpoints }}{{ .IP }}{{ end }}{{ end }}`
	)
	for _, tc := range []struct {
		mode, tmpl string
		want       slicesWanted
	}{
		{"auto", none, noSlices},
		{"auto", backends, localSlices},
		{"auto", all, allSlices},
		{"on", none, allSlices},
		{"on", backends, allSlices},
		{"off", backends, noSlices},
		{"off", all, noSlices},
	} {
		td := newTestDaemonWith(t, tc.tmpl, "-endpoints", tc.mode)
		var got []slicesWanted
		td.newSource = func(w slicesWanted) (source, error) {
			got = append(got, w)
			return td.src, nil
		}
		td.src.setServices("a")
		stop, _ := td.start(t, nil)
		waitFor(t, "first render", td.configHas("rendered"))
		stop()
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("-endpoints %s, template %s: caches started with %v, want %s", tc.mode, tc.tmpl, got, tc.want)
		}
	}
}

// TestDaemonWarnsOwnerChanged checks the warning for a configuration whose
// owner an apply changed (kube2lb, not root, cannot chown it back to the
// load balancer's user or group); here the check command, run as root,
// gives the candidate to another owner.
func TestDaemonWarnsOwnerChanged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown the candidate")
	}
	td := newTestDaemon(t, "-wait", "0", "-check", "chown 4242:4243 $KUBE2LB_CANDIDATE")
	if err := os.WriteFile(td.config, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	td.src.setServices("a")
	td.start(t, nil)
	waitFor(t, "the warning", func() bool {
		return strings.Contains(td.logs.String(), `msg="the configuration's owner changed: a load balancer that reads it as the old user or group may no longer read it" config=`+td.config+` was=0:0 now=4242:4243`)
	})
}
