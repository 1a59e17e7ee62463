package render

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/kube2lb/kube2lb/kubeapi"
)

// legacyModel is the model as kube2lb built it before it was incremental:
// every service, then one pass over all of them for each rule. The
// incremental model must be the same (TestIncrementalRandom).
func legacyModel(r *Renderer, snap kubeapi.Snapshot, keepEndpoints bool) (*ClusterInformation, *builder) {
	b := &builder{r: r}
	use := noEndpoints
	if snap.EndpointsWatched {
		use = backendsOnly
		if keepEndpoints {
			use = allEndpoints
		}
	}
	if r.opts.SanityChecks {
		b.sanity = r.host.load(&b.w)
	}
	info := &ClusterInformation{Domain: r.opts.Domain}
	info.AllNodes, info.Nodes = b.nodes(snap.Nodes, nil)
	slicesByService := make(map[string][]*kubeapi.EndpointSlice)
	for _, s := range snap.EndpointSlices {
		if name := s.ServiceName(); name != "" {
			k := s.Metadata.Namespace + "/" + name
			slicesByService[k] = append(slicesByService[k], s)
		}
	}
	var fw [2]warnings
	byFamily := [2][]Node{b.familyBackends(info.Nodes, false, &fw[0]), b.familyBackends(info.Nodes, true, &fw[1])}
	var used [2]bool
	var services []ServiceInformation
	for _, svc := range snap.Services {
		n := len(services)
		nodes := info.Nodes
		if f := primaryFamily(svc); f >= 0 {
			nodes, used[f] = byFamily[f], true
		}
		services = b.service(services, svc, nodes, slicesByService[svc.Metadata.Key()], use)
		for i := n; i < len(services); i++ {
			services[i].names = &nameSet{src: r.names}
		}
	}
	slices.SortFunc(services, func(a, b ServiceInformation) int {
		return cmp.Or(
			cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Port.Port, b.Port.Port),
			cmp.Compare(a.Port.Protocol, b.Port.Protocol),
			cmp.Compare(a.PortName, b.PortName),
		)
	})
	for f, w := range fw {
		if used[f] {
			b.w = append(b.w, w...)
		}
	}
	services = legacyOneModePerListener(b, services)
	info.Ports = legacyPorts(b, services)
	for i := range services {
		info.Services = append(info.Services, &services[i])
	}
	b.conflicts = legacyOwnNames(b, info)
	slices.Sort(b.w)
	b.w = slices.Compact(b.w)
	slices.Sort(b.notes)
	b.notes = slices.Compact(b.notes)
	return info, b
}

// byAge is byAgeOf for values, as the legacy model holds them.
func byAge(services []ServiceInformation) []int {
	return ageOrder(len(services), func(i int) *ServiceInformation { return &services[i] })
}

func legacyOneModePerListener(b *builder, services []ServiceInformation) []ServiceInformation {
	type listener struct {
		ip    string
		port  int32
		proto string
	}
	owners := make(map[listener]int)
	var drop []bool
	for _, i := range byAge(services) {
		s := &services[i]
		l := listener{string(s.Port.IP.To16()), s.Port.Port, s.Port.Protocol}
		o, taken := owners[l]
		if !taken {
			owners[l] = i
			continue
		}
		owner := &services[o]
		if owner.Port.Mode == s.Port.Mode {
			continue
		}
		if drop == nil {
			drop = make([]bool, len(services))
		}
		drop[i] = true
		b.w.add("service %s/%s: port %d/%s on %s dropped: mode %s, but the listener is in mode %s, set by the older service %s/%s",
			s.Namespace, s.Name, s.Port.Port, s.Port.Protocol, s.Port.IP, s.Port.Mode, owner.Port.Mode, owner.Namespace, owner.Name)
	}
	if drop == nil {
		return services
	}
	kept := services[:0]
	for i, s := range services {
		if !drop[i] {
			kept = append(kept, s)
		}
	}
	return kept
}

func legacyOwnNames(b *builder, info *ClusterInformation) int {
	order := byAgeOf(info.Services)
	type claim struct {
		port  int32
		proto string
		name  string
	}
	type holder struct {
		ip    net.IP
		owner int
	}
	owners := make(map[claim][]holder)
	conflicts := 0
	for _, i := range order {
		s := info.Services[i]
		names, err := computeServerNames(s.names.src, *s, info.Domain, nil)
		if err != nil {
			continue
		}
		port := s.Port.described()
		var lost map[string]bool
		for _, n := range names {
			c := claim{s.Port.Port, s.Port.Protocol, nameKey(n)}
			var owner *ServiceInformation
			mine := false
			for _, h := range owners[c] {
				if !ipsOverlap(h.ip, s.Port.IP) {
					continue
				}
				o := info.Services[h.owner]
				if o.Namespace == s.Namespace && o.Name == s.Name {
					mine = true
					continue
				}
				owner = o
				break
			}
			if owner == nil {
				if !mine {
					owners[c] = append(owners[c], holder{s.Port.IP, i})
				}
				continue
			}
			if lost == nil {
				lost = make(map[string]bool)
			}
			lost[c.name] = true
			conflicts++
			where := ""
			if owner.Port.String() != s.Port.String() {
				where = ", at " + owner.Port.described()
			}
			b.w.add("service %s/%s: port %s: server name %s dropped: it belongs to the older service %s/%s%s",
				s.Namespace, s.Name, port, n, owner.Namespace, owner.Name, where)
		}
		s.names.lost = lost
		if lost != nil {
			names = s.names.keep(names)
			var external []string
			for _, e := range s.External {
				if !lost[nameKey(ServerName(e))] {
					external = append(external, e)
				}
			}
			v := *s.serviceValues // the port's own: the service's other ports keep theirs
			v.External = external
			s.serviceValues = &v
		}
		s.names.done, s.names.names, s.names.err = true, names, nil
	}
	return conflicts
}

func legacyPorts(b *builder, services []ServiceInformation) []PortSpec {
	seen := make(map[string][][2]string)
	var ports []PortSpec
	for _, s := range services {
		k := s.Port.String()
		if seen[k] == nil {
			ports = append(ports, s.Port)
		}
		seen[k] = append(seen[k], [2]string{s.Namespace, s.Name})
	}
	slices.SortFunc(ports, comparePorts)
	for _, p := range ports {
		if sharers := seen[p.String()]; (p.Mode != "http" || p.Protocol != "tcp") && len(sharers) > 1 {
			slices.SortFunc(sharers, func(a, b [2]string) int { return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1])) })
			var names []string
			for _, s := range sharers {
				names = append(names, s[0]+"/"+s[1])
			}
			list := strings.Join(names[:min(len(names), 5)], ", ")
			if len(names) > 5 {
				list += fmt.Sprintf(" and %d more", len(names)-5)
			}
			how := p.Mode
			if p.Protocol != "tcp" {
				how += " over " + p.Protocol
			}
			b.w.add("port %s is shared by %d services in mode %s, which cannot route by host name: %s", p.described(), len(names), how, list)
		}
	}
	return ports
}
