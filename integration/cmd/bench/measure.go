package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
	"github.com/kube2lb/kube2lb/integration/session"
)

// A benchCase is one way of running kube2lb against the fixture.
type benchCase struct {
	Name     string
	Template string   // relative to the repository root
	Args     []string // added to the common flags
	Changes  int      // 0: start-up only
	Env      []string // added to kube2lb's environment
	// Unchecked cases are measured but not held to the targets
	// (-nodes-full, whose configuration is about a GiB).
	Unchecked bool
}

// A result is what one case measured.
type result struct {
	Case         benchCase
	Services     int // service ports rendered ("backend be_" lines)
	FirstConfig  time.Duration
	FromConnect  time.Duration // from kube2lb's "connecting" log line to the first configuration; 0: not found
	ConfigBytes  int64
	RSSFirst     int64 // kB, after the first render
	HWMFirst     int64 // kB
	HWMEnd       int64 // kB, peak over the whole run
	FileEnd      int64 // kB, file-backed RSS at the end (the binary's pages)
	CPUStart     float64
	CPUPerChange float64
	APIBytesInit float64 // read from the API server by the first render
	APIBytesEnd  float64
	CacheFile    int64           // bytes of kube2lb's template cache file at the end (-cache-dir), -1 when it has none
	CPUPerOther  float64         // per change of a ClusterIP Service's EndpointSlice (-clusterip), which renders nothing
	ToConfig     []time.Duration // per change: API call to new configuration on disk
	ToNotify     []time.Duration // per change: API call to the notifier's timestamp
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux architecture Go supports.
const clockTick = 100

// cpuSeconds returns utime+stime of pid.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTick
}

// memKB returns VmRSS, VmHWM and RssFile (file-backed pages: the binary's,
// mostly) of pid in kB.
func memKB(pid int) (rss, hwm, file int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0
	}
	for l := range strings.Lines(string(b)) {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		case "RssFile:":
			file = v
		}
	}
	return rss, hwm, file
}

// apiBytes sums kube2lb_api_read_bytes_total from kube2lb's /metrics.
func apiBytes(addr string) float64 {
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "kube2lb_api_read_bytes_total{") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// fileEvent is a file of the watched directory renamed into place or
// closed after writing, and when the benchmark saw it.
type fileEvent struct {
	name string
	at   time.Time
}

// watchDir reports files renamed into dir (an atomic apply) and files
// closed after writing (the notifier's record) through inotify, which
// costs kube2lb nothing, unlike polling a file of many megabytes.
func watchDir(ctx context.Context, dir string) (<-chan fileEvent, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_MOVED_TO|syscall.IN_CLOSE_WRITE); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("inotify %s: %w", dir, err)
	}
	// A non-blocking descriptor in an *os.File is read through Go's
	// poller, so Close ends a pending Read (closing a descriptor that a
	// blocked read(2) uses would not, and its number would be reused).
	f := os.NewFile(uintptr(fd), "inotify")
	ch := make(chan fileEvent, 1024)
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		defer close(ch)
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil || n <= 0 {
				return
			}
			at := time.Now()
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(ev.Len)], "\x00"))
				off += syscall.SizeofInotifyEvent + int(ev.Len)
				select {
				case ch <- fileEvent{name, at}:
				default: // nobody is waiting for it
				}
			}
		}
	}()
	return ch, nil
}

// waitFor returns the time of the next event for name, or an error when
// timeout passes or exited is closed first (kube2lb stopped: a template
// it cannot parse, a flag it does not know).
func waitFor(events <-chan fileEvent, exited <-chan struct{}, name string, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return time.Time{}, fmt.Errorf("inotify closed")
			}
			if ev.name == name {
				return ev.at, nil
			}
		case <-exited:
			return time.Time{}, fmt.Errorf("kube2lb exited before %s changed", name)
		case <-deadline:
			return time.Time{}, fmt.Errorf("no %s after %s", name, timeout)
		}
	}
}

func drain(events <-chan fileEvent) {
	for {
		select {
		case <-events:
		default:
			return
		}
	}
}

