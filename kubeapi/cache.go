// Package kubeapi keeps an up-to-date, in-memory view of the cluster
// objects kube2lb renders: Services, Nodes and, when templates use them,
// discovery.k8s.io/v1 EndpointSlices. It lists and watches them over the
// API's JSON REST interface with net/http, following client-go's Reflector:
// paginated lists, watches resumed from the last resourceVersion, a relist
// of the latest state (replacing the cached objects) when that version has
// been compacted away or the API server restarted,
// backoff with jitter, credential refresh on 401. Responses are decoded as
// streams into minimal types, so memory holds only the fields kube2lb uses.
//
// A connection whose peer vanished is replaced within a minute. Over
// HTTP/2 the transport pings a connection silent for 30 s and drops it when
// the answer takes 15 s. HTTP/1.1 has no pings, and a quiet watch looks
// like a hung server, so a watch that delivers nothing for 90 s (more than
// the minute between the API server's bookmarks) is abandoned and started
// again from the last resourceVersion: cheap, no relist; a list, after
// 45 s. TCP keepalives (15 s, then 3 probes 5 s apart) catch a vanished
// network path either way.
package kubeapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kube2lb/kube2lb/kubeconfig"
)

// Options selects what a Cache watches.
type Options struct {
	Namespace       string // "": all namespaces (Services and EndpointSlices)
	ServiceSelector string // label selector for Services
	// ExposedOnly caches only the Services of type NodePort and
	// LoadBalancer, and the EndpointSlices of those cached (exposed.go).
	// The API server leaves the other Services out (a field selector on
	// spec.type, from Kubernetes 1.31); one that refuses it is asked
	// again without, and they are dropped on arrival.
	ExposedOnly    bool
	NodeSelector   string // label selector for Nodes
	EndpointSlices bool   // watch discovery.k8s.io/v1 EndpointSlices
	// LocalSlicesOnly, with ExposedOnly and EndpointSlices, keeps only
	// the EndpointSlices of the Services of externalTrafficPolicy Local:
	// for a template that reads .Backends and not .Endpoints, the
	// others' backends are every node (exposed.go).
	LocalSlicesOnly bool
	UserAgent       string // "kube2lb/VERSION"; "": "kube2lb"
	Logger          *slog.Logger

	timing timing // zero fields: defaults; tests shrink them
}

// Resource names, as in ResourceStatus.Resource.
const (
	ResourceServices       = "services"
	ResourceNodes          = "nodes"
	ResourceEndpointSlices = "endpointslices.discovery.k8s.io"
)

// ResourceStatus is the health of the list+watch of one resource.
type ResourceStatus struct {
	Resource      string    // "services", "nodes", "endpointslices.discovery.k8s.io"
	Synced        bool      // first list done
	Watching      bool      // a list or watch is working right now
	LastError     error     // nil when healthy; *StatusError for API refusals
	LastHealthy   time.Time // last moment Watching was true; zero if never
	Objects       int       // objects in the cache
	Relists       uint64    // lists completed after the first one
	WatchRestarts uint64    // watches started again without a relist
	BytesRead     uint64    // response bytes of lists and watches
}

// resourceState is the mutable part of a ResourceStatus, guarded by
// Cache.mu except bytesRead.
type resourceState struct {
	name          string
	synced        bool
	watching      bool
	lastErr       error
	lastHealthy   time.Time
	objects       int
	relists       uint64
	watchRestarts uint64
	bytesRead     atomic.Uint64
}

// A Cache lists and watches the resources its Options select and holds
// their latest state. Create it with NewCache, start it with Run.
type Cache struct {
	cfg       *kubeconfig.Config
	timing    timing
	log       *slog.Logger
	userAgent string
	transport *http.Transport
	client    *http.Client
	conns     *connTracker
	dialer    *net.Dialer
	stopDial  context.CancelFunc
	dialCtx   context.Context // cancelled when Run has returned
	running   atomic.Bool

	changed     chan struct{}
	synced      chan struct{} // closed when every resource completed its first list
	runners     []func(context.Context)
	endpointsOn bool

	mu       sync.Mutex
	states   []*resourceState
	services map[string]*Service
	nodes    map[string]*Node
	slices   map[string]*EndpointSlice
	// The objects of each resource sorted by namespace/name, for
	// Snapshot: kept up to date by watch events, rebuilt after a list.
	servicesSorted sortedView[*Service]
	nodesSorted    sortedView[*Node]
	slicesSorted   sortedView[*EndpointSlice]

	// The filter of EndpointSlices (exposed.go), with ExposedOnly.
	servicesIn bool            // the first list of Services is installed
	droppedOf  map[string]bool // the keys of the Services whose slices were not kept
	// droppedBefore is droppedOf when the list of slices under way
	// began: kept until it is installed, so that what it said while
	// the list re-learns it is not lost.
	droppedBefore map[string]bool
	// With LocalSlicesOnly: the Services that became Local, kept aside
	// until their slices are listed, and the Services when a list of
	// them began.
	localOnly   bool
	held        map[string]*heldService
	oldServices map[string]*Service
}

