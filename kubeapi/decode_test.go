package kubeapi

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const fullService = `{
  "kind": "Service", "apiVersion": "v1",
  "metadata": {
    "name": "web", "namespace": "shop", "uid": "0f1e", "resourceVersion": "4711",
    "creationTimestamp": "2024-01-02T03:04:05Z", "deletionTimestamp": "2024-02-03T04:05:06Z",
    "labels": {"app": "web"}, "annotations": {"kube2lb/port-mode": "tcp", "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Service\"}"},
    "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:ports": {}}}}],
    "selfLink": "/api/v1/namespaces/shop/services/web"
  },
  "spec": {
    "type": "LoadBalancer",
    "ports": [
      {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080, "appProtocol": "http"},
      {"name": "grpc", "protocol": "TCP", "port": 9090, "targetPort": "grpc", "nodePort": 30090}
    ],
    "selector": {"app": "web"},
    "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"],
    "externalIPs": ["203.0.113.7"], "loadBalancerIP": "203.0.113.8", "loadBalancerClass": "kube2lb",
    "externalTrafficPolicy": "Local", "healthCheckNodePort": 31234, "sessionAffinity": "ClientIP",
    "ipFamilies": ["IPv4", "IPv6"], "allocateLoadBalancerNodePorts": false
  },
  "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.8", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]}}
}`

func ptr[T any](v T) *T { return &v }

func wantFullService() *Service {
	del := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	return &Service{
		Metadata: ObjectMeta{
			Name: "web", Namespace: "shop", ResourceVersion: "4711",
			CreationTimestamp: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), DeletionTimestamp: &del,
			Labels: Pairs{{"app", "web"}}, Annotations: Pairs{{"kube2lb/port-mode", "tcp"}},
		},
		Spec: ServiceSpec{
			Type: ServiceTypeLoadBalancer,
			Ports: []ServicePort{
				{Name: "http", Protocol: "TCP", Port: 80, TargetPort: IntOrString{IntVal: 8080}, NodePort: 30080, AppProtocol: ptr("http")},
				{Name: "grpc", Protocol: "TCP", Port: 9090, TargetPort: IntOrString{IsString: true, StrVal: "grpc"}, NodePort: 30090},
			},
			ExternalIPs: []string{"203.0.113.7"}, LoadBalancerIP: "203.0.113.8", LoadBalancerClass: ptr("kube2lb"),
			ExternalTrafficPolicy: "Local", HealthCheckNodePort: 31234, SessionAffinity: "ClientIP",
			IPFamilies: []string{"IPv4", "IPv6"},
		},
		Status: ServiceStatus{LoadBalancer: LoadBalancerStatus{Ingress: []LoadBalancerIngress{
			{IP: "203.0.113.8", IPMode: ptr("VIP")}, {Hostname: "lb.example.com"},
		}}},
	}
}

func decodeServices(body string) ([]*Service, listMeta, error) {
	var got []*Service
	lm, err := decodeList(strings.NewReader(body), func(s *Service) { got = append(got, s) })
	return got, lm, err
}

func TestDecodeList(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []*Service
		meta listMeta
	}{
		{
			name: "metadata first",
			body: `{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"12","continue":"c1","remainingItemCount":3},"items":[` + fullService + `]}`,
			want: []*Service{wantFullService()},
			meta: listMeta{ResourceVersion: "12", Continue: "c1"},
		},
		{
			name: "metadata last",
			body: `{"items":[` + fullService + `,{"metadata":{"name":"b"}}],"kind":"ServiceList","metadata":{"resourceVersion":"13"}}`,
			want: []*Service{wantFullService(), {Metadata: ObjectMeta{Name: "b"}}},
			meta: listMeta{ResourceVersion: "13"},
		},
		{
			name: "items null",
			body: `{"kind":"ServiceList","metadata":{"resourceVersion":"14"},"items":null}`,
			meta: listMeta{ResourceVersion: "14"},
		},
		{
			name: "items empty",
			body: ` {"kind":"ServiceList","metadata":{"resourceVersion":"15"},"items":[]} `,
			meta: listMeta{ResourceVersion: "15"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, lm, err := decodeServices(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("items (-want +got):\n%s", diff)
			}
			if lm != tc.meta {
				t.Errorf("metadata %+v, want %+v", lm, tc.meta)
			}
		})
	}
}

func TestDecodeListErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"empty", ``, "unexpected EOF"},
		{"not an object", `[]`, "want {"},
		{"items not an array", `{"items":{}}`, "want an array"},
		{"truncated item", `{"items":[{"metadata":{"name":"a"`, "items[0]"},
		{"truncated list", `{"items":[{"metadata":{"name":"a"}}`, "items"},
		{"bad targetPort", `{"items":[{"spec":{"ports":[{"targetPort":true}]}}]}`, "items[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeServices(tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeNodeAndSlice(t *testing.T) {
	raw, _ := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": "1"}, "items": []any{fakeNode("n1", map[string]string{"role": "edge"})}})
	var nodes []*Node
	if _, err := decodeList(bytes.NewReader(raw), func(n *Node) { nodes = append(nodes, n) }); err != nil {
		t.Fatal(err)
	}
	wantNode := &Node{
		Metadata: ObjectMeta{Name: "n1", CreationTimestamp: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Labels: Pairs{{"role", "edge"}}},
		Status: NodeStatus{
			Addresses:  []NodeAddress{{Type: NodeInternalIP, Address: "192.168.1.10"}, {Type: NodeHostName, Address: "n1"}},
			Conditions: []NodeCondition{{Type: "MemoryPressure", Status: "False"}, {Type: "Ready", Status: "True"}},
		},
	}
	if diff := cmp.Diff([]*Node{wantNode}, nodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}

	raw, _ = json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": "1"}, "items": []any{fakeSlice("ns", "s1", "web")}})
	var slices []*EndpointSlice
	if _, err := decodeList(bytes.NewReader(raw), func(s *EndpointSlice) { slices = append(slices, s) }); err != nil {
		t.Fatal(err)
	}
	wantSlice := &EndpointSlice{
		Metadata:    ObjectMeta{Name: "s1", Namespace: "ns", CreationTimestamp: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		service:     "web",
		AddressType: "IPv4",
		Endpoints: []Endpoint{{
			Addresses:  []string{"10.244.1.5"},
			Conditions: EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)},
			NodeName:   ptr("node-1"),
			TargetRef:  &ObjectReference{Name: "web-abc"},
		}},
		Ports: []EndpointPort{{Name: ptr("http"), Protocol: ptr("TCP"), Port: ptr(int32(8080))}},
	}
	if diff := cmp.Diff([]*EndpointSlice{wantSlice}, slices, cmp.AllowUnexported(EndpointSlice{})); diff != "" {
		t.Errorf("slices (-want +got):\n%s", diff)
	}
}

