package kubeapi

// With Options.ExposedOnly and Options.EndpointSlices, the cache keeps the
// EndpointSlices of the Services it caches, and no others. In a real
// cluster most Services are ClusterIP: their slices, and their pods'
// comings and goings, cost neither memory nor renders.
//
// A slice can arrive before its Service (two watches, in no order
// between them), and a Service that kube2lb did not cache can become one
// it does (its type changes to NodePort, its labels come to match the
// selector): the API server then sends the Service, not its slices. So
// the cache notes the Service of each slice it drops; when a Service with
// dropped slices arrives, the slices are listed again (a list, then
// a watch from its resourceVersion: no event can fall between them, as
// at start-up). Until the first list of Services is in, every slice is
// kept; that list, and the list of slices under way, then drop those of
// the Services not cached.
//
// A slice whose Service leaves the cache stays until its next event or
// the next list, of Services or of slices: its Service is not rendered,
// so the slice changes nothing meanwhile, and the slices of a deleted
// Service are deleted by the API server soon after it. The Services
// noted are forgotten at each list of slices: one whose slices are all
// gone stays noted until then, and costs at most a list should it become
// exposed. The lists asked for are timing.listAsked (10 s) apart.
//
// With Options.LocalSlicesOnly, the cache keeps only the slices of the
// Services of externalTrafficPolicy Local, for a template that reads
// .Backends and not .Endpoints: the other Services' backends are every
// node, whatever their endpoints. Most exposed Services are of policy
// Cluster; their slices, and their pods' comings and goings, then cost
// neither memory nor renders either. A Service that becomes Local (by a
// watch event, or found so by a list of Services) needs slices that were
// not kept: its new version is held back, the old one staying in the
// cache, until a list of slices that began after it has them, so that no
// snapshot has the Service Local without its endpoints (its backends
// would be no node). A slice of a Service that becomes Cluster stays
// until its next event or the next list of slices, as above.

// heldService is a Service held back until its slices are listed: listed
// is set once a list of slices began after it was held.
type heldService struct {
	svc    *Service
	listed bool
}

func local(s *Service) bool { return s.Spec.ExternalTrafficPolicy == "Local" }

// filterSlices sets up the filter of EndpointSlices between services and
// slices, the reflectors of the cache's Services and EndpointSlices.
func (c *Cache) filterSlices(services *typed[*Service], slices *typed[*EndpointSlice]) {
	c.droppedOf = map[string]bool{}
	c.held = map[string]*heldService{}
	slices.keep = c.wantSlice
	slices.listing = func() {
		// (A list started again, not installed, keeps what the cache
		// knew before it.)
		if c.droppedBefore == nil {
			c.droppedBefore = c.droppedOf
		} else {
			for k := range c.droppedOf {
				c.droppedBefore[k] = true
			}
		}
		c.droppedOf = map[string]bool{}
		for _, h := range c.held {
			h.listed = true
		}
	}
	services.added = func(key string) {
		if c.dropped(key) && c.keepsSlicesOf(key) {
			relist(slices.reflector)
		}
	}
	// A list of slices that began before the first list of Services was
	// in kept all it decoded until then: each list prunes.
	prune := func() {
		n := len(c.slices)
		for k, s := range c.slices {
			if !c.wantSlice(s) {
				delete(c.slices, k)
			}
		}
		if n != len(c.slices) {
			c.slicesSorted.valid = false
			slices.st.objects = len(c.slices)
		}
	}
	slices.installed = func() {
		c.droppedBefore = nil
		prune()
		released := false
		for key, h := range c.held {
			if h.listed {
				delete(c.held, key)
				services.put(key, h.svc)
				released = true
			}
		}
		if released {
			c.notify() // the list of slices may have changed nothing
		}
	}
	services.installed = func() {
		c.servicesIn = true
		if c.localOnly && c.oldServices != nil {
			// The list brings the current versions: those held are
			// superseded, and a Service it finds Local whose slices
			// were not kept is held back as a watch event's would be
			// (a list of slices under way that began after the first
			// hold still releases it).
			for key, old := range c.oldServices {
				if c.services[key] == nil {
					c.left(key, old)
				}
			}
			prev := c.held
			c.held = map[string]*heldService{}
			for key, s := range c.services {
				old, p := c.oldServices[key], prev[key]
				if !local(s) || old != nil && local(old) || old == nil && p == nil && !c.dropped(key) {
					continue
				}
				h := &heldService{svc: s}
				if p != nil {
					h.listed = p.listed
				}
				c.held[key] = h
				if old != nil {
					c.services[key] = old
				} else {
					delete(c.services, key)
				}
			}
		}
		c.oldServices = nil
		prune()
		if len(c.held) > 0 {
			relist(slices.reflector)
			return
		}
		for _, m := range []map[string]bool{c.droppedOf, c.droppedBefore} {
			for svc := range m {
				if c.keepsSlicesOf(svc) {
					relist(slices.reflector)
					return
				}
			}
		}
	}
	if !c.localOnly {
		return
	}
	services.listing = func() {
		if c.servicesIn {
			c.oldServices = c.services
		}
	}
	services.hold = func(key string, s *Service, deleted bool) bool {
		h, old := c.held[key], c.services[key]
		if deleted || !local(s) {
			if deleted && old != nil {
				c.left(key, old)
			}
			delete(c.held, key)
			return false
		}
		if h != nil {
			h.svc = s
			return true
		}
		// Held: a Service that becomes Local, and one that comes Local
		// (again: it left the cache) whose slices were dropped; the
		// latter is as absent until they are listed.
		if old != nil && local(old) || old == nil && !c.dropped(key) {
			return false
		}
		c.held[key] = &heldService{svc: s}
		relist(slices.reflector)
		return true
	}
}

// left notes that the Service old of key left the cache: with
// LocalSlicesOnly, the slices of one not of policy Local (or held back
// until it is) were not kept, and it may come back Local. The caller
// holds c.mu.
func (c *Cache) left(key string, old *Service) {
	if !local(old) || c.held[key] != nil {
		c.droppedOf[key] = true
	}
}

// dropped reports whether slices of the Service of key were not kept
// since the list of slices before the last one installed began. The
// caller holds c.mu.
//
//go:noinline
func (c *Cache) dropped(key string) bool { return c.droppedOf[key] || c.droppedBefore[key] }

// keepsSlicesOf reports whether the cache keeps the slices of the
// Service of key: a cached Service (with LocalSlicesOnly, of policy
// Local), or one held back until they are listed. The caller holds c.mu.
// (Not inlined: its callers are cold, and the binary's size counts.)
//
//go:noinline
func (c *Cache) keepsSlicesOf(key string) bool {
	if c.held[key] != nil {
		return true
	}
	s := c.services[key]
	return s != nil && (!c.localOnly || local(s))
}

// wantSlice reports whether the cache keeps s: the slice of a Service
// whose slices it keeps, or any slice before the first list of Services.
// It notes the Service of a slice it refuses when that Service is not
// cached. The caller holds c.mu.
func (c *Cache) wantSlice(s *EndpointSlice) bool {
	if !c.servicesIn {
		return true
	}
	svc := s.Metadata.Namespace + "/" + s.ServiceName()
	if c.keepsSlicesOf(svc) {
		return true
	}
	if c.services[svc] == nil {
		c.droppedOf[svc] = true
	}
	return false
}
