package kubeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The decoder is checked against encoding/json: the reference below is
// the encoding/json decoding kube2lb used before it had its own, followed
// by trim, which drops what the cache does not keep. Both must accept the
// same input and give the same objects, or both refuse it.

// trimmer is implemented by the pointer types the cache holds.
type trimmer[T, P any] interface {
	*T
	object[P]
	trim()
}

// trim drops what the cache does not keep, from an object encoding/json
// decoded.
func (s *Service) trim() {
	m := &s.Metadata
	m.Annotations = slices.DeleteFunc(m.Annotations, func(p Pair) bool { return p.Key == lastApplied })
	nilIfEmpty(&m.Labels)
	nilIfEmpty(&m.Annotations)
}

func (n *Node) trim() {
	nilIfEmpty(&n.Metadata.Labels)
	n.Metadata.Annotations = nil
}

func (s *EndpointSlice) trim() {
	s.service, _ = s.Metadata.Labels.Get(LabelServiceName)
	s.Metadata.Labels, s.Metadata.Annotations = nil, nil
}

func nilIfEmpty(m *Pairs) {
	if len(*m) == 0 {
		*m = nil
	}
}

// refDecodeList is the reference decodeList.
func refDecodeList[T any, P trimmer[T, P]](r io.Reader, add func(P)) (listMeta, error) {
	var lm listMeta
	dec := json.NewDecoder(r)
	if err := refExpectDelim(dec, '{'); err != nil {
		return lm, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return lm, err
		}
		key, _ := tok.(string)
		switch key {
		case "metadata":
			if err := dec.Decode(&lm); err != nil {
				return lm, fmt.Errorf("metadata: %w", err)
			}
		case "items":
			tok, err := dec.Token()
			if err != nil {
				return lm, fmt.Errorf("items: %w", err)
			}
			if tok == nil {
				continue
			}
			if d, ok := tok.(json.Delim); !ok || d != '[' {
				return lm, fmt.Errorf("items: got %v, want an array", tok)
			}
			for i := 0; dec.More(); i++ {
				p := P(new(T))
				if err := dec.Decode(p); err != nil {
					return lm, fmt.Errorf("items[%d]: %w", i, err)
				}
				p.trim()
				add(p)
			}
			if err := refExpectDelim(dec, ']'); err != nil {
				return lm, fmt.Errorf("items: %w", err)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return lm, fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	if err := refExpectDelim(dec, '}'); err != nil {
		return lm, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return lm, errors.New("data after the list")
	}
	return lm, nil
}

func refExpectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("got %v, want %v", tok, want)
	}
	return nil
}

// refRVOnly is the reference decoding of a bookmark: its resourceVersion.
type refRVOnly struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
}

// refStatus is the reference decoding of a Status (decodeStatus).
type refStatus struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Code    int32  `json:"code"`
	Details *struct {
		Causes []struct {
			Reason string `json:"reason"`
		} `json:"causes"`
		RetryAfterSeconds int32 `json:"retryAfterSeconds"`
	} `json:"details"`
}

func (r *refStatus) toError() *StatusError {
	s := apiStatus{Kind: r.Kind, Message: r.Message, Reason: r.Reason, Code: r.Code}
	if r.Details != nil {
		if r.Details.Causes != nil {
			s.Causes = []string{}
		}
		for _, c := range r.Details.Causes {
			s.Causes = append(s.Causes, c.Reason)
		}
		s.RetryAfterSeconds = r.Details.RetryAfterSeconds
	}
	return s.toError("")
}

