package render

import (
	"bytes"
	"fmt"
	"testing"
)

// TestWriteRegions writes an output of regions of a spill file, small and
// large, out of order and between pieces in memory, as a configuration
// that many changes rendered is: more small regions than one batch or one
// read buffer takes, and large ones mapped. The bytes must be the pieces,
// in order.
func TestWriteRegions(t *testing.T) {
	sp, err := newSpillFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.f.Close()
	type region struct{ off, n int }
	var regions []region
	for i := range 3000 {
		n := 1 + (i*7919)%4000 // small
		if i%500 == 0 {
			n = smallRegion + i // large
		}
		off, ok := sp.append(bytes.Repeat([]byte{byte('a' + i%26)}, n))
		if !ok {
			t.Fatal("append failed")
		}
		regions = append(regions, region{int(off), n})
	}
	if err := sp.flush(); err != nil {
		t.Fatal(err)
	}
	out := &Output{}
	for i := range regions {
		r := regions[(i*1237)%len(regions)] // out of order: never adjacent
		out.addRegion(sp, int64(r.off), r.n)
		if i%3 == 0 {
			out.add([]byte(fmt.Sprintf("<%d>", i)))
		}
	}
	want := out.Bytes()
	if len(want) <= 2*mapWindow {
		t.Fatalf("only %d bytes: not more than the read buffer takes", len(want))
	}
	writeFileOf(t, out, want)
}
