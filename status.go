package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kube2lb/kube2lb/kubeapi"
	"github.com/kube2lb/kube2lb/render"
)

// statusRetry is how long after a failed status write the publisher tries
// again when no change of the cluster came first.
const statusRetry = 10 * time.Second

// statusWriter is what publishing status needs of the API server;
// *kubeapi.Writer has it, tests substitute a fake.
type statusWriter interface {
	GetService(ctx context.Context, namespace, name string) (*kubeapi.Service, error)
	PatchServiceStatus(ctx context.Context, namespace, name, resourceVersion string, ingress []kubeapi.LoadBalancerIngress) (*kubeapi.Service, error)
}

// statusPublisher is -publish-status: it makes status.loadBalancer.ingress
// of every LoadBalancer service the load balancer serves say where it
// listens (the service's spec.loadBalancerIP, else -publish-ip), with
// ipMode Proxy, so that `kubectl get svc` shows an EXTERNAL-IP and tools
// waiting for one stop waiting, as with a cloud's load balancer.
//
// It writes only what differs, conditionally on the resourceVersion it
// read and with nothing time-dependent in it, so that two kube2lb with the
// same flags (an HA pair) agree after one write and never write in a loop.
// When it stops serving a service (type or class changed, filtered out,
// skipped), it clears the ingress, but only if the ingress is still exactly
// what kube2lb writes: another controller's status is never touched. It
// does not clear anything when kube2lb stops: the load balancer keeps
// serving its last configuration.
type statusPublisher struct {
	w       statusWriter
	ips     []string      // -publish-ip, canonical and sorted; may be empty
	timeout time.Duration // of each request
	retry   time.Duration // after a failure, when no update comes first
	log     *slog.Logger
	count   func(result string) // kube2lb_status_updates_total

	// published holds the IPs this process last saw as its own on each
	// service ("namespace/name"): written by it, or found already equal
	// to what it writes while serving the service. Only these, and
	// services that no other implementation can own, are cleared.
	published map[string]ownStatus
	lastErr   map[string]string // per service, to warn once per distinct error
	once      bool              // -once: a failure is not tried again

	// The run loop's input: the latest snapshot and served set.
	mu      sync.Mutex
	pending *statusWork
	wake    chan struct{}
}

type statusWork struct {
	snap   kubeapi.Snapshot
	served []string // render.Result.LoadBalancers()
}

func newStatusPublisher(w statusWriter, ips []string, timeout time.Duration, log *slog.Logger, count func(string)) *statusPublisher {
	return &statusPublisher{
		w:         w,
		ips:       ips,
		timeout:   timeout,
		retry:     statusRetry,
		log:       log,
		count:     count,
		published: make(map[string]ownStatus),
		lastErr:   make(map[string]string),
		wake:      make(chan struct{}, 1),
	}
}

// update hands the publisher the snapshot of a render that was applied and
// the LoadBalancer services it serves. It never blocks: the run loop
// works on the latest one. Safe on a nil publisher (no -publish-status).
func (p *statusPublisher) update(snap kubeapi.Snapshot, res *render.Result) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.pending = &statusWork{snap: snap, served: res.LoadBalancers()}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run reconciles after every update until ctx ends, retrying failures
// every statusRetry until one succeeds or a newer update arrives.
func (p *statusPublisher) run(ctx context.Context) {
	retry := stoppedTimer()
	defer retry.Stop()
	var last *statusWork
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
			p.mu.Lock()
			w := p.pending
			p.pending = nil
			p.mu.Unlock()
			if w == nil {
				// A wake whose work an earlier receive took: the
				// retry of a failed reconcile stays armed.
				continue
			}
			last = w
		case <-retry.C:
		}
		if last == nil {
			continue
		}
		retry.Stop()
		if err := p.reconcile(ctx, last.snap, last.served); err != nil && ctx.Err() == nil {
			retry.Reset(p.retry)
		} else {
			last = nil
		}
	}
}

// reconcile brings the status of every service in line with what the load
// balancer serves. served are "namespace/name" of the served LoadBalancer
// services of snap. Failures are logged, counted and returned joined.
func (p *statusPublisher) reconcile(ctx context.Context, snap kubeapi.Snapshot, served []string) error {
	isServed := make(map[string]bool, len(served))
	for _, k := range served {
		isServed[k] = true
	}
	inSnap := make(map[string]bool, len(snap.Services))
	var errs []error
	for _, svc := range snap.Services {
		key := svc.Metadata.Key()
		inSnap[key] = true
		current, _ := ownIngress(svc.Status.LoadBalancer.Ingress)
		if isServed[key] {
			want := p.desired(svc)
			if len(want) == 0 {
				// Nothing to say where it is (no -publish-ip, and its
				// loadBalancerIP was removed): what was published is wrong.
				if p.own(svc, current) {
					errs = appendErr(errs, p.write(ctx, svc, nil, "cleared"))
				}
				continue
			}
			if current != nil && slices.Equal(current, want) {
				p.published[key] = ownStatus{want, svc.Metadata.CreationTimestamp}
				delete(p.lastErr, key)
				continue
			}
			errs = appendErr(errs, p.write(ctx, svc, want, "published"))
			continue
		}
		if current == nil {
			delete(p.published, key)
			continue
		}
		if p.mayClear(svc, current) {
			errs = appendErr(errs, p.write(ctx, svc, nil, "cleared"))
		}
	}
	// Services published earlier that the caches no longer hold: deleted,
	// filtered out by -selector or -namespace, or of a type other than
	// NodePort and LoadBalancer now. Read them to know.
	var gone []string
	for key := range p.published {
		if !inSnap[key] {
			gone = append(gone, key)
		}
	}
	slices.Sort(gone)
	for _, key := range gone {
		errs = appendErr(errs, p.clearGone(ctx, key))
	}
	return errors.Join(errs...)
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

// desired returns the IPs to publish for a served service.
func (p *statusPublisher) desired(svc *kubeapi.Service) []string {
	if ip := svc.Spec.LoadBalancerIP; ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil // render skips such a service
		}
		if a = a.Unmap(); !a.IsUnspecified() { // 0.0.0.0 and :: get the default listener, as no IP does
			return []string{a.String()}
		}
	}
	return p.ips
}

