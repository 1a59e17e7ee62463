package render

// copyFileRangeTrap is copy_file_range(2)'s number on arm64 (the syscall
// package predates it).
const copyFileRangeTrap = 285
