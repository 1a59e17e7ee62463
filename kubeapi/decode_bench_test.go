package kubeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// The benchmarks decode lists of the size of issue 9's cluster (10,000
// Services, 10,000 EndpointSlices, 1,000 Nodes) shaped as an API server
// serves them: managedFields, the annotations and status fields kube2lb
// skips. Each reports the heap the decoded objects keep per object
// (kept-B/obj) next to the allocations of decoding.

// listJSON returns a list of n objects made by item.
func listJSON(kind string, n int, item func(i int) map[string]any) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"kind":%q,"apiVersion":"v1","metadata":{"resourceVersion":"123456"},"items":[`, kind)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		raw, err := json.Marshal(item(i))
		if err != nil {
			panic(err)
		}
		b.Write(raw)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// benchService is Service i of the benchmarks.
func benchService(i int) map[string]any {
	s := fakeService(fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("svc-%05d", i), map[string]string{"app": fmt.Sprintf("app-%d", i), "team": "platform"})
	s["metadata"].(map[string]any)["resourceVersion"] = fmt.Sprint(100000 + i)
	return s
}

// serviceListJSON returns a list of n realistic Services, the way the
// apiserver serves them (managedFields, last-applied annotation, ...).
func serviceListJSON(n int) []byte { return listJSON("ServiceList", n, benchService) }

// benchSlice is EndpointSlice i of the benchmarks, as the EndpointSlice
// controller writes it: three endpoints with their pods, zones and
// conditions, owner reference, trigger-time annotation, managedFields.
func benchSlice(i int) map[string]any {
	ns, svc := fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("svc-%05d", i)
	var endpoints []any
	for j := range 3 {
		ip := 128<<16 + i*3 + j
		endpoints = append(endpoints, map[string]any{
			"addresses":  []string{fmt.Sprintf("10.%d.%d.%d", ip>>16&255, ip>>8&255, ip&255)},
			"conditions": map[string]any{"ready": true, "serving": true, "terminating": false},
			"nodeName":   fmt.Sprintf("node-%04d", (i*3+j)%1000),
			"targetRef":  map[string]any{"kind": "Pod", "namespace": ns, "name": fmt.Sprintf("%s-7d9f8c6b5-%05d", svc, j), "uid": fmt.Sprintf("6f1c2a4e-0b3d-4e5f-8a9b-%012d", i*3+j)},
			"zone":       fmt.Sprintf("zone-%c", 'a'+j),
		})
	}
	return map[string]any{
		"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
		"metadata": map[string]any{
			"name": svc + "-x7k2p", "generateName": svc + "-", "namespace": ns,
			"uid": fmt.Sprintf("0a1b2c3d-4e5f-6a7b-8c9d-%012d", i), "resourceVersion": fmt.Sprint(200000 + i), "generation": 3,
			"creationTimestamp": "2024-01-02T03:04:05Z",
			"labels": map[string]string{
				LabelServiceName: svc, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
				"app": fmt.Sprintf("app-%d", i), "team": "platform",
			},
			"annotations": map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2024-01-02T03:04:05Z"},
			"ownerReferences": []any{map[string]any{
				"apiVersion": "v1", "kind": "Service", "name": svc,
				"uid": fmt.Sprintf("9e8d7c6b-5a4f-3e2d-1c0b-%012d", i), "controller": true, "blockOwnerDeletion": true,
			}},
			"managedFields": []any{map[string]any{
				"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "discovery.k8s.io/v1",
				"time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
				"fieldsV1": map[string]any{
					"f:addressType": map[string]any{}, "f:endpoints": map[string]any{},
					"f:metadata": map[string]any{
						"f:annotations":  map[string]any{".": map[string]any{}, "f:endpoints.kubernetes.io/last-change-trigger-time": map[string]any{}},
						"f:generateName": map[string]any{},
						"f:labels": map[string]any{".": map[string]any{}, "f:app": map[string]any{}, "f:endpointslice.kubernetes.io/managed-by": map[string]any{},
							"f:kubernetes.io/service-name": map[string]any{}, "f:team": map[string]any{}},
						"f:ownerReferences": map[string]any{".": map[string]any{}, `k:{"uid":"9e8d7c6b"}`: map[string]any{}},
					},
					"f:ports": map[string]any{},
				},
			}},
		},
		"addressType": "IPv4",
		"endpoints":   endpoints,
		"ports":       []any{map[string]any{"name": "http", "protocol": "TCP", "port": 8080}},
	}
}

// benchNode is Node i of the benchmarks, as a kubelet reports it: labels,
// annotations, conditions, capacity, node info and images.
func benchNode(i int) map[string]any {
	name := fmt.Sprintf("node-%04d", i)
	var images []any
	for j := range 12 {
		images = append(images, map[string]any{
			"names":     []string{fmt.Sprintf("registry.example.com/team/image-%02d@sha256:%064d", j, j), fmt.Sprintf("registry.example.com/team/image-%02d:v1.%d", j, j)},
			"sizeBytes": 10000000 + j,
		})
	}
	cond := func(typ, status, reason, msg string) map[string]any {
		return map[string]any{"type": typ, "status": status, "reason": reason, "message": msg,
			"lastHeartbeatTime": "2024-01-02T03:04:05Z", "lastTransitionTime": "2024-01-02T03:04:05Z"}
	}
	return map[string]any{
		"kind": "Node", "apiVersion": "v1",
		"metadata": map[string]any{
			"name": name, "uid": fmt.Sprintf("5c4b3a29-1807-4f6e-9d8c-%012d", i), "resourceVersion": fmt.Sprint(300000 + i),
			"creationTimestamp": "2024-01-02T03:04:05Z",
			"labels": map[string]string{
				"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "m5.large",
				"topology.kubernetes.io/region": "eu-west-1", "topology.kubernetes.io/zone": fmt.Sprintf("eu-west-1%c", 'a'+i%3),
			},
			"annotations": map[string]string{
				"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true",
				"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
			},
			"managedFields": []any{
				map[string]any{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
					"fieldsV1": map[string]any{"f:metadata": map[string]any{"f:annotations": map[string]any{".": map[string]any{}, "f:node.alpha.kubernetes.io/ttl": map[string]any{}},
						"f:labels": map[string]any{".": map[string]any{}, "f:kubernetes.io/hostname": map[string]any{}}}}},
				map[string]any{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1", "subresource": "status",
					"fieldsV1": map[string]any{"f:status": map[string]any{"f:conditions": map[string]any{`k:{"type":"Ready"}`: map[string]any{"f:lastHeartbeatTime": map[string]any{}}},
						"f:images": map[string]any{}, "f:nodeInfo": map[string]any{}}}},
			},
		},
		"spec": map[string]any{"podCIDR": fmt.Sprintf("10.%d.%d.0/24", 64+i>>8, i&255), "podCIDRs": []string{fmt.Sprintf("10.%d.%d.0/24", 64+i>>8, i&255)}, "providerID": "aws:///eu-west-1a/i-0123456789abcdef0"},
		"status": map[string]any{
			"capacity":    map[string]string{"cpu": "2", "ephemeral-storage": "83873772Ki", "hugepages-2Mi": "0", "memory": "7935464Ki", "pods": "110"},
			"allocatable": map[string]string{"cpu": "1930m", "ephemeral-storage": "76224326324", "hugepages-2Mi": "0", "memory": "7245288Ki", "pods": "110"},
			"conditions": []any{
				cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
				cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
				cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
				cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
			},
			"addresses": []any{
				map[string]any{"type": "InternalIP", "address": fmt.Sprintf("172.16.%d.%d", i>>8, i&255)},
				map[string]any{"type": "Hostname", "address": name},
			},
			"daemonEndpoints": map[string]any{"kubeletEndpoint": map[string]any{"Port": 10250}},
			"nodeInfo": map[string]any{
				"machineID": "ec2a1b2c3d4e5f60718293a4b5c6d7e8", "systemUUID": "ec2a1b2c-3d4e-5f60-7182-93a4b5c6d7e8", "bootID": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
				"kernelVersion": "6.1.0-18-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)", "containerRuntimeVersion": "containerd://1.7.13",
				"kubeletVersion": "v1.34.1", "kubeProxyVersion": "v1.34.1", "operatingSystem": "linux", "architecture": "amd64",
			},
			"images": images,
		},
	}
}

// benchDecodeList decodes body, a list of n objects, at every iteration.
func benchDecodeList[P object[P]](b *testing.B, body []byte, n int) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var kept uint64
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		m := make(map[string]P)
		_, err := decodeList(bytes.NewReader(body), func(p P) { m[p.meta().Key()] = p })
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if len(m) != n {
			b.Fatalf("decoded %d objects", len(m))
		}
		kept = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(m)
		b.StartTimer()
	}
	b.ReportMetric(float64(kept)/float64(n), "kept-B/obj")
	b.ReportMetric(float64(len(body))/float64(n), "json-B/obj")
}

func BenchmarkDecodeServiceList(b *testing.B) {
	const n = 10000
	benchDecodeList[*Service](b, serviceListJSON(n), n)
}

func BenchmarkDecodeEndpointSliceList(b *testing.B) {
	const n = 10000
	benchDecodeList[*EndpointSlice](b, listJSON("EndpointSliceList", n, benchSlice), n)
}

func BenchmarkDecodeNodeList(b *testing.B) {
	const n = 1000
	benchDecodeList[*Node](b, listJSON("NodeList", n, benchNode), n)
}

// BenchmarkDecodeWatchEvents decodes a watch stream of 1,000 MODIFIED
// events of Services.
func BenchmarkDecodeWatchEvents(b *testing.B) {
	const n = 1000
	var stream bytes.Buffer
	for i := range n {
		raw, err := json.Marshal(map[string]any{"type": eventModified, "object": benchService(i)})
		if err != nil {
			b.Fatal(err)
		}
		stream.Write(raw)
		stream.WriteByte('\n')
	}
	b.SetBytes(int64(stream.Len()))
	b.ReportAllocs()
	for b.Loop() {
		dec := newDecoder(bytes.NewReader(stream.Bytes()))
		events := 0
		for {
			ev, err := decodeEvent[*Service](dec)
			if err == io.EOF {
				break
			}
			if err != nil || ev.obj == nil {
				b.Fatal(err)
			}
			events++
		}
		if events != n {
			b.Fatalf("%d events", events)
		}
	}
}
