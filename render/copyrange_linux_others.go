//go:build linux && !amd64 && !arm64

package render

// copyFileRangeTrap is 0 where copy_file_range(2)'s number is not written
// down here: spilled pieces are then copied through memory (copyRegion).
// (One file per architecture rather than a table: a table costs a page of
// a binary kept under 9 MB.)
const copyFileRangeTrap = 0