// TestDecodeSharedIPFamilies checks that the common spec.ipFamilies are
// shared between Services, and that a key given twice does not write
// into the shared list.
func TestDecodeSharedIPFamilies(t *testing.T) {
	got, _, err := decodeServices(`{"items":[{"spec":{"ipFamilies":["IPv4"]}},{"spec":{"ipFamilies":["IPv4"]}},
		{"spec":{"ipFamilies":["IPv4"],"ipFamilies":["IPv6"]}},{"spec":{"ipFamilies":["IPv6","IPv4"],"ipFamilies":["IPv4"]}},
		{"spec":{"ipFamilies":["IPv4"],"ipFamilies":["IPv7"]}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	var lists [][]string
	for _, s := range got {
		lists = append(lists, s.Spec.IPFamilies)
	}
	if diff := cmp.Diff([][]string{{"IPv4"}, {"IPv4"}, {"IPv6"}, {"IPv4"}, {"IPv7"}}, lists); diff != "" {
		t.Errorf("ipFamilies (-want +got):\n%s", diff)
	}
	if &lists[0][0] != &lists[1][0] || &lists[0][0] == &lists[3][0] { // not after a duplicate key: encoding/json's spare capacity
		t.Error("the Services' lists [IPv4] are not shared, or shared after a duplicate key")
	}
	if diff := cmp.Diff([][]string{{"IPv4"}, {"IPv6"}, {"IPv4", "IPv6"}, {"IPv6", "IPv4"}}, familyLists); diff != "" {
		t.Errorf("shared lists written to (-want +got):\n%s", diff)
	}
}

// oneByteReader hands out one byte per Read: the decoder must stream.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:1]) }

func TestDecodeListStreams(t *testing.T) {
	// The second item is never complete: the first must be handed out
	// before the body ends.
	body := `{"items":[` + fullService + `,{"metadata":`
	pr, pw := io.Pipe()
	got := make(chan *Service, 1)
	done := make(chan error, 1)
	go func() {
		_, err := decodeList(oneByteReader{pr}, func(s *Service) { got <- s })
		done <- err
	}()
	go pw.Write([]byte(body))
	select {
	case s := <-got:
		if s.Metadata.Name != "web" {
			t.Errorf("got %q", s.Metadata.Name)
		}
	case <-time.After(patience):
		t.Fatal("the first item was not decoded before the body ended")
	}
	pw.Close()
	if err := <-done; err == nil {
		t.Error("no error for a truncated body")
	}
}

// FuzzDecodeList checks the decoder against encoding/json (see
// decode_diff_test.go) on lists of each type; FuzzDecodeEvents on watch
// streams.
func FuzzDecodeList(f *testing.F) {
	f.Add(`{"metadata":{"resourceVersion":"1"},"items":[` + fullService + `]}`)
	f.Add(`{"items":null}`)
	f.Add(`{"items":[{"spec":{"ports":[{"targetPort":"x"}]}}],"metadata":{"continue":"c"}}`)
	for _, body := range diffCorpus() {
		if len(body) < 4000 && !strings.HasPrefix(body, `{"type"`) && !strings.HasPrefix(body, `{"object"`) {
			f.Add(body)
		}
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, diff := range []func([]byte) string{diffList[Service], diffList[Node], diffList[EndpointSlice]} {
			if d := diff([]byte(body)); d != "" && !mayDiffer([]byte(body)) {
				t.Fatal(d)
			}
		}
		_, err := decodeList(strings.NewReader(body), func(s *Service) {
			if s == nil {
				t.Fatal("nil item")
			}
		})
		// encoding/json counts the depth from each item: json.Valid
		// refuses deep lists it accepts.
		if err == nil && len(body) < 1000 && !json.Valid([]byte(body)) {
			t.Errorf("accepted invalid JSON %q", body)
		}
	})
}

func TestDecodeEvents(t *testing.T) {
	stream := `{"type":"ADDED","object":` + fullService + `}
{"type":"BOOKMARK","object":{"kind":"Service","apiVersion":"v1","metadata":{"resourceVersion":"4712","annotations":{"k8s.io/initial-events-end":"true"}}}}
{"object":{"kind":"Service","metadata":{"name":"b","namespace":"shop","resourceVersion":"4713"}},"type":"DELETED"}
{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 4700 (4710)","reason":"Expired","code":410}}
`
	dec := newDecoder(strings.NewReader(stream))
	var got []string
	for {
		ev, err := decodeEvent[*Service](dec)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		s := ev.typ + " rv=" + ev.rv
		if ev.obj != nil {
			s += " " + ev.obj.Metadata.Key()
			if ev.typ == eventAdded {
				if diff := cmp.Diff(wantFullService(), ev.obj); diff != "" {
					t.Errorf("ADDED object (-want +got):\n%s", diff)
				}
			}
		}
		if ev.status != nil {
			s += " " + ev.status.Error()
			if !isGone(ev.status) {
				t.Error("ERROR 410 is not gone")
			}
		}
		got = append(got, s)
	}
	want := []string{
		"ADDED rv=4711 shop/web",
		"BOOKMARK rv=4712",
		"DELETED rv=4713 shop/b",
		"ERROR rv= 410 Expired: too old resource version: 4700 (4710)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestDecodeEventErrors(t *testing.T) {
	for _, tc := range []struct {
		name, stream, want string
	}{
		{"cut mid-event", `{"type":"ADDED","object":{"metadata":{"na`, "unexpected EOF"},
		{"unknown type", `{"type":"SURPRISE","object":{}}`, `unknown event type "SURPRISE"`},
		{"no object", `{"type":"ADDED"}`, "without object"},
		{"null object", `{"type":"MODIFIED","object":null}`, "without object"},
		{"bad object", `{"type":"ADDED","object":{"spec":{"ports":[{"port":"x"}]}}}`, "ADDED event"},
		{"not an event", `[1,2]`, "read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeEvent[*Service](newDecoder(strings.NewReader(tc.stream)))
			if err == nil || err == io.EOF || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add(`{"type":"ADDED","object":` + fullService + "}\n" + `{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"1"}}}`)
	f.Add(`{"type":"ERROR","object":{"kind":"Status","code":410}}`)
	f.Add(`{"type":"DELETED","object":{"metadata":{"name":"a"}}}{"type":`)
	for _, body := range diffCorpus() {
		if len(body) < 4000 && (strings.HasPrefix(body, `{"type"`) || strings.HasPrefix(body, `{"object"`)) {
			f.Add(body)
		}
	}
	f.Fuzz(func(t *testing.T, stream string) {
		for _, diff := range []func([]byte) string{diffEvents[Service], diffEvents[Node], diffEvents[EndpointSlice]} {
			if d := diff([]byte(stream)); d != "" && !mayDiffer([]byte(stream)) {
				t.Fatal(d)
			}
		}
		dec := newDecoder(strings.NewReader(stream))
		for range 100 {
			ev, err := decodeEvent[*EndpointSlice](dec)
			if err != nil {
				return
			}
			switch ev.typ {
			case eventAdded, eventModified, eventDeleted:
				if ev.obj == nil {
					t.Fatalf("%s without object", ev.typ)
				}
			case eventError:
				if ev.status == nil {
					t.Fatal("ERROR without status")
				}
			}
		}
	})
}

// TestDecode: one object, as the Writer reads the API server's answers.
func TestDecode(t *testing.T) {
	for _, tt := range []struct {
		in, name, err string
	}{
		{in: `{"metadata":{"name":"a","labels":{"x":"1"}},"spec":{"type":"NodePort"}}`, name: "a"},
		{in: " {} \n"},
		{in: "null"}, // as encoding/json: nothing set
		{in: "", err: "unexpected EOF"},
		{in: "[]", err: "want an object, got an array"},
		{in: `{"metadata":`, err: "metadata: offset 12: unexpected EOF"},
		{in: "{} {}", err: "data after the object"},
	} {
		svc, err := Decode[*Service](strings.NewReader(tt.in))
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want one with %q", tt.in, err, tt.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.in, err)
		case svc.Metadata.Name != tt.name:
			t.Errorf("%q: name %q, want %q", tt.in, svc.Metadata.Name, tt.name)
		}
	}
	svc, _ := Decode[*Service](strings.NewReader(`{"metadata":{"name":"a","labels":{"x":"1"}},"spec":{"type":"NodePort"}}`))
	if v, _ := svc.Metadata.Labels.Get("x"); v != "1" || svc.Spec.Type != ServiceTypeNodePort {
		t.Errorf("decoded %+v", svc)
	}
}
