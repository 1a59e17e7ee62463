//go:build linux || darwin || freebsd

package render

import "syscall"

// roomFor reports whether the file system of dir has n bytes free, or
// cannot tell.
func roomFor(dir string, n int64) bool {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return true
	}
	return int64(st.Bavail)*int64(st.Bsize) >= n
}
