package render

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube2lb/kube2lb/kubeapi"
)

// bigSnapshot has services × 3 ports (http, tcp, http with a timeout) and
// nodes nodes.
func bigSnapshot(services, nodes int) kubeapi.Snapshot {
	var snap kubeapi.Snapshot
	for i := range nodes {
		snap.Nodes = append(snap.Nodes, readyNode(fmt.Sprintf("node-%04d", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)))
	}
	for i := range services {
		svc := service(fmt.Sprintf("ns-%d", i%100), fmt.Sprintf("svc-%05d", i), map[string]string{
			AnnotationExternalDomains: fmt.Sprintf("svc-%d.example.com,~^svc-%d\\.example\\.(com|net)$", i, i),
			AnnotationPortMode:        `{"db": "tcp"}`,
			AnnotationBackendTimeout:  `{"slow": 30000}`,
		},
			kubeapi.ServicePort{Name: "http", Port: 80, NodePort: int32(30000 + i%2000)},
			kubeapi.ServicePort{Name: "db", Port: int32(10000 + i), NodePort: int32(30000 + i%2000)},
			kubeapi.ServicePort{Name: "slow", Port: 8080, NodePort: int32(30000 + i%2000)},
		)
		snap.Services = append(snap.Services, svc)
	}
	return snap
}

// withEndpoints adds to snap an EndpointSlice of perService ready
// endpoints, on every port, for each service.
func withEndpoints(snap kubeapi.Snapshot, perService int) kubeapi.Snapshot {
	snap.EndpointsWatched = true
	ready := true
	for i, svc := range snap.Services {
		slice := &kubeapi.EndpointSlice{
			Metadata: kubeapi.ObjectMeta{
				Namespace: svc.Metadata.Namespace,
				Name:      svc.Metadata.Name + "-abcde",
				Labels:    kubeapi.Pairs{{Key: kubeapi.LabelServiceName, Value: svc.Metadata.Name}},
			},
			AddressType: "IPv4",
		}
		for j := range perService {
			ip := 128<<16 + i*perService + j
			slice.Endpoints = append(slice.Endpoints, kubeapi.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", ip>>16&255, ip>>8&255, ip&255)},
				Conditions: kubeapi.EndpointConditions{Ready: &ready},
			})
		}
		for _, p := range svc.Spec.Ports {
			name, port := p.Name, int32(8000+len(slice.Ports))
			slice.Ports = append(slice.Ports, kubeapi.EndpointPort{Name: &name, Port: &port})
		}
		snap.EndpointSlices = append(snap.EndpointSlices, slice)
	}
	return snap
}

// fullSize reports whether the benchmarks run at sizes whose output is
// counted in GiB (KUBE2LB_BENCH_FULL=1); `make bench` leaves them out.
func fullSize(b *testing.B) {
	if os.Getenv("KUBE2LB_BENCH_FULL") == "" {
		b.Skip("about 100 s and 1.3 GiB of output; set KUBE2LB_BENCH_FULL=1 and run alone with -benchtime=1x")
	}
}

// benchmarkRender measures a full render, as at start-up: a new
// Renderer (the whole model) and the first execution of a new template
// (on more than one CPU the incremental execution filling its cache, on
// one text/template's; BenchmarkRenderOneChange measures the next).
func benchmarkRender(b *testing.B, template string, snap kubeapi.Snapshot) {
	b.ReportAllocs()
	defer reportCPU(b)()
	var size int
	for b.Loop() {
		b.StopTimer()
		tmpl, err := ParseTemplate(template)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := newTestRenderer(b, testOptions()).Render(tmpl, snap)
		if err != nil {
			b.Fatal(err)
		}
		size = res.Output.Len()
	}
	b.ReportMetric(float64(size)/(1<<20), "MiB/output")
}

// BenchmarkRenderHAProxy renders the HAProxy example (nodes variant). The
// issue's size, 10,000 services × 3 ports × 1,000 nodes, writes 30 million
// server lines (1.26 GiB): it runs only with KUBE2LB_BENCH_FULL=1, alone
// and with -benchtime=1x. 10,000 services on 50 nodes is the realistic case
// `make bench` measures.
func BenchmarkRenderHAProxy(b *testing.B) {
	for _, size := range []struct{ services, nodes int }{{100, 10}, {1000, 100}, {10000, 50}, {10000, 1000}} {
		b.Run(fmt.Sprintf("services=%d×3/nodes=%d", size.services, size.nodes), func(b *testing.B) {
			if size.nodes >= 1000 {
				fullSize(b)
			}
			benchmarkRender(b, "../examples/haproxy/haproxy.cfg.tmpl", bigSnapshot(size.services, size.nodes))
		})
	}
}