// ownStatus is what this process published on a service, and the
// service's creationTimestamp then: a service deleted and created again
// under its name (maybe of another class, served by another
// implementation) is another service, whatever its status holds.
type ownStatus struct {
	ips     []string
	created time.Time
}

// own reports whether current, the ingress of svc, is what this process
// published on this very service.
func (p *statusPublisher) own(svc *kubeapi.Service, current []string) bool {
	prev, ok := p.published[svc.Metadata.Key()]
	return ok && prev.created.Equal(svc.Metadata.CreationTimestamp) && slices.Equal(prev.ips, current)
}

// mayClear says whether the ingress of a service kube2lb does not serve is
// kube2lb's to clear. It must be exactly what kube2lb writes (current),
// and either this process saw it as its own (published it, or found it so
// while serving the service), or the service is not of type LoadBalancer
// any more (NodePort: the caches hold no other type) and holds what
// kube2lb would write for it. A LoadBalancer
// service kube2lb did not publish is left alone whatever it holds: another
// implementation, maybe another kube2lb for another load balancer class
// with the same -publish-ip, may serve it, and clearing its status would
// start a fight.
func (p *statusPublisher) mayClear(svc *kubeapi.Service, current []string) bool {
	if p.own(svc, current) {
		return true
	}
	if svc.Spec.Type == kubeapi.ServiceTypeLoadBalancer {
		return false
	}
	want := p.desired(svc)
	return len(want) > 0 && slices.Equal(want, current)
}

// clearGone clears the status of a service this process published that
// left the caches, if it still holds what was published.
func (p *statusPublisher) clearGone(ctx context.Context, key string) error {
	ns, name, _ := strings.Cut(key, "/")
	rctx, cancel := context.WithTimeout(ctx, p.timeout)
	svc, err := p.w.GetService(rctx, ns, name)
	cancel()
	var se *kubeapi.StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
		delete(p.published, key)
		delete(p.lastErr, key)
		return nil
	case err != nil:
		p.failed(key, "clear", err)
		return err
	}
	current, _ := ownIngress(svc.Status.LoadBalancer.Ingress)
	if current == nil || !p.own(svc, current) {
		delete(p.published, key) // someone else's now, or already empty
		delete(p.lastErr, key)
		return nil
	}
	return p.write(ctx, svc, nil, "cleared")
}

// write sets (ips) or clears (nil) the ingress of svc, conditionally on
// the resourceVersion it was read at.
func (p *statusPublisher) write(ctx context.Context, svc *kubeapi.Service, ips []string, result string) error {
	key := svc.Metadata.Key()
	var ingress []kubeapi.LoadBalancerIngress
	for _, ip := range ips {
		mode := kubeapi.IPModeProxy
		ingress = append(ingress, kubeapi.LoadBalancerIngress{IP: ip, IPMode: &mode})
	}
	rctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	_, err := p.w.PatchServiceStatus(rctx, svc.Metadata.Namespace, svc.Metadata.Name, svc.Metadata.ResourceVersion, ingress)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		p.failed(key, result, err)
		return err
	}
	p.count(result)
	delete(p.lastErr, key)
	if ips == nil {
		delete(p.published, key)
		p.log.Info("load balancer status cleared", "service", key)
	} else {
		p.published[key] = ownStatus{ips, svc.Metadata.CreationTimestamp}
		p.log.Info("load balancer status published", "service", key, "ingress", ips)
	}
	return nil
}

// failed counts and logs a failed write: a conflict (the service changed
// since it was read; the watch brings the new version and another try) at
// debug level, other errors at warn level when they differ from the
// service's previous one.
func (p *statusPublisher) failed(key, what string, err error) {
	var se *kubeapi.StatusError
	if errors.As(err, &se) && se.Code == http.StatusConflict {
		p.count("conflict")
		p.log.Debug("load balancer status changed meanwhile; trying again", "service", key, "err", err)
		return
	}
	p.count("error")
	level := slog.LevelDebug
	if msg := err.Error(); p.lastErr[key] != msg {
		level = slog.LevelWarn
		p.lastErr[key] = msg
	}
	msg := "load balancer status not " + what
	if !p.once {
		msg += "; retrying"
	}
	p.log.Log(context.Background(), level, msg, "service", key, "err", err)
}

// ownIngress returns the IPs of an ingress list that has the form kube2lb
// writes (IPs only, ipMode Proxy), in order, and true; else nil and false.
// An unset ipMode counts as Proxy: API servers before Kubernetes 1.29 (or
// with the LoadBalancerIPMode feature off) drop the field, and treating it
// as a difference would write again at every render.
func ownIngress(in []kubeapi.LoadBalancerIngress) ([]string, bool) {
	if len(in) == 0 {
		return nil, false
	}
	ips := make([]string, 0, len(in))
	for _, e := range in {
		if e.Hostname != "" || (e.IPMode != nil && *e.IPMode != kubeapi.IPModeProxy) {
			return nil, false
		}
		a, err := netip.ParseAddr(e.IP)
		if err != nil {
			return nil, false
		}
		ips = append(ips, a.Unmap().String())
	}
	return ips, true
}
