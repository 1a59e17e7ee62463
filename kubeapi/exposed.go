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

// filterSlices sets up the filter of EndpointSlices between services and
// slices, the reflectors of the cache's Services and EndpointSlices.
func (c *Cache) filterSlices(services *typed[*Service], slices *typed[*EndpointSlice]) {
	c.droppedOf = map[string]bool{}
	slices.keep = c.wantSlice
	slices.listing = func() { clear(c.droppedOf) }
	services.added = func(key string) {
		if c.droppedOf[key] {
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
	slices.installed = prune
	services.installed = func() {
		c.servicesIn = true
		prune()
		for svc := range c.droppedOf {
			if c.services[svc] != nil {
				relist(slices.reflector)
				return
			}
		}
	}
}

// wantSlice reports whether the cache keeps s: the slice of a cached
// Service, or any slice before the first list of Services. It notes the
// Service of a slice it refuses. The caller holds c.mu.
func (c *Cache) wantSlice(s *EndpointSlice) bool {
	if !c.servicesIn {
		return true
	}
	svc := s.Metadata.Namespace + "/" + s.ServiceName()
	if c.services[svc] != nil {
		return true
	}
	c.droppedOf[svc] = true
	return false
}