// lastStamp returns the last timestamp (date +%s.%N) in the notifier's file.
func lastStamp(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	lines := strings.Fields(string(b))
	if len(lines) == 0 {
		return time.Time{}, fmt.Errorf("%s is empty", path)
	}
	sec, frac, _ := strings.Cut(lines[len(lines)-1], ".")
	s, err1 := strconv.ParseInt(sec, 10, 64)
	ns, err2 := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q", lines[len(lines)-1])
	}
	return time.Unix(s, ns), nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:19180"
	}
	defer l.Close()
	return l.Addr().String()
}

// runCase starts kube2lb as the Minimal user, waits for its first
// configuration, then makes c.Changes changes through the API, one at a
// time, each waiting for the new configuration and the notifier.
// keepLogs is -logs: where to copy kube2lb's logs and last configurations;
// "" for nowhere.
var keepLogs string

func runCase(s *session.Session, c *cp.ControlPlane, f fixture, bin, root string, bc benchCase, index int) result {
	res := result{Case: bc}
	dir := s.TempDir()
	config := filepath.Join(dir, "haproxy.cfg")
	stamps := filepath.Join(dir, "notified")
	listen := freeAddr()
	ctx, cancel := context.WithCancel(s.Context())
	defer cancel()
	events, err := watchDir(ctx, dir)
	if err != nil {
		s.Fatal(err)
	}
	args := append([]string{
		"-kubecfg", c.Minimal.Kubeconfig,
		"-template", filepath.Join(root, bc.Template),
		"-config", config,
		"-wait", "0",
		"-host-checks=false",
		"-listen", listen,
		"-log-level", "info",
		"-notify", "command:date +%s.%N >> " + stamps,
	}, bc.Args...)
	logFile, err := os.Create(filepath.Join(dir, "kube2lb.log"))
	if err != nil {
		s.Fatal(err)
	}
	defer logFile.Close()
	if keepLogs != "" {
		defer func() {
			name := fmt.Sprintf("%d-%s", f.Services, strings.NewReplacer(" ", "-", ",", "").Replace(bc.Name))
			for from, to := range map[string]string{logFile.Name(): name + ".log", config: name + ".cfg"} {
				if b, err := os.ReadFile(from); err == nil {
					if err := os.WriteFile(filepath.Join(keepLogs, to), b, 0o644); err != nil {
						logf("%s: keeping %s: %v", bc.Name, to, err)
					}
				}
			}
		}()
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), bc.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		s.Fatal(err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	fail := func(format string, args ...any) {
		log, _ := os.ReadFile(logFile.Name())
		if len(log) > 4000 {
			log = log[len(log)-4000:]
		}
		s.Fatalf("%s: %s; end of kube2lb's log:\n%s", bc.Name, fmt.Sprintf(format, args...), log)
	}

	first, err := waitFor(events, exited, "haproxy.cfg", 15*time.Minute)
	if err != nil {
		fail("first configuration: %v", err)
	}
	res.FirstConfig = first.Sub(begin)
	if t, ok := connectTime(logFile.Name()); ok {
		res.FromConnect = first.Sub(t)
	}
	if _, err := waitFor(events, exited, "notified", time.Minute); err != nil {
		fail("first notification: %v", err)
	}
	res.CPUStart = cpuSeconds(pid)
	res.RSSFirst, res.HWMFirst, _ = memKB(pid)
	res.APIBytesInit = apiBytes(listen)
	if fi, err := os.Stat(config); err == nil {
		res.ConfigBytes = fi.Size()
	}
	res.Services = countBackends(config)
	logf("%s: first configuration (%d MB, %d backends) %s after start", bc.Name, res.ConfigBytes>>20, res.Services, res.FirstConfig.Round(time.Millisecond))

	cpuBefore := cpuSeconds(pid)
	for k := range bc.Changes {
		drain(events)
		t0 := time.Now()
		if err := change(ctx, c.Admin, f, index, k); err != nil {
			fail("change %d: %v", k, err)
		}
		t1, err := waitFor(events, exited, "haproxy.cfg", time.Minute)
		if err != nil {
			fail("change %d: %v", k, err)
		}
		if _, err := waitFor(events, exited, "notified", time.Minute); err != nil {
			fail("change %d: notifier: %v", k, err)
		}
		t2, err := lastStamp(stamps)
		if err != nil {
			fail("change %d: %v", k, err)
		}
		res.ToConfig = append(res.ToConfig, t1.Sub(t0))
		res.ToNotify = append(res.ToNotify, t2.Sub(t0))
		if (k+1)%50 == 0 {
			logf("%s: %d changes", bc.Name, k+1)
		}
	}
	if bc.Changes > 0 {
		res.CPUPerChange = (cpuSeconds(pid) - cpuBefore) / float64(bc.Changes)
	}
	if n := min(f.ClusterIP, otherChanges); n > 0 {
		// Pods of Services kube2lb does not render come and go: what
		// does it cost? The events take a few milliseconds to arrive;
		// the CPU is counted until a second after the last answer.
		cpuBefore := cpuSeconds(pid)
		for k := range n {
			i := (k*7919 + index*104729) % f.ClusterIP
			patch := cp.Object{"metadata": cp.Object{"labels": cp.Object{"bench.kube2lb.io/change": fmt.Sprint(index)}}}
			if err := c.Admin.Do(ctx, http.MethodPatch, cp.EndpointSlices.Path(f.serviceNamespace(i), clusterIPName(i)+"-bench"), patch, nil); err != nil {
				fail("change of a ClusterIP Service's slice: %v", err)
			}
		}
		time.Sleep(time.Second)
		res.CPUPerOther = (cpuSeconds(pid) - cpuBefore) / float64(n)
	}
	_, res.HWMEnd, res.FileEnd = memKB(pid)
	res.APIBytesEnd = apiBytes(listen)
	res.CacheFile = cacheFileBytes(pid)
	return res
}

// otherChanges is how many EndpointSlices of ClusterIP Services a case
// changes, with -clusterip.
const otherChanges = 100

// connectTime returns the time of kube2lb's "connecting" log line (text
// format, millisecond precision): when it has read its flags, kubeconfig
// and template and turns to the API server. The start-up target
// counts from the API server's answer; this is the nearest moment
// kube2lb itself reports, a few milliseconds before it.
func connectTime(logPath string) (time.Time, bool) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "msg=connecting") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "time="); ok {
				t, err := time.Parse(time.RFC3339Nano, v)
				return t, err == nil
			}
		}
	}
	return time.Time{}, false
}

