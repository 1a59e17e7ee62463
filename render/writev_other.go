//go:build !linux

package render

import (
	"bufio"
	"os"
)

// write writes content to f through a buffer: an incremental render's
// output is many small pieces. (Linux: writev, see writev_linux.go.)
func write(f *os.File, content *Output) error {
	w := bufio.NewWriterSize(f, 256<<10)
	if _, err := content.WriteTo(w); err != nil {
		return err
	}
	return w.Flush()
}

// reserve cannot reserve: fallocate is Linux's (see writev_linux.go).
func reserve(f *os.File, n int64) error { return errNoReserve }

// mapSpill is only for the tests of writev_linux.go's copyRegion.
var mapSpill = true
