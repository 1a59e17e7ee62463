package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kube2lb/kube2lb/kubeapi"
	"github.com/kube2lb/kube2lb/kubeconfig"
	"github.com/kube2lb/kube2lb/notify"
	"github.com/kube2lb/kube2lb/render"
)

// source is what the daemon needs of the cluster caches; *kubeapi.Cache
// has it, and tests substitute a fake.
type source interface {
	Run(ctx context.Context)
	Changed() <-chan struct{}
	Synced() bool
	Snapshot() kubeapi.Snapshot
	Status() []kubeapi.ResourceStatus
}

// oneShotSyncTimeout bounds the wait for the first list in -once and
// -dry-run when -reconnect-timeout is 0: a script must not hang forever.
const oneShotSyncTimeout = time.Minute

// tickInterval paces the heartbeat and the -reconnect-timeout check.
const tickInterval = time.Second

// maxApplyRetry is the longest wait before a failed apply is tried again.
const maxApplyRetry = 30 * time.Second

// daemon is one kube2lb process: the caches, the template, the notifiers
// and the state of the last apply.
type daemon struct {
	o        *options
	log      *slog.Logger
	stdout   io.Writer
	renderer *render.Renderer
	tmpl     *render.Template
	// tmplFile is the template file as stat saw it before its last
	// reading; tmplSeen a changed file seen at the last tick, not yet
	// read (see templateChanged).
	tmplFile, tmplSeen os.FileInfo
	// tmplMissing counts the ticks at which the template file could not
	// be read, in a row: warned of at the second (an editor may replace
	// it in a moment).
	tmplMissing int
	chain       *notify.Chain
	metrics     *metrics

	// newSource starts the caches, watching the EndpointSlices said.
	newSource func(endpoints slicesWanted) (source, error)

	src        source
	srcCancel  context.CancelFunc
	srcDone    chan struct{}
	srcStarted time.Time
	endpoints  slicesWanted

	// Notification in flight: cancelled when a newer apply supersedes it.
	notifyCancel context.CancelFunc
	notifyWG     sync.WaitGroup

	// What the last successful apply wrote, for the change summary: that
	// render's model values, which later renders share, but while
	// applies fail, when they keep the last good model's alive.
	lastServices []*render.ServiceInformation
	lastNodes    []*render.Node

	// notified is set once this process started notifying.
	notified bool
	// applyFailed is set while the last apply failed: loop tries again,
	// with retrying set. lastApplyErr is its error's text without its
	// numbers (failureKey), logged whole at lastApplyLog.
	applyFailed  bool
	retrying     bool
	lastApplyErr string
	lastApplyLog time.Time
	// lastRenderErr is the last render's error, logged whole at
	// lastRenderLog; "" after a render that worked.
	lastRenderErr string
	lastRenderLog time.Time

	// fileNotified says whether the load balancer has been told of the
	// file's configuration; pendingPublish is the status update waiting
	// for that (-publish-status). Shared with the notifying goroutine.
	pubMu          sync.Mutex
	fileNotified   bool
	pendingPublish func()

	// status is -publish-status (status.go); nil without it.
	status *statusPublisher
}