// cacheFileBytes returns the size of the template cache files pid holds
// open (unlinked, named .kube2lb-cache-*), -1 when it holds none: the
// configuration's pieces kept on disk rather than in its memory.
func cacheFileBytes(pid int) int64 {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	total := int64(-1)
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil || !strings.Contains(filepath.Base(target), ".kube2lb-cache-") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, fd.Name())); err == nil {
			total = max(total, 0) + fi.Size()
		}
	}
	return total
}

func countBackends(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		l, err := r.ReadSlice('\n')
		if bytes.HasPrefix(l, []byte("backend be_")) {
			n++
		}
		if err == io.EOF {
			return n
		}
		if err != nil && err != bufio.ErrBufferFull {
			return n
		}
	}
}

// change makes change k of case index: even changes patch a service's
// kube2lb/external-domains (a new host name in the port 80 frontend), odd
// ones create a NodePort service (a new backend).
func change(ctx context.Context, admin *cp.User, f fixture, index, k int) error {
	if k%2 == 0 {
		i := (k*7919 + index*104729) % f.Services
		patch := cp.Object{"metadata": cp.Object{"annotations": cp.Object{
			"kube2lb/external-domains": fmt.Sprintf("change-%d-%d.bench.example.com", index, k),
		}}}
		return admin.Do(ctx, http.MethodPatch, cp.Services.Path(f.serviceNamespace(i), serviceName(i)), patch, nil)
	}
	name := fmt.Sprintf("change-%d-%d", index, k)
	ns := namespace(k % f.Namespaces)
	svc := cp.Object{
		"apiVersion": "v1", "kind": "Service",
		"metadata": cp.Object{"name": name, "namespace": ns},
		"spec": cp.Object{"type": "NodePort", "selector": cp.Object{"app": name}, "ports": []cp.Object{
			{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": changeNodePortMin + index*1000 + k},
		}},
	}
	return admin.Do(ctx, http.MethodPost, cp.Services.Path(ns, ""), svc, nil)
}

// percentile returns the p-th percentile (nearest rank) of d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
