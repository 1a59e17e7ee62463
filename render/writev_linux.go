package render

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// maxIovecs is the most pieces one writev(2) takes (UIO_MAXIOV).
const maxIovecs = 1024

// write writes content to f with writev(2), up to maxIovecs pieces per
// call: the kernel copies each piece from where it is. Through a buffer,
// the configuration was copied once more in memory at every change, a
// fifth of a change's CPU for the 41 MB nodes-variant file of `make
// bench`.
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
	head := pieces[0] // what a short write left of pieces[0]
	var off int64     // where the next byte goes, for startWriteback
	if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
		off = pos
	}
	fi, err := f.Stat()
	regular := err == nil && fi.Mode().IsRegular()
	iov := make([]syscall.Iovec, 0, min(len(pieces), maxIovecs))
	for {
		iov = iov[:0]
		for i, p := range pieces[:min(len(pieces), maxIovecs)] {
			if i == 0 {
				p = head
			}
			v := syscall.Iovec{Base: unsafe.SliceData(p)}
			v.SetLen(len(p))
			iov = append(iov, v)
		}
		n, err := writev(rc, iov)
		if err != nil {
			return &os.PathError{Op: "write", Path: f.Name(), Err: err}
		}
		if n == 0 {
			return &os.PathError{Op: "write", Path: f.Name(), Err: io.ErrShortWrite}
		}
		if regular {
			rc.Control(func(fd uintptr) { startWriteback(fd, off, int64(n)) })
		}
		off += int64(n)
		for n >= len(head) {
			n -= len(head)
			if pieces = pieces[1:]; len(pieces) == 0 {
				return nil
			}
			head = pieces[0]
		}
		head = head[n:]
	}
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
