package kubeapi

import (
	"encoding/json"
	"fmt"
	"slices"
)

// encoding/json's reading of the cache's types, which the differential
// tests compare kube2lb's decoder with. kube2lb itself reads every object
// with its own decoder (Decode): these methods are the tests' alone, so
// that the binary does not carry them (issue 9: its size).

// UnmarshalJSON reads an object of strings, merged into the entries
// already there as encoding/json merges into a map, into a new array (a
// copy of the object may hold the old one); null empties p. It reads
// through encoding/json's map decoding, not kube2lb's decoder: the
// differential tests of that decoder compare it with this. (Pairs have
// no MarshalJSON: kube2lb never writes its objects.)
func (p *Pairs) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*p = nil
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	out := slices.Clone(*p)
	for k, v := range m {
		out.set(k, v)
	}
	*p = out
	return nil
}

// UnmarshalJSON reads the key of a taint object, as a struct of the one
// field would: null, or an object without the key, leaves t unchanged.
func (t *Taint) UnmarshalJSON(b []byte) error {
	var v struct {
		Key *string `json:"key"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Key != nil {
		*t = Taint(*v.Key)
	}
	return nil
}

// UnmarshalJSON accepts a JSON number or a JSON string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.IsString, v.IntVal = true, 0
		return json.Unmarshal(b, &v.StrVal)
	}
	var n int32
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("int or string: %w", err)
	}
	*v = IntOrString{IntVal: n}
	return nil
}

// MarshalJSON writes a JSON number or a JSON string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.StrVal)
	}
	return json.Marshal(v.IntVal)
}
