package render

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestAgeOrder checks byAge and byAgeOf against a stable sort by
// creationTimestamp, namespace and name: with services in namespace and
// name order (the fast paths) and shuffled, with many equal timestamps,
// in whole seconds (the radix sort) and not.
func TestAgeOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for round := range 200 {
		n := r.IntN(40)
		services := make([]ServiceInformation, n)
		for i := range services {
			services[i] = ServiceInformation{serviceValues: &serviceValues{
				Namespace: fmt.Sprintf("ns-%d", r.IntN(3)),
				Name:      fmt.Sprintf("svc-%d", r.IntN(5)),
				created:   base.Add(time.Duration(r.IntN(4)) * time.Second),
			}}
			if round%4 >= 2 { // else whole seconds, as the API server writes them
				services[i].created = services[i].created.Add(time.Duration(r.IntN(2)) * time.Nanosecond)
			}
			services[i].Port.Port = int32(i) // tells equal services apart
		}
		if round%2 == 0 {
			slices.SortStableFunc(services, func(a, b ServiceInformation) int {
				return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
			})
		}
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		slices.SortStableFunc(want, func(i, j int) int {
			a, b := &services[i], &services[j]
			return cmp.Or(a.created.Compare(b.created), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
		if got := byAge(services); !slices.Equal(got, want) {
			t.Fatalf("round %d: byAge %v, want %v", round, got, want)
		}
		ptrs := make([]*ServiceInformation, n)
		for i := range ptrs {
			ptrs[i] = &services[i]
		}
		if got := byAgeOf(ptrs); !slices.Equal(got, want) {
			t.Fatalf("round %d: byAgeOf %v, want %v", round, got, want)
		}
	}
}