// metaObject is an object of the cache.
type metaObject interface{ meta() *ObjectMeta }

// sortedView is a resource's objects sorted by namespace, then name.
type sortedView[P metaObject] struct {
	list  []P
	valid bool // false: to be built from the map
}

// NewCache returns a cache of the resources opts selects on the API server
// of cfg. It sends no request: Run does.
func NewCache(cfg *kubeconfig.Config, opts Options) (*Cache, error) {
	if cfg == nil || cfg.Server == nil {
		return nil, errors.New("kubeapi: no API server")
	}
	if s := cfg.Server.Scheme; s != "https" && s != "http" {
		return nil, fmt.Errorf("kubeapi: API server %q: scheme must be https or http", cfg.Server.Redacted())
	}
	if cfg.Auth == nil {
		return nil, errors.New("kubeapi: no authenticator")
	}
	c := &Cache{
		cfg:         cfg,
		timing:      opts.timing.withDefaults(),
		log:         opts.Logger,
		userAgent:   cmp.Or(opts.UserAgent, "kube2lb"),
		conns:       newConnTracker(),
		changed:     make(chan struct{}, 1),
		synced:      make(chan struct{}),
		endpointsOn: opts.EndpointSlices,
		services:    map[string]*Service{},
		nodes:       map[string]*Node{},
		slices:      map[string]*EndpointSlice{},
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.dialCtx, c.stopDial = context.WithCancel(context.Background())
	c.dialer = &net.Dialer{Timeout: c.timing.dial, KeepAliveConfig: c.timing.keepAlive}
	c.transport = newTransport(cfg, c.timing, c.dial)
	c.client = &http.Client{Transport: c.transport, CheckRedirect: noRedirect} // no Timeout: it would cut watches off

	scope := "at cluster scope"
	nsPath := ""
	if opts.Namespace != "" {
		scope = fmt.Sprintf("in namespace %q", opts.Namespace)
		nsPath = "/namespaces/" + url.PathEscape(opts.Namespace)
	}
	services := addResource(c, ResourceServices, "/api/v1"+nsPath+"/services", scope, opts.ServiceSelector, &c.services, &c.servicesSorted)
	if opts.ExposedOnly {
		services.keep = exposed
		services.query.Set("fieldSelector", "spec.type!="+ServiceTypeClusterIP+",spec.type!="+ServiceTypeExternalName)
	}
	addResource(c, ResourceNodes, "/api/v1/nodes", "at cluster scope", opts.NodeSelector, &c.nodes, &c.nodesSorted)
	if opts.EndpointSlices {
		slices := addResource(c, ResourceEndpointSlices, "/apis/discovery.k8s.io/v1"+nsPath+"/endpointslices", scope, "", &c.slices, &c.slicesSorted)
		if opts.ExposedOnly {
			c.localOnly = opts.LocalSlicesOnly
			c.filterSlices(services, slices)
		}
	}
	return c, nil
}

func addResource[P object[P]](c *Cache, name, path, scope, selector string, items *map[string]P, sorted *sortedView[P]) *typed[P] {
	st := &resourceState{name: name}
	c.states = append(c.states, st)
	r := &reflector{
		c:     c,
		st:    st,
		path:  path,
		scope: scope,
		log:   c.log.With("resource", name),
	}
	t := &typed[P]{reflector: r, items: items, sorted: sorted}
	r.res = t
	r.query = url.Values{}
	if selector != "" {
		r.query.Set("labelSelector", selector)
	}
	c.runners = append(c.runners, r.run)
	return t
}

// dial opens the transport's connections: counted, so that Run can wait
// for them to close, and aborted once Run is done.
func (c *Cache) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.dialCtx, cancel)()
	conn, err := c.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return c.conns.add(conn)
}

// Run lists and watches until ctx is cancelled, then returns once every
// goroutine it started has ended and every connection it opened is
// closed (it stops waiting for connections after 15 s, with a warning,
// which a working transport never needs). Run must be called at most once.
func (c *Cache) Run(ctx context.Context) {
	if !c.running.CompareAndSwap(false, true) {
		panic("kubeapi: Cache.Run called twice")
	}
	c.log.Info("watching the API server", "server", c.cfg.Server.Redacted(), "source", c.cfg.Source)
	var wg sync.WaitGroup
	for _, run := range c.runners {
		wg.Go(func() { run(ctx) })
	}
	wg.Wait()
	c.closeConnections()
}

