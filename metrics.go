package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kube2lb/kube2lb/kubeapi"
	"github.com/kube2lb/kube2lb/notify"
)

// metrics is kube2lb's state for /metrics, /healthz and /readyz. It is
// written by the run loop and the notifier goroutine and read by the HTTP
// server, so every field is behind mu.
type metrics struct {
	mu sync.Mutex

	renders         *counter
	applies         *counter
	checkFailures   *counter
	templateReloads *counter
	statusUpdates   *counter

	hostnameConflicts int // of the last render

	chain *notify.Chain
	src   source
	// past holds the counters of the sources stopped before src (a
	// template that starts or stops needing EndpointSlices restarts the
	// watches), by resource: counters never go back in one process.
	past         map[string]kubeapi.ResourceStatus
	lastApply    time.Time // last successful apply (written or already right)
	lastApplyErr error     // of the last render+apply attempt
	lastBeat     time.Time
	started      time.Time
}

func newMetrics(chain *notify.Chain) *metrics {
	m := &metrics{chain: chain, started: time.Now(), lastBeat: time.Now()}
	m.renders = newCounter(m, "kube2lb_renders_total", "Template executions by result.", "result")
	m.applies = newCounter(m, "kube2lb_applies_total", "Applies by result: changed (written), unchanged (skipped), error.", "result")
	m.checkFailures = newCounter(m, "kube2lb_check_failures_total", "Candidate configurations refused by -check.")
	m.templateReloads = newCounter(m, "kube2lb_template_reloads_total", "Template reloads (SIGHUP, or the file changed) by result.", "result")
	m.statusUpdates = newCounter(m, "kube2lb_status_updates_total", "Writes of status.loadBalancer (-publish-status) by result: published, cleared, conflict, error.", "result")
	return m
}

func (m *metrics) setSource(s source) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.src != nil {
		if m.past == nil {
			m.past = make(map[string]kubeapi.ResourceStatus)
		}
		for _, st := range m.src.Status() {
			p := m.past[st.Resource]
			p.WatchRestarts += st.WatchRestarts
			p.Relists += st.Relists
			p.BytesRead += st.BytesRead
			m.past[st.Resource] = p
		}
	}
	m.src = s
}

func (m *metrics) heartbeat() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastBeat = time.Now()
}

func (m *metrics) applied(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastApply = t
}

func (m *metrics) setHostnameConflicts(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hostnameConflicts = n
}

func (m *metrics) setApplyResult(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastApplyErr = err
}

// alive reports whether the run loop has ticked recently.
func (m *metrics) alive(now time.Time, stale time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if age := now.Sub(m.lastBeat); age > stale {
		return fmt.Errorf("run loop silent for %s", age.Round(time.Second))
	}
	return nil
}

// ready reports whether the caches are synced and the last apply and
// notification succeeded.
func (m *metrics) ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.src == nil || !m.src.Synced():
		return fmt.Errorf("not synced with the API server yet")
	case m.lastApply.IsZero() && m.lastApplyErr == nil:
		return fmt.Errorf("no configuration applied yet")
	case m.lastApplyErr != nil:
		// Not the error: it holds the -check command's output, and
		// anyone who reaches -listen reads /readyz.
		return fmt.Errorf("last apply failed (the log says why)")
	}
	for i, st := range m.chain.Stats() {
		switch {
		case st.LastError != nil:
			return fmt.Errorf("last notification by %s failed (the log says why)", publicName(st.Notifier, i))
		case st.Successes == 0:
			// The first notification (every process notifies once at
			// start) has not finished: the load balancer may not serve
			// the file yet.
			return fmt.Errorf("no notification by %s done yet", publicName(st.Notifier, i))
		}
	}
	return nil
}

// publicName is how /readyz and /metrics name notifier i: by its spec,
// but a command (which may hold credentials: curl -u user:password) as
// command#N, N its place among the -notify flags.
func publicName(spec string, i int) string {
	if strings.HasPrefix(spec, "command:") {
		return "command#" + strconv.Itoa(i+1)
	}
	return spec
}