// BenchmarkRenderHAProxyEndpoints renders the endpoints variant of the
// HAProxy example: 10,000 services × 3 ports, 3 endpoints each.
func BenchmarkRenderHAProxyEndpoints(b *testing.B) {
	benchmarkRender(b, "../examples/haproxy/haproxy-endpoints.cfg.tmpl", withEndpoints(bigSnapshot(10000, 1000), 3))
}

// BenchmarkApply applies the endpoints variant's rendering of 10,000
// services to a file that holds it already (nothing is written) and to one
// that differs in one byte (a candidate is written, synced and renamed).
func BenchmarkApply(b *testing.B) {
	tmpl, err := ParseTemplate("../examples/haproxy/haproxy-endpoints.cfg.tmpl")
	if err != nil {
		b.Fatal(err)
	}
	// The second render's output, in the pieces of the incremental
	// execution (the first is text/template's, in one piece; the second
	// waits for the cache to be filled, so that nothing runs in the
	// background while Apply is measured).
	r, snap := newTestRenderer(b, testOptions()), withEndpoints(bigSnapshot(10000, 1000), 3)
	var res *Result
	for range 2 {
		if res, err = r.Render(tmpl, snap); err != nil {
			b.Fatal(err)
		}
	}
	content := res.Output
	changed := bytes.Clone(content.Bytes())
	changed[len(changed)/2] ^= 1
	other := NewOutput(changed)
	dest := filepath.Join(b.TempDir(), "haproxy.cfg")
	b.Run("unchanged", func(b *testing.B) {
		if _, err := Apply(context.Background(), dest, content, ""); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(content.Len()))
		b.ReportAllocs()
		for b.Loop() {
			if changed, err := Apply(context.Background(), dest, content, ""); err != nil || changed {
				b.Fatalf("Apply: changed %v, %v", changed, err)
			}
		}
	})
	n := 0 // across runs (-count): the file holds versions[n%2]
	b.Run("changed", func(b *testing.B) {
		b.SetBytes(int64(content.Len()))
		b.ReportAllocs()
		versions := []*Output{content, other}
		for b.Loop() {
			n++
			if changed, err := Apply(context.Background(), dest, versions[n%2], ""); err != nil || !changed {
				b.Fatalf("Apply: changed %v, %v", changed, err)
			}
		}
	})
	// The same two versions with their bytes in a spill file beside
	// dest, as -cache-dir keeps them: copied by the kernel.
	f, err := newSpillFile(filepath.Dir(dest))
	if err != nil {
		b.Fatal(err)
	}
	spilled := func(o *Output) *Output {
		s := &Output{}
		for _, p := range o.pieces {
			off, ok := f.append(p.b)
			if !ok {
				b.Fatal("append failed")
			}
			s.addRegion(f, off, len(p.b))
		}
		return s
	}
	versions := []*Output{spilled(content), spilled(other)}
	if err := f.flush(); err != nil {
		b.Fatal(err)
	}
	b.Run("changed-spilled", func(b *testing.B) {
		b.SetBytes(int64(content.Len()))
		b.ReportAllocs()
		for b.Loop() {
			n++
			if changed, err := Apply(context.Background(), dest, versions[n%2], ""); err != nil || !changed {
				b.Fatalf("Apply: changed %v, %v", changed, err)
			}
		}
	})
}

// BenchmarkModel measures building the model alone from scratch (a new
// Renderer's first model), at the size, with EndpointSlices of 3
// endpoints.
func BenchmarkModel(b *testing.B) {
	snap := withEndpoints(bigSnapshot(10000, 1000), 3)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		newTestRenderer(b, testOptions()).Model(snap)
	}
}

// reportCPU reports the CPU time of the process per operation (the
// collector's included), steadier than ns/op on a machine where other work
// runs: call it after the set-up and defer the function it returns.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64(cpu()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}

// sortedLikeCache sorts snap's objects as kubeapi.Cache.Snapshot does: by
// namespace, then name.
func sortedLikeCache(snap kubeapi.Snapshot) kubeapi.Snapshot {
	byKey := func(a, b *kubeapi.ObjectMeta) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	}
	slices.SortFunc(snap.Services, func(a, b *kubeapi.Service) int { return byKey(&a.Metadata, &b.Metadata) })
	slices.SortFunc(snap.Nodes, func(a, b *kubeapi.Node) int { return byKey(&a.Metadata, &b.Metadata) })
	slices.SortFunc(snap.EndpointSlices, func(a, b *kubeapi.EndpointSlice) int { return byKey(&a.Metadata, &b.Metadata) })
	return snap
}