// closeConnections closes the transport's connections and waits until
// they are all closed: cancelled requests hand theirs back to the
// transport asynchronously.
func (c *Cache) closeConnections() {
	done := c.conns.stop()
	c.stopDial()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	limit := time.NewTimer(c.timing.shutdown)
	defer limit.Stop()
	for {
		c.transport.CloseIdleConnections()
		select {
		case <-done:
			return
		case <-tick.C:
		case <-limit.C:
			c.log.Warn("connections still open after shutdown", "open", c.conns.open())
			return
		}
	}
}

// Changed returns a channel of capacity 1 that receives a value after any
// change of the cached objects and after each resource's first list.
// Changes coalesce: a receiver that is busy misses no change, it sees one
// value for many. Sending never blocks the watches.
func (c *Cache) Changed() <-chan struct{} { return c.changed }

func (c *Cache) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Synced reports whether every watched resource has completed its first
// list. It stays true afterwards, even while the API server is away.
func (c *Cache) Synced() bool {
	select {
	case <-c.synced:
		return true
	default:
		return false
	}
}

// WaitSynced waits until Synced is true, or returns ctx's error wrapped
// with the resources still waiting and their last errors.
func (c *Cache) WaitSynced(ctx context.Context) error {
	if c.Synced() {
		return nil
	}
	select {
	case <-c.synced:
		return nil
	case <-ctx.Done():
	}
	var waiting []string
	for _, st := range c.Status() {
		if st.Synced {
			continue
		}
		s := st.Resource
		if st.LastError != nil {
			s += " (" + st.LastError.Error() + ")"
		}
		waiting = append(waiting, s)
	}
	if len(waiting) == 0 {
		return nil
	}
	return fmt.Errorf("wait for the first list of %s: %w", strings.Join(waiting, ", "), context.Cause(ctx))
}

// Snapshot returns the cached objects at one moment: every resource as of
// the same instant, slices sorted by namespace/name (nodes by name). The
// objects are shared with the cache and other snapshots: read-only. The
// slices are the caller's.
func (c *Cache) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Snapshot{
		Services:         slices.Clone(c.servicesSorted.get(c.services)),
		Nodes:            slices.Clone(c.nodesSorted.get(c.nodes)),
		EndpointSlices:   slices.Clone(c.slicesSorted.get(c.slices)),
		EndpointsWatched: c.endpointsOn,
	}
}

// get returns the sorted objects of m, sorting them first after a list.
func (v *sortedView[P]) get(m map[string]P) []P {
	if !v.valid {
		v.list, v.valid = sortedObjectsOf(m), true
	}
	return v.list
}

func sortedObjectsOf[P metaObject](m map[string]P) []P {
	s := make([]P, 0, len(m))
	for _, p := range m {
		s = append(s, p)
	}
	slices.SortFunc(s, compareObjects[P])
	return s
}

func compareObjects[P metaObject](a, b P) int {
	ma, mb := a.meta(), b.meta()
	return cmp.Or(strings.Compare(ma.Namespace, mb.Namespace), strings.Compare(ma.Name, mb.Name))
}

// apply keeps the sorted objects up to date with one stored or deleted
// object, when they are built: a watch event costs a binary search, not
// a sort of every object.
func (v *sortedView[P]) apply(deleted bool, p P) {
	if !v.valid {
		return
	}
	i, found := slices.BinarySearchFunc(v.list, p, compareObjects[P])
	switch {
	case deleted && found:
		v.list = slices.Delete(v.list, i, i+1)
	case deleted:
	case found:
		v.list[i] = p
	default:
		v.list = slices.Insert(v.list, i, p)
	}
}

// Status returns the health of each watched resource: services, nodes,
// then endpointslices.discovery.k8s.io when watched.
func (c *Cache) Status() []ResourceStatus {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ResourceStatus, 0, len(c.states))
	for _, st := range c.states {
		rs := ResourceStatus{
			Resource:      st.name,
			Synced:        st.synced,
			Watching:      st.watching,
			LastError:     st.lastErr,
			LastHealthy:   st.lastHealthy,
			Objects:       st.objects,
			Relists:       st.relists,
			WatchRestarts: st.watchRestarts,
			BytesRead:     st.bytesRead.Load(),
		}
		if st.watching {
			rs.LastHealthy = now
		}
		out = append(out, rs)
	}
	return out
}
