package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kube2lb/kube2lb/kubeapi"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestHealthReadyMetrics(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0")
	td.src.status = []kubeapi.ResourceStatus{
		{Resource: "services", Synced: true, Watching: true, Objects: 1, Relists: 2, WatchRestarts: 3, BytesRead: 1234},
		{Resource: "nodes", Synced: true, Watching: true, Objects: 1},
	}
	h := td.httpHandler()

	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not synced") {
		t.Errorf("/readyz before start = %d %q, want 503 not synced", code, body)
	}
	td.src.setServices("a")
	td.start(t, nil)
	waitFor(t, "notification counted", func() bool { st := td.chain.Stats(); return st[0].Successes == 1 })
	waitFor(t, "ready", func() bool { code, _ := get(t, h, "/readyz"); return code == http.StatusOK })
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", code)
	}

	_, metrics := get(t, h, "/metrics")
	for _, want := range []string{
		`kube2lb_renders_total{result="ok"} `,
		`kube2lb_applies_total{result="changed"} 1`,
		`kube2lb_check_failures_total 0`,
		`kube2lb_notifications_total{notifier="command#1",result="ok"} 1`, // a command may hold credentials
		`kube2lb_cached_objects{resource="services"} 1`,
		`kube2lb_watch_up{resource="nodes"} 1`,
		`kube2lb_relists_total{resource="services"} 2`,
		`kube2lb_watch_restarts_total{resource="services"} 3`,
		`kube2lb_api_read_bytes_total{resource="services"} 1234`,
		`kube2lb_last_apply_age_seconds `,
		`kube2lb_build_info{version=`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
}

func TestReadyzReportsFailedApply(t *testing.T) {
	td := newTestDaemon(t, "-wait", "0", "-check", "echo refused >&2; exit 1")
	td.src.setServices("a")
	td.start(t, nil)
	h := td.httpHandler()
	waitFor(t, "check failure counted", func() bool { return td.metrics.checkFailures.get() >= 1 })
	// The check's output is the log's: anyone who reaches -listen reads
	// /readyz.
	code, body := get(t, h, "/readyz")
	if code != http.StatusServiceUnavailable || body != "last apply failed (the log says why)\n" {
		t.Errorf("/readyz = %d %q, want 503 without the check's output", code, body)
	}
	if td.notifications() != 0 {
		t.Error("notified after a failed check")
	}
}

func TestCheckSelector(t *testing.T) {
	for _, sel := range []string{"", "a", "!a", "a=b", "a==b", "a!=b", "a in (x, y)", "a notin (x)", "app.kubernetes.io/name=web,tier!=db", "a=", "n>3"} {
		if err := checkSelector(sel); err != nil {
			t.Errorf("checkSelector(%q) = %v, want nil", sel, err)
		}
	}
	for _, sel := range []string{"a b", "a=b c", "-a", "a,,b", "a in (x y)", "Bad_Prefix/x=y", "a=" + strings.Repeat("v", 64)} {
		if err := checkSelector(sel); err == nil {
			t.Errorf("checkSelector(%q) = nil, want an error", sel)
		}
	}
}

// TestMetricsCountersSurviveARestartOfTheWatches checks that a template
// that starts or stops needing EndpointSlices, which restarts the
// watches, never takes a counter back.
func TestMetricsCountersSurviveARestartOfTheWatches(t *testing.T) {
	td := newTestDaemon(t)
	first, second := newFakeSource(), newFakeSource()
	first.status = []kubeapi.ResourceStatus{
		{Resource: "services", Relists: 2, WatchRestarts: 3, BytesRead: 1000},
		{Resource: "endpointslices.discovery.k8s.io", Relists: 1, WatchRestarts: 1, BytesRead: 50},
	}
	second.status = []kubeapi.ResourceStatus{{Resource: "services", Relists: 1, WatchRestarts: 0, BytesRead: 10}}
	td.metrics.setSource(first)
	td.metrics.setSource(second) // EndpointSlices no longer watched
	td.metrics.setSource(first)  // and watched again
	var out strings.Builder
	td.metrics.write(&out, time.Now())
	for _, want := range []string{
		`kube2lb_relists_total{resource="services"} 5` + "\n",
		`kube2lb_watch_restarts_total{resource="services"} 6` + "\n",
		`kube2lb_api_read_bytes_total{resource="services"} 2010` + "\n",
		`kube2lb_relists_total{resource="endpointslices.discovery.k8s.io"} 2` + "\n",
		`kube2lb_api_read_bytes_total{resource="endpointslices.discovery.k8s.io"} 100` + "\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, out.String())
		}
	}
}

// TestReadyzWaitsForTheFirstNotification: applied is not ready until the
// load balancer has been told of the file.
func TestReadyzWaitsForTheFirstNotification(t *testing.T) {
	release := filepath.Join(t.TempDir(), "release")
	td := newTestDaemon(t, "-wait", "0", "-notify", "command:while [ ! -e "+release+" ]; do sleep 0.01; done")
	td.src.setServices("a")
	td.start(t, nil)
	h := td.httpHandler()
	waitFor(t, "the apply", func() bool { return td.metrics.applies.get("changed") == 1 })
	// The test daemon's own notifier (echo) runs first: either may be the
	// one /readyz names as not done, on a busy machine.
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no notification by command#") {
		t.Errorf("/readyz while the first notification runs = %d %q, want 503", code, body)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready", func() bool { code, _ := get(t, h, "/readyz"); return code == http.StatusOK })
}