// BenchmarkModelIncremental measures the model of a render after one
// change, at the size of BenchmarkModel: each operation alternates between
// two snapshots, sorted as the cache hands them out, that differ in one
// object.
func BenchmarkModelIncremental(b *testing.B) {
	base := sortedLikeCache(withEndpoints(bigSnapshot(10000, 1000), 3))
	changes := []struct {
		name   string
		change func(snap *kubeapi.Snapshot)
	}{
		{"unchanged", func(*kubeapi.Snapshot) {}},
		{"service", func(snap *kubeapi.Snapshot) {
			// A new host name, as make bench's changes do.
			svc := *snap.Services[5000]
			svc.Metadata.Annotations = appendToPair(svc.Metadata.Annotations, AnnotationExternalDomains, ",new.example.com")
			snap.Services[5000] = &svc
		}},
		{"endpointslice", func(snap *kubeapi.Snapshot) {
			slice := *snap.EndpointSlices[5000]
			slice.Endpoints = slice.Endpoints[1:]
			snap.EndpointSlices[5000] = &slice
		}},
		{"node heartbeat", func(snap *kubeapi.Snapshot) {
			node := *snap.Nodes[500]
			snap.Nodes[500] = &node
		}},
		{"node not ready", func(snap *kubeapi.Snapshot) {
			node := *snap.Nodes[500]
			node.Status.Conditions = []kubeapi.NodeCondition{{Type: "Ready", Status: "False"}}
			snap.Nodes[500] = &node
		}},
	}
	for _, c := range changes {
		b.Run(c.name, func(b *testing.B) {
			other := kubeapi.Snapshot{
				Services:         slices.Clone(base.Services),
				Nodes:            slices.Clone(base.Nodes),
				EndpointSlices:   slices.Clone(base.EndpointSlices),
				EndpointsWatched: base.EndpointsWatched,
			}
			c.change(&other)
			snaps := []kubeapi.Snapshot{base, other}
			r := newTestRenderer(b, testOptions())
			r.Model(base)
			runtime.GC()
			b.ReportAllocs()
			defer reportCPU(b)()
			n := 0
			for b.Loop() {
				n++
				r.Model(snaps[n%2])
			}
		})
	}
}

// liveHeap returns the bytes of live heap objects, after a collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // what the first one's cleanups released
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkLiveHeap measures what a Renderer keeps between renders, the
// peak RSS's largest part (the collector lets the heap grow to about
// twice the live heap): the live heap of the model alone, and of the
// model and the template cache after a first render and after one change,
// with the cache in memory and spilled (Options.SpillDir). The snapshot's
// own objects are not counted.
func BenchmarkLiveHeap(b *testing.B) {
	for _, c := range []struct {
		name, template string
		nodes          int
	}{
		{"endpoints", "../examples/haproxy/haproxy-endpoints.cfg.tmpl", 1000},
		{"nodes=50", "../examples/haproxy/haproxy.cfg.tmpl", 50},
	} {
		snap := sortedLikeCache(withEndpoints(bigSnapshot(10000, c.nodes), 3))
		changed := snap
		changed.Services = slices.Clone(snap.Services)
		svc := *changed.Services[5000]
		svc.Metadata.Annotations = appendToPair(svc.Metadata.Annotations, AnnotationExternalDomains, ",new.example.com")
		changed.Services[5000] = &svc
		for _, spill := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/spill=%v", c.name, spill), func(b *testing.B) {
				opts := testOptions()
				if spill {
					opts.SpillDir = b.TempDir()
				}
				var model, first, change float64
				for b.Loop() {
					tmpl, err := ParseTemplate(c.template)
					if err != nil {
						b.Fatal(err)
					}
					base := liveHeap()
					r := newTestRenderer(b, opts)
					r.Model(snap)
					model = float64(liveHeap()-base) / 1e6
					runtime.KeepAlive(r)
					r = newTestRenderer(b, opts)
					if _, err := r.Render(tmpl, snap); err != nil {
						b.Fatal(err)
					}
					tmpl.memo.mu.Lock() // the sweep after the execution
					tmpl.memo.mu.Unlock()
					first = float64(liveHeap()-base) / 1e6
					if _, err := r.Render(tmpl, changed); err != nil {
						b.Fatal(err)
					}
					tmpl.memo.mu.Lock()
					tmpl.memo.mu.Unlock()
					change = float64(liveHeap()-base) / 1e6
					runtime.KeepAlive(r)
					runtime.KeepAlive(tmpl)
				}
				b.ReportMetric(model, "model-MB")
				b.ReportMetric(first, "first-MB")
				b.ReportMetric(change, "change-MB")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
