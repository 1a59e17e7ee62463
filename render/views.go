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

// portView is the services of one PortSpec, in .Services order. It
// points at the model's own values (svcEntry.infos, variants), which stay
// as long as their service does not change, rather than into a render's
// .Services: a view carried over many renders would keep each of those
// alive.
type portView struct {
	ptrs      []*ServiceInformation
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

// wantedPort is a port to fill, and its portCount.
type wantedPort struct {
	key portKey
	pc  *portCount
}

// fewKeys is the most ports a change touches for which fill compares
// each service's port with them rather than looking it up.
const fewKeys = 8

// viewFiller holds the views of one render: those carried over from the
// previous render, and the others, built from the render's services on
// first use. A copy of the render's ClusterInformation shares them.
type viewFiller struct {
	once     sync.Once
	done     atomic.Bool           // filled
	services []*ServiceInformation // to fill from; nil once filled
	keys     map[portKey]bool      // the ports to fill; nil: every port
	// pcs are the portCounts of services' ports, and want those of keys
	// (nil for a port no service is on any longer), when there are few:
	// fill compares pointers in a slice instead of reading every service.
	pcs     []*portCount
	want    []wantedPort
	carried *viewSet // the views of the other ports
	views   map[portKey]*portView
}

func (f *viewFiller) fill() {
	f.once.Do(func() {
		f.views = make(map[portKey]*portView)
		if f.keys == nil || len(f.keys) > fewKeys {
			// Every port (the first render, or after one that did not use
			// the views), or many.
			for i := range f.services {
				k := keyOf(f.services[i].Port)
				if f.keys != nil && !f.keys[k] {
					continue
				}
				v := f.views[k]
				if v == nil {
					v = &portView{}
					f.views[k] = v
				}
				v.ptrs = append(v.ptrs, f.services[i])
			}
		} else {
			// The ports a change touched, a few: by their portCounts
			// (pointers in a slice beside the services), or else
			// compared, not hashed, the port number first (a listener of
			// a large cluster holds a service port in two).
			want := f.want
			if f.pcs == nil {
				want = want[:0]
				for k := range f.keys {
					want = append(want, wantedPort{key: k})
				}
			}
			views := make([]*portView, len(want))
			for i, s := range f.services {
				for j := range want {
					if f.pcs != nil && want[j].pc != f.pcs[i] ||
						f.pcs == nil && (want[j].key.port != s.Port.Port || want[j].key != keyOf(s.Port)) {
						continue
					}
					if views[j] == nil {
						views[j] = &portView{}
					}
					views[j].ptrs = append(views[j].ptrs, s)
					break
				}
			}
			for j, w := range want {
				// nil: no service listens on the port any longer.
				if views[j] != nil {
					f.views[w.key] = views[j]
				}
			}
		}
		f.services, f.pcs = nil, nil
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
		for i := range c.Services {
			if keyOf(c.Services[i].Port) == k {
				v.ptrs = append(v.ptrs, c.Services[i])
			}
		}
		if v.ptrs == nil {
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