func newDaemon(o *options, logger *slog.Logger, stdout io.Writer) (*daemon, error) {
	d := &daemon{o: o, log: logger, stdout: stdout}
	if o.check != "" && !strings.Contains(o.check, "KUBE2LB_CANDIDATE") {
		// A check of -config itself passes forever; a script may read
		// the variable itself, so this is a warning.
		logger.Warn("-check does not name $KUBE2LB_CANDIDATE: it must check the candidate file, not the one in place", "check", o.check)
	}

	// A path that names no file is a bad flag (exit 2); what the file
	// holds is the template's to say.
	fi, err := os.Stat(o.template)
	switch {
	case err != nil:
		return nil, &usageError{fmt.Errorf("-template: %w", err)}
	case fi.IsDir():
		return nil, &usageError{fmt.Errorf("-template %s: is a directory", o.template)}
	}
	d.tmplFile = fi
	tmpl, err := render.ParseTemplate(o.template)
	if err != nil {
		return nil, err
	}
	d.tmpl = tmpl
	d.renderer, err = render.NewRenderer(render.Options{
		Domain:              o.domain,
		ServerNameTemplates: o.serverNameTemplates,
		DefaultPortMode:     o.defaultPortMode,
		DefaultLBIP:         o.defaultLBIP,
		LBIPRanges:          o.lbIPRanges,
		NodeAddressType:     o.nodeAddressType,
		SanityChecks:        o.hostChecks,
		LoadBalancerClass:   o.loadBalancerClass,
		SpillDir:            o.spillDir(),
		AllEndpoints:        o.endpoints == "on",
		Logger:              logger,
	})
	if err != nil {
		return nil, &usageError{err}
	}
	// Parsed in -dry-run too, so that a dry run catches a typo.
	var notifiers []notify.Notifier
	for _, spec := range o.notify {
		n, err := notify.Parse(spec, logger)
		if err != nil {
			return nil, &usageError{err}
		}
		notifiers = append(notifiers, n)
	}
	d.chain = notify.NewChain(notifiers, notify.ChainOptions{
		Timeout:           o.updateTimeout,
		Backoff:           notifyBackoff,
		WholeFirstAttempt: true, // see startNotifying
		Logger:            logger,
	})
	d.metrics = newMetrics(d.chain)

	return d, nil
}

// connect resolves the connection (kubeconfig, in-cluster or -apiserver);
// the caches are created by startSource.
func (d *daemon) connect() error {
	o := d.o
	cfg, err := kubeconfig.Load(kubeconfig.Options{
		Kubeconfig: o.kubeconfig,
		APIServer:  o.apiserver,
		Context:    o.context,
	})
	if err != nil {
		return err
	}
	d.log.Info("connecting", "source", cfg.Source, "server", cfg.Server.Redacted())
	d.newSource = func(endpoints slicesWanted) (source, error) {
		return kubeapi.NewCache(cfg, kubeapi.Options{
			Namespace:       o.namespace,
			ServiceSelector: o.selector,
			ExposedOnly:     true, // the others never reach a template
			NodeSelector:    o.nodeSelector,
			EndpointSlices:  endpoints != noSlices,
			LocalSlicesOnly: endpoints == localSlices,
			UserAgent:       "kube2lb/" + buildVersion(),
			Logger:          d.log,
		})
	}
	if o.publishStatus && !o.dryRun {
		w, err := kubeapi.NewWriter(cfg, "kube2lb/"+buildVersion())
		if err != nil {
			return err
		}
		d.status = newStatusPublisher(w, o.publishIPs, o.updateTimeout, d.log, func(r string) { d.metrics.statusUpdates.inc(r) })
		d.status.once = o.once
	}
	return nil
}

// slicesWanted is which EndpointSlices the caches keep.
type slicesWanted string

const (
	noSlices    slicesWanted = "none"
	localSlices slicesWanted = "local" // of the Services of externalTrafficPolicy Local
	allSlices   slicesWanted = "all"
)

// wantEndpoints says which EndpointSlices must be watched for t: none
// for a template that reads neither .Endpoints nor .Backends; those of
// the Services of policy Local for one that reads .Backends only, whose
// other ports' backends are every node (a real cluster's Services are
// mostly of policy Cluster, and their pods' comings and goings then cost
// nothing); all with -endpoints on.
func (d *daemon) wantEndpoints(t *render.Template) slicesWanted {
	switch {
	case d.o.endpoints == "on":
		return allSlices
	case d.o.endpoints == "off" || !t.UsesEndpoints():
		return noSlices
	case t.KeepsEndpoints():
		return allSlices
	}
	return localSlices
}

// startSource starts the caches in their own goroutine.
func (d *daemon) startSource(ctx context.Context, endpoints slicesWanted) error {
	src, err := d.newSource(endpoints)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.Run(sctx)
	}()
	d.src, d.srcCancel, d.srcDone, d.endpoints = src, cancel, done, endpoints
	d.srcStarted = time.Now()
	d.metrics.setSource(src)
	return nil
}

