package render

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWrite writes outputs of many pieces (more than one writev takes)
// to a file, and to a pipe read slowly, where writes come back short: the
// bytes must be the pieces, in order.
func TestWrite(t *testing.T) {
	var pieces [][]byte
	for i := range 3000 {
		pieces = append(pieces, bytes.Repeat([]byte(fmt.Sprintf("%d;", i)), 1+i%97))
	}
	out := &Output{}
	for _, p := range pieces {
		out.add(p)
	}
	want := out.Bytes()

	path := writeFileOf(t, out, want)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan []byte)
	go func() {
		var got []byte
		buf := make([]byte, 1000) // far less than a pipe holds: writes come back short
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				read <- got
				return
			}
		}
	}()
	if err := write(w, out); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := <-read; !bytes.Equal(got, want) {
		t.Errorf("pipe: %d bytes, want %d, or different", len(got), len(want))
	}
	r.Close()

	// An empty configuration is an empty file.
	empty := filepath.Join(t.TempDir(), "empty")
	if _, err := Apply(context.Background(), empty, NewOutput(nil), ""); err != nil {
		t.Errorf("Apply of an empty configuration: %v", err)
	} else if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Errorf("empty configuration: %v, %v", fi, err)
	}

	// A write that fails names the file.
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := write(ro, out); err == nil || !bytes.Contains([]byte(err.Error()), []byte(path)) {
		t.Errorf("write to a read-only file: %v, want an error naming it", err)
	}
}

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

// writeFileOf writes out to a new file with write, checks that the file
// holds want, and returns its path.
func writeFileOf(t *testing.T, out *Output, want []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(f, out); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
		t.Errorf("file: %d bytes, want %d, or different", len(got), len(want))
	}
	return path
}
