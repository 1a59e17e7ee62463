package render

import (
	"fmt"
	"testing"

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

func benchmarkRender(b *testing.B, services, nodes int) {
	snap := bigSnapshot(services, nodes)
	tmpl, err := ParseTemplate("../examples/haproxy/haproxy.cfg.tmpl")
	if err != nil {
		b.Fatal(err)
	}
	r := newTestRenderer(b, testOptions())
	b.ReportAllocs()
	b.ResetTimer()
	var size int
	for b.Loop() {
		res, err := r.Render(tmpl, snap)
		if err != nil {
			b.Fatal(err)
		}
		size = len(res.Output)
	}
	b.ReportMetric(float64(size)/(1<<20), "MiB/output")
}

// BenchmarkRenderHAProxy renders the HAProxy example. The size,
// 10,000 services × 3 ports × 1,000 nodes, writes some 30 million server
// lines (about 1.5 GiB); run it alone with -benchtime=1x.
func BenchmarkRenderHAProxy(b *testing.B) {
	for _, size := range []struct{ services, nodes int }{{100, 10}, {1000, 100}, {10000, 1000}} {
		b.Run(fmt.Sprintf("services=%d×3/nodes=%d", size.services, size.nodes), func(b *testing.B) {
			benchmarkRender(b, size.services, size.nodes)
		})
	}
}

// BenchmarkModel measures building the model alone, at the size.
func BenchmarkModel(b *testing.B) {
	snap := bigSnapshot(10000, 1000)
	r := newTestRenderer(b, testOptions())
	b.ReportAllocs()
	for b.Loop() {
		r.Model(snap)
	}
}