// refDecodeEvent is the reference decodeEvent.
func refDecodeEvent[T any, P trimmer[T, P]](dec *json.Decoder) (event[P], error) {
	var ev event[P]
	var raw struct {
		Type   string          `json:"type"`
		Object json.RawMessage `json:"object"`
	}
	if err := dec.Decode(&raw); err != nil {
		if err == io.EOF {
			return ev, io.EOF
		}
		return ev, fmt.Errorf("read: %w", err)
	}
	ev.typ = raw.Type
	if len(raw.Object) == 0 || string(raw.Object) == "null" {
		return ev, fmt.Errorf("%s %w", raw.Type, errNoObject)
	}
	switch raw.Type {
	case eventAdded, eventModified, eventDeleted:
		p := P(new(T))
		if err := json.Unmarshal(raw.Object, p); err != nil {
			return ev, fmt.Errorf("%s event: %w", raw.Type, err)
		}
		p.trim()
		ev.obj, ev.rv = p, p.meta().ResourceVersion
	case eventBookmark:
		var b refRVOnly
		if err := json.Unmarshal(raw.Object, &b); err != nil {
			return ev, fmt.Errorf("bookmark: %w", err)
		}
		ev.rv = b.Metadata.ResourceVersion
	case eventError:
		var st refStatus
		if err := json.Unmarshal(raw.Object, &st); err != nil {
			return ev, fmt.Errorf("error event: %w", err)
		}
		ev.status = st.toError()
	default:
		return ev, fmt.Errorf("unknown event type %q", raw.Type)
	}
	return ev, nil
}

var cmpOpts = cmp.Options{cmp.AllowUnexported(EndpointSlice{}, StatusError{})}

// diffList decodes body as a list of T both ways and describes how the
// results differ, or returns "".
func diffList[T any, P trimmer[T, P]](body []byte) string {
	var got, want []P
	gotMeta, gotErr := decodeList(bytes.NewReader(body), func(p P) { got = append(got, p) })
	wantMeta, wantErr := refDecodeList(bytes.NewReader(body), func(p P) { want = append(want, p) })
	switch {
	case gotErr != nil && wantErr != nil:
		return ""
	case gotErr != nil || wantErr != nil:
		return fmt.Sprintf("%T list: error %v, encoding/json: %v", *new(T), gotErr, wantErr)
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		return fmt.Sprintf("%T items (-encoding/json +decoder):\n%s", *new(T), diff)
	}
	if gotMeta != wantMeta {
		return fmt.Sprintf("list metadata %+v, encoding/json %+v", gotMeta, wantMeta)
	}
	return ""
}

// diffEvents decodes stream as watch events of T both ways, up to the
// first error, and describes how they differ, or returns "".
func diffEvents[T any, P trimmer[T, P]](stream []byte) string {
	dec, ref := newDecoder(bytes.NewReader(stream)), json.NewDecoder(bytes.NewReader(stream))
	for i := range 100 {
		got, gotErr := decodeEvent[P](dec)
		want, wantErr := refDecodeEvent[T, P](ref)
		switch {
		case gotErr == io.EOF && wantErr == io.EOF:
			return ""
		case gotErr != nil && wantErr != nil && gotErr != io.EOF && wantErr != io.EOF:
			return ""
		case gotErr != nil || wantErr != nil:
			return fmt.Sprintf("%T event %d: error %v, encoding/json: %v", *new(T), i, gotErr, wantErr)
		}
		if diff := cmp.Diff(want, got, cmpOpts, cmp.AllowUnexported(event[P]{})); diff != "" {
			return fmt.Sprintf("%T event %d (-encoding/json +decoder):\n%s", *new(T), i, diff)
		}
	}
	return ""
}

// diffAll compares the decoders on body as a list and as a watch stream
// of each type.
func diffAll(body []byte) string {
	for _, diff := range []func([]byte) string{
		diffList[Service], diffList[Node], diffList[EndpointSlice],
		diffEvents[Service], diffEvents[Node], diffEvents[EndpointSlice],
	} {
		if d := diff(body); d != "" && !mayDiffer(body) {
			return d
		}
	}
	return ""
}