// stopSource stops the caches and waits until their connections are gone.
func (d *daemon) stopSource() {
	if d.srcCancel == nil {
		return
	}
	d.srcCancel()
	<-d.srcDone
	d.srcCancel = nil
}

// run is the daemon's life: sync, then render on changes until ctx ends.
func (d *daemon) run(ctx context.Context, hup <-chan os.Signal) error {
	if d.o.listen != "" {
		stopHTTP, err := d.serveHTTP(d.o.listen)
		if err != nil {
			return err
		}
		defer stopHTTP()
	}
	if err := d.startSource(ctx, d.wantEndpoints(d.tmpl)); err != nil {
		return err
	}
	defer d.stopSource()
	defer d.stopNotifying()

	if d.o.once || d.o.dryRun {
		return d.runOnce(ctx)
	}
	if d.status != nil {
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); d.status.run(sctx) }()
		defer func() { cancel(); <-done }()
	}
	return d.loop(ctx, hup)
}

// waitSynced waits for the first complete list of every watched resource,
// giving up after timeout (0: never).
func (d *daemon) waitSynced(ctx context.Context, timeout time.Duration) error {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	for !d.src.Synced() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.src.Changed():
		case <-expired:
			return fmt.Errorf("no complete list of the cluster after %s: %w", timeout, d.apiTrouble())
		case <-time.After(tickInterval):
		}
	}
	return nil
}

// apiTrouble summarises why the caches are not working.
func (d *daemon) apiTrouble() error {
	var errs []error
	for _, s := range d.src.Status() {
		if s.LastError != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Resource, s.LastError))
		} else if !s.Synced {
			errs = append(errs, fmt.Errorf("%s: not listed yet", s.Resource))
		}
	}
	if len(errs) == 0 {
		return errors.New("no error reported")
	}
	return errors.Join(errs...)
}

// runOnce is -once and -dry-run.
func (d *daemon) runOnce(ctx context.Context) error {
	timeout := d.o.reconnectTimeout
	if timeout == 0 {
		timeout = oneShotSyncTimeout
	}
	if err := d.waitSynced(ctx, timeout); err != nil {
		return err
	}
	start := time.Now()
	snap := d.src.Snapshot()
	res, err := d.renderer.Render(d.tmpl, snap)
	rendered := time.Since(start)
	if err != nil {
		return fmt.Errorf("render %s: %w", d.o.template, err)
	}
	if d.o.dryRun {
		_, err := res.Output.WriteTo(d.stdout)
		return err
	}
	// Notified even when the file was already right, as the daemon's first
	// apply is: a previous run may have died between writing and notifying.
	_, err = d.apply(ctx, res, rendered)
	if err == nil {
		err = d.chain.Run(ctx, notify.Notification{ConfigPath: d.o.config, Content: res.Output})
	}
	if err == nil && d.status != nil {
		err = d.status.reconcile(ctx, snap, res.LoadBalancers())
	}
	return err
}