// write writes every metric in the Prometheus text format.
func (m *metrics) write(w io.Writer, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range []*counter{m.renders, m.applies, m.checkFailures, m.templateReloads, m.statusUpdates} {
		c.write(w)
	}
	family(w, "kube2lb_hostname_conflicts", "gauge", "Server names dropped in the last render: an older service claims them on the same listener.")
	fmt.Fprintf(w, "kube2lb_hostname_conflicts %d\n", m.hostnameConflicts)
	family(w, "kube2lb_notifications_total", "counter", "Notifier runs by notifier and result.")
	for i, st := range m.chain.Stats() {
		fmt.Fprintf(w, "kube2lb_notifications_total{notifier=%s,result=\"ok\"} %d\n", quote(publicName(st.Notifier, i)), st.Successes)
		fmt.Fprintf(w, "kube2lb_notifications_total{notifier=%s,result=\"error\"} %d\n", quote(publicName(st.Notifier, i)), st.Failures)
	}
	if m.src != nil {
		st := m.src.Status()
		family(w, "kube2lb_cached_objects", "gauge", "Objects in the cache by resource.")
		for _, s := range st {
			fmt.Fprintf(w, "kube2lb_cached_objects{resource=%s} %d\n", quote(s.Resource), s.Objects)
		}
		family(w, "kube2lb_watch_up", "gauge", "1 when the resource's list or watch works.")
		for _, s := range st {
			fmt.Fprintf(w, "kube2lb_watch_up{resource=%s} %d\n", quote(s.Resource), b2i(s.Watching))
		}
		family(w, "kube2lb_watch_restarts_total", "counter", "Watches started again by resource.")
		for _, s := range st {
			fmt.Fprintf(w, "kube2lb_watch_restarts_total{resource=%s} %d\n", quote(s.Resource), s.WatchRestarts+m.past[s.Resource].WatchRestarts)
		}
		family(w, "kube2lb_relists_total", "counter", "Lists after the first one (410 Gone, errors) by resource.")
		for _, s := range st {
			fmt.Fprintf(w, "kube2lb_relists_total{resource=%s} %d\n", quote(s.Resource), s.Relists+m.past[s.Resource].Relists)
		}
		family(w, "kube2lb_api_read_bytes_total", "counter", "Bytes read from the API server by resource.")
		for _, s := range st {
			fmt.Fprintf(w, "kube2lb_api_read_bytes_total{resource=%s} %d\n", quote(s.Resource), s.BytesRead+m.past[s.Resource].BytesRead)
		}
	}
	family(w, "kube2lb_last_apply_age_seconds", "gauge", "Seconds since the last successful apply (since start when none).")
	since := m.lastApply
	if since.IsZero() {
		since = m.started
	}
	fmt.Fprintf(w, "kube2lb_last_apply_age_seconds %.3f\n", now.Sub(since).Seconds())
	family(w, "kube2lb_build_info", "gauge", "Always 1; the labels say which build runs.")
	fmt.Fprintf(w, "kube2lb_build_info{version=%s,goversion=%s} 1\n", quote(buildVersion()), quote(runtime.Version()))
}

func family(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// quote writes a label value in the exposition format's escaping.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// counter is a counter family with fixed label names. Its methods take
// the owning metrics' lock.
type counter struct {
	m      *metrics
	name   string
	help   string
	labels []string
	values map[string]uint64 // key: label values joined by \x00
}

func newCounter(m *metrics, name, help string, labels ...string) *counter {
	return &counter{m: m, name: name, help: help, labels: labels, values: map[string]uint64{}}
}

// inc adds one to the series with these label values.
func (c *counter) inc(values ...string) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	c.values[strings.Join(values, "\x00")]++
}

// get returns the series' value (for tests).
func (c *counter) get(values ...string) uint64 {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return c.values[strings.Join(values, "\x00")]
}

func (c *counter) write(w io.Writer) {
	family(w, c.name, "counter", c.help)
	if len(c.labels) == 0 {
		fmt.Fprintf(w, "%s %d\n", c.name, c.values[""])
		return
	}
	keys := make([]string, 0, len(c.values))
	for k := range c.values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vals := strings.Split(k, "\x00")
		pairs := make([]string, len(c.labels))
		for i, l := range c.labels {
			pairs[i] = l + "=" + quote(vals[i])
		}
		fmt.Fprintf(w, "%s{%s} %d\n", c.name, strings.Join(pairs, ","), c.values[k])
	}
}
