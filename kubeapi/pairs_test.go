package kubeapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPairs(t *testing.T) {
	var p Pairs
	for _, e := range []Pair{{"b", "1"}, {"a", "2"}, {"c", "3"}, {"b", "4"}, {"", "5"}} {
		p.set(e.Key, e.Value)
	}
	want := Pairs{{"", "5"}, {"a", "2"}, {"b", "4"}, {"c", "3"}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("set (-want +got):\n%s", diff)
	}
	for _, e := range want {
		if v, ok := p.Get(e.Key); !ok || v != e.Value {
			t.Errorf("Get(%q) = %q, %v; want %q", e.Key, v, ok, e.Value)
		}
	}
	for _, k := range []string{"0", "bb", "d", "A"} {
		if v, ok := p.Get(k); ok {
			t.Errorf("Get(%q) = %q, found", k, v)
		}
	}
	if diff := cmp.Diff(map[string]string{"": "5", "a": "2", "b": "4", "c": "3"}, p.Map()); diff != "" {
		t.Errorf("Map (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(p, PairsOf(p.Map())); diff != "" {
		t.Errorf("PairsOf(Map) (-want +got):\n%s", diff)
	}
	if PairsOf(nil) != nil || Pairs(nil).Map() != nil {
		t.Error("no entries are not nil")
	}
}

// TestPairsJSON checks that encoding/json reads Pairs as the map they
// stand for: merged into the entries there, null empties.
func TestPairsJSON(t *testing.T) {
	var m ObjectMeta
	in := `{"labels": {"z": "1", "a": "2", "z": "3"}, "annotations": {"x": "y"}}`
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{"labels": {"b": "4", "a": "5"}, "annotations": null}`), &m); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Pairs{{"a", "5"}, {"b", "4"}, {"z", "3"}}, m.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if m.Annotations != nil {
		t.Errorf("annotations after null: %v", m.Annotations)
	}
	if err := json.Unmarshal([]byte(`{"labels": {"a": 1}}`), &m); err == nil {
		t.Error("a number as a label value was accepted")
	}

	// Reading into a copy of an object leaves the original as it was,
	// as with maps it would be the same map, whole.
	var orig ObjectMeta
	if err := json.Unmarshal([]byte(`{"labels": {"a": "1", "c": "3", "e": "5"}}`), &orig); err != nil {
		t.Fatal(err)
	}
	cp := orig
	if err := json.Unmarshal([]byte(`{"labels": {"b": "2"}}`), &cp); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Pairs{{"a", "1"}, {"c", "3"}, {"e", "5"}}, orig.Labels); diff != "" {
		t.Errorf("the original after reading into a copy (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Pairs{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"e", "5"}}, cp.Labels); diff != "" {
		t.Errorf("the copy (-want +got):\n%s", diff)
	}
}

// TestDecodedPairsExact checks that kube2lb's decoder gives labels an
// array of their number, merges a repeated key as encoding/json does,
// and shares no array between objects.
func TestDecodedPairsExact(t *testing.T) {
	body := `{"metadata": {"resourceVersion": "1"}, "items": [
		{"metadata": {"name": "a", "labels": {"e": "5", "a": "1", "c": "3"}, "labels": {"b": "2"}}},
		{"metadata": {"name": "b", "labels": {"x": "1", "y": "2", "z": "3"}}}]}`
	var got []*Node
	if _, err := decodeList(strings.NewReader(body), func(n *Node) { got = append(got, n) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d nodes", len(got))
	}
	if diff := cmp.Diff(Pairs{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"e", "5"}}, got[0].Metadata.Labels); diff != "" {
		t.Errorf("merged labels (-want +got):\n%s", diff)
	}
	for _, n := range got {
		if l := n.Metadata.Labels; cap(l) != len(l) {
			t.Errorf("%s: %d labels in an array of %d", n.Metadata.Name, len(l), cap(l))
		}
	}
	if diff := cmp.Diff(Pairs{{"x", "1"}, {"y", "2"}, {"z", "3"}}, got[1].Metadata.Labels); diff != "" {
		t.Errorf("second node's labels (-want +got):\n%s", diff)
	}
}
