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