// loop follows the cluster until ctx ends.
func (d *daemon) loop(ctx context.Context, hup <-chan os.Signal) error {
	// Until the caches are synced, changes only mean "look again".
	if err := d.waitSyncedDaemon(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	d.update(ctx)

	var (
		quiet    = stoppedTimer()
		deadline = stoppedTimer()
		pending  bool
		tick     = time.NewTicker(tickInterval)
		retry    = stoppedTimer() // of a failed apply
		retryIn  time.Duration
		armed    bool
	)
	defer tick.Stop()
	for {
		// A failed apply (a full disk, a read-only or missing directory,
		// a -check refusal) is tried again, after 1 s and then twice as
		// long each time up to maxApplyRetry, until one succeeds: its
		// cause can go away while the cluster does not change.
		switch {
		case !d.applyFailed:
			retry.Stop()
			retryIn, armed = 0, false
		case !armed:
			retryIn = min(max(2*retryIn, time.Second), maxApplyRetry)
			retry.Reset(retryIn)
			armed = true
		}
		select {
		case <-retry.C:
			armed = false
			d.retrying = true
			d.update(ctx)
			d.retrying = false
		case <-ctx.Done():
			d.log.Info("stopping")
			return nil
		case <-d.src.Changed():
			if !d.src.Synced() {
				continue // a restarted source (SIGHUP) renders once synced
			}
			if d.o.wait.Max == 0 {
				d.update(ctx)
				continue
			}
			if !pending {
				pending = true
				deadline.Reset(d.o.wait.Max)
			}
			quiet.Reset(d.o.wait.Min)
		case <-quiet.C:
			pending = false
			deadline.Stop()
			d.update(ctx)
		case <-deadline.C:
			pending = false
			quiet.Stop()
			d.update(ctx)
		case <-hup:
			d.reload(ctx)
		case <-tick.C:
			d.metrics.heartbeat()
			if err := d.checkReconnect(); err != nil {
				return err
			}
			if d.templateChanged() {
				d.reload(ctx)
			}
		}
	}
}

// templateChanged reports whether the template file changed (another
// file, size or modification time) since it was last read, and then stayed
// as it is for a tick: the original re-read its template at every render,
// and a ConfigMap volume swaps its files in place. The tick of quiet keeps
// an editor's half-written file out.
func (d *daemon) templateChanged() bool {
	fi, err := os.Stat(d.o.template)
	if err != nil {
		if d.tmplMissing++; d.tmplMissing == 2 {
			d.log.Warn("template file cannot be read; the last good template stays in use", "template", d.o.template, "err", err)
		}
		d.tmplSeen = nil
		return false
	}
	d.tmplMissing = 0
	switch {
	case sameFile(fi, d.tmplFile):
		d.tmplSeen = nil // back as it was
		return false
	case !sameFile(fi, d.tmplSeen):
		d.tmplSeen = fi
		return false
	}
	d.log.Info("template file changed", "template", d.o.template)
	return true
}

func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// waitSyncedDaemon waits for the first sync while keeping the heartbeat
// and -reconnect-timeout going.
func (d *daemon) waitSyncedDaemon(ctx context.Context) error {
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for !d.src.Synced() {
		select {
		case <-ctx.Done():
			d.log.Info("stopping before the first complete list")
			return nil
		case <-d.src.Changed():
		case <-tick.C:
			d.metrics.heartbeat()
			if err := d.checkReconnect(); err != nil {
				return err
			}
		}
	}
	return nil
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// checkReconnect enforces -reconnect-timeout.
func (d *daemon) checkReconnect() error {
	limit := d.o.reconnectTimeout
	if limit == 0 {
		return nil
	}
	now := time.Now()
	for _, s := range d.src.Status() {
		if s.Watching {
			continue
		}
		since := s.LastHealthy
		if since.IsZero() || since.Before(d.srcStarted) {
			since = d.srcStarted
		}
		if down := now.Sub(since); down > limit {
			return fmt.Errorf("no working watch of %s for %s (-reconnect-timeout %s): %v",
				s.Resource, down.Round(time.Second), limit, s.LastError)
		}
	}
	return nil
}

// reload re-reads the template (SIGHUP, or the file changed). A template
// that no longer parses leaves the last good one in use.
func (d *daemon) reload(ctx context.Context) {
	d.tmplFile, _ = os.Stat(d.o.template)
	d.tmplSeen = nil
	d.lastRenderErr = "" // another template's error is logged whole
	t, err := render.ParseTemplate(d.o.template)
	if err != nil {
		d.metrics.templateReloads.inc("error")
		d.log.Error("template reload failed; the last good template stays in use", "template", d.o.template, "err", err)
		return
	}
	d.metrics.templateReloads.inc("ok")
	d.tmpl = t
	d.log.Info("template reloaded", "template", d.o.template)
	if want := d.wantEndpoints(t); want != d.endpoints {
		d.log.Info("restarting watches", "endpointslices", want)
		d.stopSource()
		if err := d.startSource(ctx, want); err != nil {
			d.log.Error("restart watches", "err", err)
			return
		}
		return // renders once the new caches are synced (Changed fires)
	}
	d.update(ctx)
}

// update renders, applies and, when the file changed, notifies.
func (d *daemon) update(ctx context.Context) {
	if !d.src.Synced() {
		// Restarted caches (SIGHUP) that have not listed everything yet
		// would render a partial cluster; their first sync signals a
		// change, which renders.
		d.log.Debug("render postponed until the caches are synced")
		return
	}
	start := time.Now()
	snap := d.src.Snapshot()
	res, err := d.renderer.Render(d.tmpl, snap)
	rendered := time.Since(start)
	if err != nil {
		d.metrics.renders.inc("error")
		d.metrics.setApplyResult(err)
		// A template that fails on this cluster fails at every change
		// until it is fixed: logged whole once, then once a minute.
		if msg := err.Error(); msg != d.lastRenderErr || time.Since(d.lastRenderLog) >= time.Minute {
			d.lastRenderErr, d.lastRenderLog = msg, time.Now()
			d.log.Error("render failed; the last good configuration stays", "template", d.o.template, "err", err)
		} else {
			d.log.Debug("render failed again, same error", "template", d.o.template)
		}
		return
	}
	d.lastRenderErr = ""
	d.metrics.renders.inc("ok")
	d.metrics.setHostnameConflicts(res.HostnameConflicts)
	changed, err := d.apply(ctx, res, rendered)
	d.applyFailed = err != nil
	if err != nil {
		return
	}
	// -publish-status announces what the load balancer serves: only once
	// it has been told of this configuration. The closure, kept until
	// then, holds the services, not the output: an output in the template
	// cache's file holds that file, and its space, for as long as a
	// failing notifier is retried (a full disk).
	served := &render.Result{Services: res.Services}
	publish := func() { d.status.update(snap, served) }
	if !changed && d.notified {
		d.publishWhenNotified(publish)
		return
	}
	// The first successful apply of a process notifies even when the file
	// was already right: the previous kube2lb may have died between
	// writing it and notifying.
	d.notified = true
	d.stopNotifying() // a notification of older content must not publish this one
	d.fileChanged(publish)
	n := notify.Notification{ConfigPath: d.o.config}
	if d.chain.UsesContent() { // else not held by the retries, as above
		n.Content = res.Output
	}
	d.startNotifying(ctx, n)
}

// failureKey is msg with every run of digits as one '#': the same
// failure, retried, differs in numbers only (the candidate file's random
// name, the pid and time a load balancer's check prints).
func failureKey(msg string) string {
	b := make([]byte, 0, len(msg))
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < '0' || c > '9' {
			b = append(b, c)
		} else if i == 0 || msg[i-1] < '0' || msg[i-1] > '9' {
			b = append(b, '#')
		}
	}
	return string(b)
}

// apply writes res to -config (when it differs), logging what changed.
// It is not interrupted by ctx: an apply in progress at SIGTERM finishes,
// bounded by -update-timeout.
func (d *daemon) apply(ctx context.Context, res *render.Result, rendered time.Duration) (bool, error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.o.updateTimeout)
	defer cancel()
	start := time.Now()
	owner := fileOwner(d.o.config)
	changed, err := render.Apply(actx, d.o.config, res.Output, d.o.check)
	written := time.Since(start)
	if now := fileOwner(d.o.config); changed && owner != "" && now != owner {
		// Apply keeps the owner when it may: kube2lb not running as
		// root, it cannot give the file to another user or group.
		d.log.Warn("the configuration's owner changed: a load balancer that reads it as the old user or group may no longer read it", "config", d.o.config, "was", owner, "now", now)
	}
	if changed && err != nil {
		// The file is in place; only making the rename durable failed.
		// The load balancer must still hear of it.
		d.log.Warn("configuration replaced, but not synced to disk", "config", d.o.config, "err", err)
		err = nil
	}
	d.metrics.setApplyResult(err)
	if err != nil {
		if errors.As(err, new(*render.CheckError)) {
			d.metrics.checkFailures.inc()
		}
		d.metrics.applies.inc("error")
		// A failure that repeats when it is tried again with no change
		// (a check that keeps refusing) is logged whole once, then
		// briefly, and whole again once a minute. Its text differs in
		// numbers only: the candidate's random name, the pid a load
		// balancer's check prints. A change's failure is logged whole.
		if key := failureKey(err.Error()); !d.retrying || key != d.lastApplyErr || time.Since(d.lastApplyLog) >= time.Minute {
			d.lastApplyErr, d.lastApplyLog = key, time.Now()
			msg := "apply failed; the last good configuration stays"
			if _, err := os.Stat(d.o.config); errors.Is(err, fs.ErrNotExist) {
				msg = "apply failed; no configuration written yet"
			}
			d.log.Error(msg, "config", d.o.config, "err", err)
		} else {
			d.log.Warn("apply failed again, same error", "config", d.o.config)
		}
		// A cache file beside the configuration takes the space an
		// apply needs, and grows with every render: memory, until an
		// apply succeeds.
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			d.renderer.PauseSpill(true)
		}
		return false, err
	}
	d.lastApplyErr = ""
	d.renderer.PauseSpill(false)
	d.metrics.applied(time.Now())
	if !changed {
		d.metrics.applies.inc("unchanged")
		d.log.Debug("configuration unchanged", "config", d.o.config)
		d.lastServices, d.lastNodes = res.Services, res.Nodes
		return false, nil
	}
	d.metrics.applies.inc("changed")
	svcAdded, svcRemoved := diff(d.lastServices, res.Services, render.CompareServicePorts)
	nodeAdded, nodeRemoved := diff(d.lastNodes, res.Nodes, func(a, b *render.Node) int { return strings.Compare(a.Name, b.Name) })
	d.lastServices, d.lastNodes = res.Services, res.Nodes
	d.log.Info("configuration applied",
		"config", d.o.config,
		"bytes", res.Output.Len(),
		"services", len(res.Services),
		"services_added", summary(svcAdded, render.ServicePortName),
		"services_removed", summary(svcRemoved, render.ServicePortName),
		"nodes", len(res.Nodes),
		"nodes_added", summary(nodeAdded, (*render.Node).String),
		"nodes_removed", summary(nodeRemoved, (*render.Node).String),
		"notifiers", d.o.notify,
		// How long the snapshot, model and template took, and writing,
		// checking, syncing and renaming the file.
		"render_time", rendered.Round(time.Millisecond/10),
		"apply_time", written.Round(time.Millisecond/10),
	)
	return true, nil
}

