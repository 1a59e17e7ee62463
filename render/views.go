package render

import (
	"maps"
	"sync"
	"sync/atomic"
)

// The services of one listener (PortServices) and their host rules
// (HostRules) are computed on first use, and shared with the next render
// while no service of the listener changes, so that a template calling
// them for every port gets the same slices as long as nothing on the port
// changed.

// portView is the services of one PortSpec, in .Services order.
type portView struct {
	services  []ServiceInformation
	rulesOnce sync.Once
	rules     []HostRule
	rulesErr  error
}

// maxOverlay bounds a viewSet's overlay before it is merged into its base.
const maxOverlay = 256

// viewSet maps PortSpecs to views. An overlay entry shadows the base's; a
// nil one means no such port. Both maps are read-only once published.
type viewSet struct {
	base, overlay map[portKey]*portView
}

func (s *viewSet) get(k portKey) *portView {
	if s == nil {
		return nil
	}
	if v, ok := s.overlay[k]; ok {
		return v
	}
	return s.base[k]
}

// with returns s with views in place of the views of keys; when keys is
// nil, views are every view.
func (s *viewSet) with(keys map[portKey]bool, views map[portKey]*portView) *viewSet {
	if keys == nil {
		return &viewSet{base: views}
	}
	if len(keys) == 0 {
		return s
	}
	overlay := make(map[portKey]*portView, len(s.overlay)+len(keys))
	maps.Copy(overlay, s.overlay)
	for k := range keys {
		overlay[k] = views[k]
	}
	if len(overlay) <= maxOverlay {
		return &viewSet{base: s.base, overlay: overlay}
	}
	base := maps.Clone(s.base)
	for k, v := range overlay {
		if v == nil {
			delete(base, k)
		} else {
			base[k] = v
		}
	}
	return &viewSet{base: base}
}

// viewFiller holds the views of one render: those carried over from the
// previous render, and the others, built from the render's services on
// first use. A copy of the render's ClusterInformation shares them.
type viewFiller struct {
	once     sync.Once
	done     atomic.Bool          // filled
	services []ServiceInformation // to fill from; nil once filled
	keys     map[portKey]bool     // the ports to fill; nil: every port
	carried  *viewSet             // the views of the other ports
	views    map[portKey]*portView
}

func (f *viewFiller) fill() {
	f.once.Do(func() {
		f.views = make(map[portKey]*portView)
		var numbers map[int32]bool // cheap first test when few ports are wanted
		if f.keys != nil {
			numbers = make(map[int32]bool)
			for k := range f.keys {
				numbers[k.port] = true
			}
		}
		// Two passes, so that each view is allocated once: a
		// ServiceInformation is large, and a listener of a large
		// cluster has thousands of them.
		wanted := func(s *ServiceInformation) (portKey, bool) {
			if numbers != nil && !numbers[s.Port.Port] {
				return portKey{}, false
			}
			k := keyOf(s.Port)
			return k, f.keys == nil || f.keys[k]
		}
		counts := make(map[portKey]int)
		for i := range f.services {
			if k, ok := wanted(&f.services[i]); ok {
				counts[k]++
			}
		}
		for k, n := range counts {
			f.views[k] = &portView{services: make([]ServiceInformation, 0, n)}
		}
		for i := range f.services {
			if k, ok := wanted(&f.services[i]); ok {
				v := f.views[k]
				v.services = append(v.services, f.services[i])
			}
		}
		f.services = nil
		f.done.Store(true)
	})
}

// view returns the view of port, or nil when no service listens on it.
func (c *ClusterInformation) view(port PortSpec) *portView {
	k := keyOf(port)
	f := c.filler
	if f == nil {
		// Not built by a Renderer (sample data): nothing to share.
		var v portView
		for _, s := range c.Services {
			if keyOf(s.Port) == k {
				v.services = append(v.services, s)
			}
		}
		if v.services == nil {
			return nil
		}
		return &v
	}
	if f.keys == nil || f.keys[k] {
		f.fill()
		return f.views[k]
	}
	return f.carried.get(k)
}
