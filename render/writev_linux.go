package render

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// maxIovecs is the most pieces one writev(2) takes (UIO_MAXIOV).
const maxIovecs = 1024

// write writes content to f: the pieces in memory with writev(2), up to
// maxIovecs pieces per call, so that the kernel copies each from where it
// is (through a buffer, the configuration was copied once more in memory
// at every change, a fifth of a change's CPU for the 41 MB nodes-variant
// file of `make bench`); the regions of spill files with
// copy_file_range(2), from file to file in the kernel (copyRegion).
//
// Each call's bytes are handed to the disk at once (sync_file_range(2),
// SYNC_FILE_RANGE_WRITE, on a regular file), so that the fsync Apply does
// next waits for the last of them rather than for all: for the 41 MB file,
// write then fsync took 30 ms, overlapped 20 ms.
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
	written := func(n int) {
		if regular {
			rc.Control(func(fd uintptr) { startWriteback(fd, off, int64(n)) })
		}
		off += int64(n)
	}
	iov := make([]syscall.Iovec, 0, min(len(pieces), maxIovecs))
	for len(pieces) > 0 {
		if p := pieces[0]; p.f != nil {
			if err := copyRegion(f, rc, p, written); err != nil {
				return err
			}
			pieces = pieces[1:]
			continue
		}
		// The pieces in memory up to the next region, maxIovecs at most.
		k := 0
		for k < len(pieces) && k < maxIovecs && pieces[k].f == nil {
			k++
		}
		batch := pieces[:k]
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

// copyChunk is the most one copy_file_range(2) call copies: the disk is
// handed each chunk as it is written (startWriteback), so that Apply's
// fsync waits for the last one rather than for the whole file (a 76 MB
// region copied at once added 50 to 75 ms of waiting to each change).
const copyChunk = 1 << 20

// copyRegion appends region p of a spill file to f, at f's offset, with
// copy_file_range(2) where the kernel can, else through a buffer.
func copyRegion(f *os.File, rc syscall.RawConn, p piece, written func(int)) error {
	src, err := p.f.f.SyscallConn()
	if err != nil {
		return err
	}
	off, left := p.off, p.n
	for left > 0 && copyFileRangeTrap != 0 {
		var n uintptr
		var errno syscall.Errno
		cerr := src.Control(func(sfd uintptr) {
			err := rc.Write(func(dfd uintptr) bool {
				for {
					n, _, errno = syscall.Syscall6(copyFileRangeTrap, sfd, uintptr(unsafe.Pointer(&off)), dfd, 0, uintptr(min(left, copyChunk)), 0)
					if errno != syscall.EINTR {
						return errno != syscall.EAGAIN
					}
				}
			})
			if err != nil && errno == 0 {
				errno = syscall.EINVAL // not a file we can write to this way: fall back
			}
		})
		switch {
		case cerr != nil:
			return cerr
		case errno == syscall.ENOSYS || errno == syscall.EXDEV || errno == syscall.EINVAL ||
			errno == syscall.EOPNOTSUPP || errno == syscall.EPERM || errno == syscall.EBADF:
			// An old kernel, another file system, a file that is not
			// regular: the bytes go through memory.
			goto buffered
		case errno != 0:
			return &os.PathError{Op: "copy_file_range", Path: f.Name(), Err: errno}
		case n == 0:
			return &os.PathError{Op: "copy_file_range", Path: f.Name(), Err: io.ErrUnexpectedEOF}
		}
		// The kernel advanced off.
		left -= int(n)
		written(int(n))
	}
	if left == 0 {
		return nil
	}
buffered:
	buf := make([]byte, min(left, regionBuf))
	for left > 0 {
		chunk := buf[:min(left, len(buf))]
		if err := p.f.readAt(chunk, off); err != nil {
			return err
		}
		if _, err := f.Write(chunk); err != nil {
			return err
		}
		written(len(chunk))
		off += int64(len(chunk))
		left -= len(chunk)
	}
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
