//go:build !arm

package render

import "syscall"

// startWriteback starts writing n bytes of fd at off to the disk, without
// waiting; an error only means that the fsync to come does all the work.
func startWriteback(fd uintptr, off, n int64) {
	const syncFileRangeWrite = 0x2 // SYNC_FILE_RANGE_WRITE
	_ = syscall.SyncFileRange(int(fd), off, n, syncFileRangeWrite)
}
