package render

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// sanity holds what the original's sanity checks need to know about the
// host, read once per render.
type sanity struct {
	lowPort, highPort int32          // ephemeral port range; 0, 0 when unknown
	reserved          map[int32]bool // ip_local_reserved_ports: not ephemeral
	nonlocalBind4     bool
	nonlocalBind6     bool
	localAddrs        map[netip.Addr]bool // nil until loadLocal
	localErr          error
	interfaceAddrs    func() ([]net.Addr, error)
}

// hostSeams are the parts of the host the sanity checks read; tests
// replace them.
type hostSeams struct {
	procSys        string // /proc/sys
	interfaceAddrs func() ([]net.Addr, error)
}

func (h hostSeams) read(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(h.procSys, name))
	return strings.TrimSpace(string(b)), err
}

// loadSanity reads the host's settings. A setting that cannot be read
// turns its check off, with a warning.
func (h hostSeams) load(w *warnings) *sanity {
	s := &sanity{interfaceAddrs: h.interfaceAddrs}
	if v, err := h.read("net/ipv4/ip_local_port_range"); err != nil {
		w.add("sanity checks: ephemeral port range check disabled: %v", err)
	} else if f := strings.Fields(v); len(f) != 2 {
		w.add("sanity checks: ephemeral port range check disabled: cannot parse %q", v)
	} else {
		lo, err1 := strconv.ParseInt(f[0], 10, 32)
		hi, err2 := strconv.ParseInt(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			w.add("sanity checks: ephemeral port range check disabled: cannot parse %q", v)
		} else {
			s.lowPort, s.highPort = int32(lo), int32(hi)
		}
	}
	// Ports reserved with ip_local_reserved_ports are never picked as
	// ephemeral ports, so they are safe to listen on.
	if v, err := h.read("net/ipv4/ip_local_reserved_ports"); err == nil && v != "" {
		s.reserved = make(map[int32]bool)
		for r := range strings.SplitSeq(v, ",") {
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			a, err1 := strconv.ParseInt(lo, 10, 32)
			b, err2 := strconv.ParseInt(hi, 10, 32)
			if err1 != nil || err2 != nil || b-a > 65535 {
				continue
			}
			for p := a; p <= b; p++ {
				s.reserved[int32(p)] = true
			}
		}
	}
	s.nonlocalBind4 = h.flag("net/ipv4/ip_nonlocal_bind")
	s.nonlocalBind6 = h.flag("net/ipv6/ip_nonlocal_bind")
	return s
}

func (h hostSeams) flag(name string) bool {
	v, err := h.read(name)
	return err == nil && v == "1"
}

// ephemeral reports whether port is in the host's ephemeral port range:
// listening on it collides with the host's outgoing connections.
func (s *sanity) ephemeral(port int32) bool {
	return port >= s.lowPort && port <= s.highPort && s.highPort != 0 && !s.reserved[port]
}

// ephemeralRange returns the range for warnings.
func (s *sanity) ephemeralRange() string { return fmt.Sprintf("%d-%d", s.lowPort, s.highPort) }

// loadLocal lists the host's addresses, once.
func (s *sanity) loadLocal() {
	if s.localAddrs != nil || s.localErr != nil {
		return
	}
	s.localAddrs = make(map[netip.Addr]bool)
	addrs, err := s.interfaceAddrs()
	if err != nil {
		s.localErr = err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if addr, ok := netip.AddrFromSlice(n.IP); ok {
				s.localAddrs[addr.Unmap()] = true
			}
		}
	}
}

// sameSanity reports whether a and b read the same host settings and
// addresses, so that the services checked with a need no new check (nil:
// the checks are off).
func sameSanity(a, b *sanity) bool {
	if a == nil || b == nil {
		return a == b
	}
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	return a.lowPort == b.lowPort && a.highPort == b.highPort && maps.Equal(a.reserved, b.reserved) &&
		a.nonlocalBind4 == b.nonlocalBind4 && a.nonlocalBind6 == b.nonlocalBind6 &&
		maps.Equal(a.localAddrs, b.localAddrs) && (a.localErr == nil) == (b.localErr == nil) &&
		errText(a.localErr) == errText(b.localErr)
}

// bindable reports why ip cannot be listened on by this host, or "".
func (s *sanity) bindable(ip netip.Addr) string {
	if ip.IsUnspecified() {
		return ""
	}
	if ip.Is4() && s.nonlocalBind4 || ip.Is6() && s.nonlocalBind6 {
		return ""
	}
	s.loadLocal()
	if s.localErr != nil {
		return fmt.Sprintf("cannot list local addresses: %v", s.localErr)
	}
	if !s.localAddrs[ip] {
		sysctl := "net.ipv4.ip_nonlocal_bind"
		if ip.Is6() {
			sysctl = "net.ipv6.ip_nonlocal_bind"
		}
		return fmt.Sprintf("not an address of this host and %s is 0", sysctl)
	}
	return ""
}