// fileOwner returns path's uid:gid, or "" when it cannot tell.
func fileOwner(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return strconv.FormatUint(uint64(st.Uid), 10) + ":" + strconv.FormatUint(uint64(st.Gid), 10)
}

// summaryMax is how many names a log line lists before it only counts.
const summaryMax = 10

// summary lists items by name for a log line: all of them, or the first
// summaryMax and how many more there are.
func summary[T any](items []T, name func(T) string) string {
	var b strings.Builder
	for i, it := range items[:min(len(items), summaryMax)] {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(name(it))
	}
	if len(items) > summaryMax {
		fmt.Fprintf(&b, " (and %d more)", len(items)-summaryMax)
	}
	return b.String()
}

// diff returns what b adds to a and what it removes, each item once
// (items equal by compare are one); a, b and both results are in the
// order of compare. One merge pass: the lists have an entry per service
// port, and diff runs at every change.
func diff[T any](a, b []T, compare func(a, b T) int) (added, removed []T) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		c := 1 // a[i] against b[j]
		switch {
		case j == len(b):
			c = -1
		case i < len(a):
			c = compare(a[i], b[j])
		}
		var v T
		switch {
		case c < 0:
			v = a[i]
			removed = append(removed, v)
		case c > 0:
			v = b[j]
			added = append(added, v)
		default:
			v = a[i]
		}
		for i < len(a) && compare(a[i], v) == 0 {
			i++
		}
		for j < len(b) && compare(b[j], v) == 0 {
			j++
		}
	}
	return added, removed
}
