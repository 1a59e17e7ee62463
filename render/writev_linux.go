package render

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// reserve allocates n bytes for f from its start, without changing its
// size (fallocate's FALLOC_FL_KEEP_SIZE), so that rewriting f in place
// cannot stop halfway for want of space. A file system without fallocate
// gives errNoReserve.
func reserve(f *os.File, n int64) error {
	if n == 0 {
		return nil // fallocate refuses a length of 0
	}
	const keepSize = 0x1 // FALLOC_FL_KEEP_SIZE
	err := syscall.Fallocate(int(f.Fd()), keepSize, 0, n)
	if err == syscall.EOPNOTSUPP || err == syscall.ENOSYS {
		return errNoReserve
	}
	return err
}

// maxIovecs is the most pieces one writev(2) takes (UIO_MAXIOV).
const maxIovecs = 1024

// writebackChunk is how much write lets accumulate before it hands the
// bytes to the disk.
const writebackChunk = 4 << 20

// write writes content to f: the pieces in memory with writev(2), up to
// maxIovecs pieces per call, so that the kernel copies each from where it
// is (through a buffer, the configuration was copied once more in memory
// at every change, a fifth of a change's CPU for the 41 MB nodes-variant
// file of `make bench`); the regions of spill files from a window of a
// mapping of the file at a time (copyRegion).
//
// The bytes are handed to the disk every writebackChunk as they are
// written (sync_file_range(2), SYNC_FILE_RANGE_WRITE, on a regular file),
// so that the fsync Apply does next waits for the last of them rather than
// for all: for the 41 MB file, write then fsync took 30 ms, overlapped
// 20 ms. (At every 1 MiB, the calls cost twice the CPU.)
func write(f *os.File, content *Output) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	pieces := content.pieces // read only: the Output is shared; no piece is empty (add)
	if content.Len() == 0 {
		return nil
	}
	var off int64 // where the next byte goes, for startWriteback
	if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
		off = pos
	}
	fi, err := f.Stat()
	regular := err == nil && fi.Mode().IsRegular()
	// The disk is handed the bytes every writebackChunk, as they are
	// written (see above).
	var pending int64
	handOver := func() {
		if regular && pending > 0 {
			rc.Control(func(fd uintptr) { startWriteback(fd, off-pending, pending) })
		}
		pending = 0
	}
	defer handOver()
	written := func(n int) {
		off += int64(n)
		if pending += int64(n); pending >= writebackChunk {
			handOver()
		}
	}
	iov := make([]syscall.Iovec, 0, min(len(pieces), maxIovecs))
	var batch []piece // of pieces in memory, small regions read into read
	var read []byte
	for len(pieces) > 0 {
		if p := pieces[0]; p.f != nil && (p.n >= smallRegion || !mapSpill) {
			if err := copyRegion(f, p, written); err != nil {
				return err
			}
			pieces = pieces[1:]
			continue
		}
		// The pieces up to the next large region, maxIovecs at most. A
		// small region is read into memory and written with the pieces
		// around it: a configuration that many changes rendered is made
		// of thousands of small regions of the cache file, and a mapping
		// of each (mmap, write, munmap) cost more than the render.
		k := 0
		batch = batch[:0]
		read = read[:0]
		for k < len(pieces) && k < maxIovecs {
			p := pieces[k]
			if p.f != nil {
				if p.n >= smallRegion || !mapSpill || len(read)+p.n > cap(read) && len(read) > 0 {
					break
				}
				if read == nil {
					read = make([]byte, 0, mapWindow)
				}
				start := len(read)
				read = read[:start+p.n]
				if err := p.f.readAt(read[start:], p.off); err != nil {
					return err
				}
				p = piece{b: read[start:]}
			}
			batch = append(batch, p)
			k++
		}
		head := batch[0].b // what a short write left of batch[0]
		for len(batch) > 0 {
			iov = iov[:0]
			for i, p := range batch {
				b := p.b
				if i == 0 {
					b = head
				}
				v := syscall.Iovec{Base: unsafe.SliceData(b)}
				v.SetLen(len(b))
				iov = append(iov, v)
			}
			n, err := writev(rc, iov)
			if err != nil {
				return &os.PathError{Op: "write", Path: f.Name(), Err: err}
			}
			if n == 0 {
				return &os.PathError{Op: "write", Path: f.Name(), Err: io.ErrShortWrite}
			}
			written(n)
			for len(batch) > 0 && n >= len(head) {
				n -= len(head)
				if batch = batch[1:]; len(batch) > 0 {
					head = batch[0].b
				}
			}
			head = head[n:]
		}
		pieces = pieces[k:]
	}
	return nil
}

// mapWindow is how much of a spill file copyRegion maps at once: the
// mapped pages count in kube2lb's RSS while they are mapped.
const mapWindow = 1 << 20

// smallRegion is the size under which a region of a spill file is read
// into memory and written with its neighbours rather than mapped.
const smallRegion = 64 << 10

// mapSpill is false in tests of the buffered copy.
var mapSpill = true

// copyRegion appends region p of a spill file to f: through a read-only
// mapping of a window of the spill file at a time, written with write(2),
// so that the kernel copies the bytes once, from the page cache, as it
// does from memory. (copy_file_range(2), which copies from file to file,
// cost 40% more CPU than writev on ext4, through its splice path; only
// the kernel reads the mapping, so a disk error is an EFAULT from write,
// not a fault in kube2lb.) Where the file cannot be mapped, the bytes go
// through a buffer.
func copyRegion(f *os.File, p piece, written func(int)) error {
	off, left := p.off, p.n
	var mapErr error
	page := int64(os.Getpagesize())
	for left > 0 && mapSpill && mapErr == nil {
		start := off &^ (page - 1)
		n := min(left, mapWindow)
		var m []byte
		if err := p.f.control(func(fd int) {
			m, mapErr = syscall.Mmap(fd, start, int(off-start)+n, syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
		}); err != nil {
			return err
		}
		if mapErr != nil {
			break
		}
		_, err := f.Write(m[off-start:])
		syscall.Munmap(m)
		if err != nil {
			return err
		}
		written(n)
		off += int64(n)
		left -= n
	}
	// The rest through a buffer (WriteTo reads the file), handed to
	// the disk by Apply's fsync.
	if left == 0 {
		return nil
	}
	rest := &Output{pieces: []piece{{f: p.f, off: off, n: left}}, size: left}
	if _, err := rest.WriteTo(f); err != nil {
		return err
	}
	written(left)
	return nil
}

func writev(rc syscall.RawConn, iov []syscall.Iovec) (int, error) {
	var n uintptr
	var errno syscall.Errno
	err := rc.Write(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
			switch errno {
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // a pollable file (a pipe): wait until writable
			default:
				return true
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
