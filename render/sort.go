package render

import "sort"

// sortFunc and stableSortFunc sort s by cmp with package sort's one
// implementation. slices.SortFunc compiles a copy of its sorting code for
// every element type, about 20 KB each, which the 9 MB limit on the binary
// (issue 9) cannot afford for the model's structs; none of these sorts is
// on a hot path (they run per service, or per render over nodes and
// listeners).
func sortFunc[T any](s []T, cmp func(a, b *T) int) { sort.Sort(&sorter[T]{s, cmp}) }

func stableSortFunc[T any](s []T, cmp func(a, b *T) int) { sort.Stable(&sorter[T]{s, cmp}) }

// sorter's methods take a pointer: with values, each element type got a
// second copy of Swap, the wrapper the interface calls.
type sorter[T any] struct {
	s   []T
	cmp func(a, b *T) int
}

func (x *sorter[T]) Len() int           { return len(x.s) }
func (x *sorter[T]) Less(i, j int) bool { return x.cmp(&x.s[i], &x.s[j]) < 0 }
func (x *sorter[T]) Swap(i, j int)      { x.s[i], x.s[j] = x.s[j], x.s[i] }