// mayDiffer reports whether the decoders may differ on body: when
// encoding/json matches a key to a field of another case (the decoder, as
// the API server, does not), and, when encoding/json is built on json/v2,
// where it departs from itself (it unescapes timestamps before parsing
// them, and counts the depth of a watch event's object from the object).
func mayDiffer(body []byte) bool {
	return hasFoldedKey(body) || jsonV2 && (bytes.Contains(body, []byte("Timestamp")) && bytes.Contains(body, []byte(`\`)) || bytes.Count(body, []byte("[")) > 9000)
}

// jsonV2 is true when encoding/json is built on json/v2
// (GOEXPERIMENT=jsonv2, see jsonv2_test.go).
var jsonV2 bool

// fieldNames are the JSON names the decoders match.
var fieldNames = func() map[string]bool {
	names := map[string]bool{"items": true, "type": true, "object": true, "key": true} // key: a Taint's
	var walk func(t reflect.Type)
	seen := map[reflect.Type]bool{}
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for f := range t.Fields() {
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" {
				names[name] = true
			}
			walk(f.Type)
		}
	}
	for _, v := range []any{Service{}, Node{}, EndpointSlice{}, listMeta{}, refRVOnly{}, refStatus{}} {
		walk(reflect.TypeOf(v))
	}
	return names
}()

// hasFoldedKey reports whether a key of the objects in body equals a
// field name but for case (encoding/json matches it; the decoder does
// not). Values are not keys: "kind": "Status" is not the field status.
func hasFoldedKey(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	var inObject []bool // the open containers: object or array
	key := false        // the next token of the object is a key
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			inObject = append(inObject, tok == json.Delim('{'))
			key = tok == json.Delim('{')
			continue
		case json.Delim('}'), json.Delim(']'):
			inObject = inObject[:len(inObject)-1]
			key = len(inObject) > 0 && inObject[len(inObject)-1] // the container was a value
			continue
		}
		if len(inObject) == 0 || !inObject[len(inObject)-1] {
			continue // an array's element
		}
		if s, ok := tok.(string); ok && key && !fieldNames[s] {
			for name := range fieldNames {
				if strings.EqualFold(s, name) {
					return true
				}
			}
		}
		key = !key
	}
}

// diffCorpus is the test corpus of the differential tests: the objects of
// the other tests and of the benchmarks, and cases chosen for the corners
// of JSON and of encoding/json.
func diffCorpus() []string {
	marshal := func(v any) string {
		raw, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return string(raw)
	}
	objects := []string{
		fullService,
		marshal(fakeService("ns", "web", map[string]string{"app": "web"})),
		marshal(fakeNode("n1", map[string]string{"role": "edge"})),
		marshal(fakeSlice("ns", "s1", "web")),
		marshal(benchService(7)), marshal(benchNode(7)), marshal(benchSlice(7)),
		`{}`, `null`, `{"metadata":null,"spec":null,"status":null}`,
		// Escapes, surrogate pairs, lone surrogates, invalid UTF-8.
		`{"metadata":{"name":"a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00","namespace":"\u006e\u0073"}}`,
		`{"metadata":{"name":"\ud800","namespace":"\udc00x","labels":{"k":"\ud83d\u0041","\ud83d":"\udbff\udfff"}}}`,
		"{\"metadata\":{\"name\":\"\xff\xfe\",\"labels\":{\"\xc3\":\"\xe2\x82\",\"ok\":\"\xf0\x9f\x98\x80\"}}}",
		`{"metadata":{"n\u0061me":"escaped key","labels":{"a\u0000b":"nul"}}}`,
		// Numbers.
		`{"spec":{"ports":[{"port":-0,"nodePort":2147483647,"targetPort":-2147483648}]}}`,
		`{"spec":{"ports":[{"port":2147483648}]}}`,
		`{"spec":{"ports":[{"port":1.0}]}}`,
		`{"spec":{"ports":[{"port":1e2}]}}`,
		`{"spec":{"ports":[{"port":"80"}]}}`,
		`{"spec":{"ports":[{"targetPort":1.5}]}}`,
		`{"spec":{"ports":[{"targetPort":true}]}}`,
		`{"spec":{"ports":[{"targetPort":null,"appProtocol":null}]}}`,
		`{"skipped":[1,-1,0.5,-0.5e10,1E+2,1e-2,0,12345678901234567890123]}`,
		// null everywhere.
		`{"metadata":{"name":null,"namespace":null,"labels":null,"annotations":null,"creationTimestamp":null,"deletionTimestamp":null},"spec":{"type":null,"ports":null,"externalIPs":[null],"loadBalancerClass":null},"status":{"loadBalancer":{"ingress":[null,{"ip":null,"ipMode":null}]}}}`,
		`{"metadata":{"labels":{"a":null}},"endpoints":[null,{"addresses":null,"conditions":null,"nodeName":null,"targetRef":null}],"ports":[{"name":null,"port":null}]}`,
		`{"status":{"addresses":[null],"conditions":null},"spec":{"unschedulable":null}}`,
		`{"spec":{"taints":[{"key":"a","effect":"NoSchedule"},null,{},{"key":null}],"unschedulable":true}}`,
		`{"spec":{"taints":[{"key":"a"},{"key":"b"}],"taints":[{"value":"x"}],"taints":[{"key":"c"},{"key":1}]}}`,
		`{"spec":{"taints":null,"ipFamilies":null}}`, `{"spec":{"taints":{}}}`, `{"spec":{"ipFamilies":"IPv4"}}`,
		`{"spec":{"ipFamilies":["IPv4"],"ipFamilies":["IPv6"]}}`, `{"spec":{"ipFamilies":["IPv6","IPv4"],"ipFamilies":[null]}}`,
		`{"spec":{"ipFamilies":["IPv4",null,1]}}`, `{"spec":{"ipFamilies":["IPv6","IPv4"],"ipFamilies":["IPv4"],"ipFamilies":["IPv4",null]}}`,
		// Duplicate keys: the later wins, structs, maps and slices merge.
		`{"metadata":{"name":"a","name":"b","labels":{"x":"1"},"labels":{"y":"2"}},"metadata":{"namespace":"n"}}`,
		`{"metadata":{"labels":{"x":"1"},"labels":null,"labels":{"y":"2"}}}`,
		`{"spec":{"ports":[{"name":"a","port":1},{"name":"b"}],"ports":[{"port":2}]}}`,
		`{"spec":{"ports":[{"name":"a"},{"name":"b"}],"ports":[{"port":2}],"ports":[{},{}]}}`,
		`{"spec":{"ports":[],"ports":[{"port":3}],"externalIPs":["a","b"],"externalIPs":[],"externalIPs":[null,null]}}`,
		`{"endpoints":[{"addresses":["a"],"targetRef":{"name":"p"},"targetRef":{"kind":"Pod"}}],"endpoints":[{"conditions":{"ready":true}}]}`,
		`{"metadata":{"labels":{"kubernetes.io/service-name":"a"},"labels":{"x":"y"}}}`,
		`{"metadata":{"labels":{"kubernetes.io/service-name":"a"},"labels":null,"labels":{"x":"y"}}}`,
		`{"metadata":{"labels":{"kubernetes.io/service-name":null}}}`,
		`{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"x"}}}`,
		`{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":null,"a":"b"}}}`,
		`{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":1}}}`,
		`{"metadata":{"deletionTimestamp":"2024-01-02T03:04:05Z","deletionTimestamp":null,"deletionTimestamp":"2024-01-02T03:04:05.5+02:00"}}`,
		// Timestamps encoding/json refuses.
		`{"metadata":{"creationTimestamp":"2024-01-02"}}`,
		`{"metadata":{"creationTimestamp":"2024-01-02T03:04:05\u005a"}}`,
		`{"metadata":{"creationTimestamp":5}}`,
		// Wrong types.
		`{"metadata":[]}`, `{"metadata":"x"}`, `{"metadata":{"labels":[]}}`, `{"metadata":{"labels":{"a":1}}}`,
		`{"metadata":{"annotations":{"a":{}}}}`, `{"spec":{"ports":{}}}`, `{"spec":{"unschedulable":"yes"}}`,
		`{"endpoints":[{"conditions":{"ready":1}}]}`, `{"endpoints":[{"targetRef":[]}]}`, `[]`, `"x"`, `1`, `true`,
		// Keys and values skipped whatever they hold.
		`{"metadata":{"managedFields":[{"a":{"b":[{},[],"",0,true,false,null]}}]},"unknown":{"deep":[[[[[{"x":[]}]]]]]}}`,
		`{"Metadata":{"name":"folded"},"METADATA":{"NAME":"x"}}`,
		` { "metadata" : { "name" : "spaces" } , "spec" : { "ports" : [ { "port" : 1 } , { "port" : 2 } ] } } `,
		"{\t\"metadata\"\r\n:{\"name\":\"ws\"}}",
		// Invalid JSON.
		`{"metadata":{"name":"a"}`, `{"metadata":{"name":"a"}}}`, `{"metadata":{"name":"a",}}`, `{"metadata":{"name":"a"} "x":1}`,
		`{"metadata":{"name":'a'}}`, `{"metadata":{"name":"a\x"}}`, `{"metadata":{"name":"\u12g4"}}`, "{\"metadata\":{\"name\":\"a\tb\"}}",
		`{"x":tru}`, `{"x":nul}`, `{"x":falsey}`, `{"x":01}`, `{"x":-}`, `{"x":1.}`, `{"x":1e}`, `{"x":.5}`, `{"x":+1}`,
		`{"x":[1,]}`, `{"x":[,1]}`, `{"x":{,}}`, `{"x":{"a"}}`, `{"x":{"a":}}`, `{"x":{1:2}}`, `{"x" 1}`, `{,"x":1}`,
		"{\"x\":\"\xff\"}", "\xef\xbb\xbf{}", "{\"x\":1}\x00",
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`{"x":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}`,
		`{"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
		`{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	}
	var corpus []string
	for _, o := range objects {
		corpus = append(corpus,
			`{"kind":"List","metadata":{"resourceVersion":"1","continue":"c"},"items":[`+o+`]}`,
			`{"items":[`+o+`,`+o+`],"metadata":{"resourceVersion":"2"}}`,
			`{"metadata":{"resourceVersion":"1"},"items":`+o+`}`,
			`{"metadata":`+o+`,"items":[]}`,
			`{"type":"ADDED","object":`+o+`}`,
			`{"object":`+o+`,"type":"MODIFIED"}`+"\n"+`{"type":"DELETED","object":`+o+`}`,
			`{"type":"BOOKMARK","object":`+o+`}`,
			`{"type":"ERROR","object":`+o+`}`,
			`{"type":"ADDED","object":`+o+`,"type":"BOOKMARK"}`,
			`{"type":"ADDED","object":`+o+`,"object":null}`,
		)
	}
	corpus = append(corpus,
		``, ` `, `{}`, `{"items":null}`, `{"items":[]} `, `{"items":[]} x`, `{"items":[]}{}`, `{"items":[]}]`,
		`{"metadata":null,"items":[null]}`, `{"metadata":{"resourceVersion":null,"continue":5}}`, `{"items":{}}`, `{"items":"x"}`,
		`{"type":"ADDED"}`, `{"type":null,"object":{}}`, `{"type":1,"object":{}}`, `{"type":"SURPRISE","object":{}}`,
		`{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}`,
		`{"type":"ERROR","object":{"kind":"Status","code":500,"details":{"causes":[{"reason":"a","reason":"b"},null,{},{"field":"x"}],"retryAfterSeconds":3}}}`,
		`{"type":"ERROR","object":{"kind":"Status","details":{"causes":[{"reason":"a"}]},"details":{"retryAfterSeconds":2}}}`,
		`{"type":"ERROR","object":{"kind":"Status","details":{"causes":[{"reason":"a"}]},"details":null}}`,
		`{"type":"ERROR","object":{"kind":"Status","details":{"causes":[{"reason":"a"}],"causes":[]}}}`,
		`{"type":"ERROR","object":{"kind":"Status","details":{"causes":[{"reason":"a"}],"causes":null}}}`,
		`{"type":"BOOKMARK","object":{"kind":"Status","metadata":{"resourceVersion":"7"}}}`,
		`{"type":"ADDED","object":{"metadata":{"name":"a"}}}{"type":"ADDED","object":{"metadata":{"name":"b"}}}`,
		`{"type":"ADDED","object":{}} [1]`, `{"type":"ADDED","object":{}} x`,
	)
	return corpus
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	corpus := diffCorpus()
	for _, body := range corpus {
		if d := diffAll([]byte(body)); d != "" {
			t.Errorf("%.300q:\n%s", body, d)
		}
	}
	// Every prefix of the wrappings of fullService: the decoder must fail
	// where encoding/json fails, cut anywhere.
	for _, body := range []string{corpus[0], corpus[4], corpus[5]} { // a list, an event, two events
		for i := range len(body) {
			if d := diffAll([]byte(body[:i])); d != "" {
				t.Fatalf("%.300q cut at %d:\n%s", body, i, d)
			}
		}
	}
}

// TestDecodeAllocationsOfSkipped checks that what the cache does not keep
// is skipped without allocating: a list of objects made only of skipped
// fields allocates nothing per object.
func TestDecodeAllocationsOfSkipped(t *testing.T) {
	item := func(i int) map[string]any {
		s := benchSlice(i)
		md := s["metadata"].(map[string]any)
		return map[string]any{"kind": "EndpointSlice", "metadata": map[string]any{
			"managedFields": md["managedFields"], "ownerReferences": md["ownerReferences"],
			"annotations": md["annotations"], "generateName": md["generateName"],
		}}
	}
	body := listJSON("EndpointSliceList", 1000, item)
	allocs := testing.AllocsPerRun(5, func() {
		n := 0
		if _, err := decodeList(bytes.NewReader(body), func(*EndpointSlice) { n++ }); err != nil || n != 1000 {
			t.Fatal(n, err)
		}
	})
	// Per object: the object itself.
	if allocs > 1000+50 {
		t.Errorf("%v allocations for 1000 objects of skipped fields", allocs)
	}
}

// TestDecodeErrorsName checks that errors say where.
func TestDecodeErrorsName(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"items":[{},{"spec":{"ports":[{"port":1},{"targetPort":true}]}}]}`, `items[1].spec.ports[1].targetPort: offset 56: want a number or a string, got a boolean`},
		{`{"items":[{"metadata":{"name":"a\x"}}]}`, `items[0].metadata.name: offset 33: invalid character 'x' in string escape code`},
		{`{"items":[{"metadata":{"labels":{"a":"b" "c"}}}]}`, `items[0].metadata.labels.a: offset 41: a string after object key:value pair`},
		{`{"items":[{"metadata":{"creationTimestamp":"yesterday"}}]}`, `items[0].metadata.creationTimestamp: offset 43: parsing time "yesterday"`},
		{`{"items":[{"metadata":{"managedFields":[{"a":[1,2}]}]}}]}`, `items[0].metadata.managedFields: offset 49: invalid character '}' after array element`},
		{`{"items":[{"metadata":{"name":"a`, `items[0].metadata.name: offset 32: unexpected EOF`},
	} {
		_, err := decodeList(strings.NewReader(tc.body), func(*Service) {})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.body, err, tc.want)
		}
	}
}

// TestDecodeLargeValues checks values longer than the buffer, kept and
// skipped, and a body delivered a byte at a time.
func TestDecodeLargeValues(t *testing.T) {
	long := strings.Repeat("x", 3*bufSize+7)
	escaped := strings.Repeat(`\u00e9\"`, bufSize/3)
	body := `{"items":[{"metadata":{"name":"` + long + `","labels":{"k":"` + escaped + `"},"annotations":{"` + lastApplied + `":"` + escaped + long + `"},` +
		`"managedFields":[` + strings.Repeat(`{"f":[1,2.5e3,"`+long[:100]+`"]},`, 1000) + `{}]},"spec":{"ports":[{"port":80}]}}],"metadata":{"resourceVersion":"9"}}`
	if d := diffList[Service]([]byte(body)); d != "" {
		t.Fatal(d)
	}
	var got []*Service
	if _, err := decodeList(oneByteReader{strings.NewReader(body)}, func(s *Service) { got = append(got, s) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Metadata.Name != long || !slices.Equal(got[0].Metadata.Labels, Pairs{{"k", strings.Repeat(`é"`, bufSize/3)}}) || got[0].Spec.Ports[0].Port != 80 {
		t.Errorf("decoded a byte at a time: %.100v", got)
	}
}

func TestDecodeTime(t *testing.T) {
	// Offsets other than Z keep their zone, as encoding/json does.
	var got []*Service
	body := `{"items":[{"metadata":{"creationTimestamp":"2024-01-02T03:04:05+02:00"}}]}`
	if _, err := decodeList(strings.NewReader(body), func(s *Service) { got = append(got, s) }); err != nil {
		t.Fatal(err)
	}
	if ts := got[0].Metadata.CreationTimestamp; !ts.Equal(time.Date(2024, 1, 2, 1, 4, 5, 0, time.UTC)) {
		t.Errorf("creationTimestamp %v", ts)
	}
}

// diffJSONObject compares ParseJSONObject with encoding/json reading text
// into a map of raw values: the members, their text, the strings' values,
// and whether text is refused. It describes the difference, or returns "".
func diffJSONObject(text string) string {
	got, err := ParseJSONObject(text)
	var raw map[string]json.RawMessage
	wantErr := json.Unmarshal([]byte(text), &raw)
	if (err != nil) != (wantErr != nil) {
		return fmt.Sprintf("%.40q: error %v, encoding/json %v", text, err, wantErr)
	}
	want := map[string]JSONValue{}
	for k, v := range raw {
		jv := JSONValue{Text: string(v)}
		if v[0] == '"' { // a string; encoding/json also reads null into one
			jv.IsString = json.Unmarshal(v, &jv.String) == nil
		}
		want[k] = jv
	}
	if raw == nil {
		want = nil
	}
	// Repeated is ParseJSONObject's own: the key came earlier too.
	counts := keyCounts(text)
	for k, v := range got {
		if v.Repeated != (counts[k] > 1) {
			return fmt.Sprintf("%.40q: key %q: Repeated = %v, the key comes %d times", text, k, v.Repeated, counts[k])
		}
		v.Repeated = false
		got[k] = v
	}
	if diff := cmp.Diff(want, got); diff != "" {
		return fmt.Sprintf("%.40q (-encoding/json +ParseJSONObject):\n%s", text, diff)
	}
	return ""
}

// keyCounts counts the keys of the JSON object text, which encoding/json
// reads without error.
func keyCounts(text string) map[string]int {
	dec := json.NewDecoder(strings.NewReader(text))
	counts := map[string]int{}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return counts
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return counts
		}
		counts[tok.(string)]++
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return counts
		}
	}
	return counts
}

var jsonObjectCorpus = []string{
	`{}`, `null`, ` { "a" : "tcp" , "b":1000 } `, `{"a":1,"a":"two"}`,
	`{"a":{"b":[1,"x",{"c":null}]},"d":true}`, `{"\u0061\n":"\u00e9\ud83d\ude00"}`,
	`{"a":-0.5e3}`, `{"a":"\xff"}`, `{"a":null}`,
	``, ` `, `[]`, `"s"`, `1`, `{"a":}`, `{"a":1,}`, `{"a":1} x`, `{"a":01}`, `{a:1}`, `{"a":1`,
}

func TestParseJSONObject(t *testing.T) {
	// A value longer than the decoder's buffer, read in several parts.
	long := `{"k":"` + strings.Repeat("x", 70000) + `"}`
	for _, text := range append(jsonObjectCorpus, long) {
		if d := diffJSONObject(text); d != "" {
			t.Error(d)
		}
	}
}

func FuzzParseJSONObject(f *testing.F) {
	for _, text := range jsonObjectCorpus {
		f.Add(text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if d := diffJSONObject(text); d != "" {
			t.Error(d)
		}
	})
}
