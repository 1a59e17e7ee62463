package render

// startWriteback does nothing on 32-bit ARM, whose syscall package has no
// sync_file_range (ARM's is sync_file_range2, other arguments): the fsync
// Apply does next writes everything.
func startWriteback(fd uintptr, off, n int64) {}
