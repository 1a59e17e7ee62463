package render

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// TestChunkWriter writes random amounts and checks that the Output holds
// exactly what was written, in chunks no larger than maxChunk.
func TestChunkWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, hint := range []int{0, 100, 5 << 20} {
		w := newChunkWriter(hint)
		var want bytes.Buffer
		for want.Len() < 3*maxChunk {
			p := make([]byte, rng.IntN(70000))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			if n, err := w.Write(p); n != len(p) || err != nil {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(p))
			}
			want.Write(p)
		}
		out := w.output()
		if out.Len() != want.Len() || !bytes.Equal(out.Bytes(), want.Bytes()) {
			t.Fatalf("hint %d: output of %d bytes differs from the %d written", hint, out.Len(), want.Len())
		}
		var got bytes.Buffer
		if n, err := out.WriteTo(&got); n != int64(want.Len()) || err != nil || !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("hint %d: WriteTo = %d, %v, or other bytes", hint, n, err)
		}
		for i, p := range out.pieces {
			if p.len() == 0 || p.len() > maxChunk {
				t.Fatalf("hint %d: piece %d of %d bytes", hint, i, p.len())
			}
		}
	}
}

func TestOutputEmpty(t *testing.T) {
	var none *Output
	if none.Len() != 0 || none.Bytes() != nil {
		t.Error("a nil Output is not empty")
	}
	if n, err := none.WriteTo(new(bytes.Buffer)); n != 0 || err != nil {
		t.Errorf("nil WriteTo = %d, %v", n, err)
	}
	if out := newChunkWriter(0).output(); out.Len() != 0 || len(out.pieces) != 0 {
		t.Errorf("nothing written: %d bytes in %d pieces", out.Len(), len(out.pieces))
	}
}

// TestOutputReader reads an Output of many pieces with reads of every
// size from 1 byte: the bytes are the pieces, in order, then io.EOF.
func TestOutputReader(t *testing.T) {
	o := &Output{}
	for i := range 200 {
		o.add(bytes.Repeat([]byte{byte('a' + i%26)}, 1+i%37))
	}
	want := o.Bytes()
	for size := 1; size <= len(want)+1; size += 1 + size/8 {
		r := o.NewReader()
		var got []byte
		buf := make([]byte, size)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil || n == 0 {
				t.Fatalf("read size %d: %d, %v", size, n, err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read size %d: %d bytes, want %d, or different", size, len(got), len(want))
		}
	}
	var none *Output
	if n, err := none.NewReader().Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Errorf("nil Output: %d, %v, want io.EOF", n, err)
	}
}
