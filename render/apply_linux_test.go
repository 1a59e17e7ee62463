package render

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestApplyInPlaceFullDisk bind-mounts a file of a small tmpfs over the
// destination, as a container's single-file mount does: rename fails with
// EBUSY and Apply rewrites in place. A configuration larger than the space
// left must leave the old one whole, not cut where the space ran out.
func TestApplyInPlaceFullDisk(t *testing.T) {
	t.Run("fallocate", testApplyInPlaceFullDisk)
	// ext2, some network file systems: the space is taken by writing
	// zeros past the end first.
	t.Run("no fallocate", func(t *testing.T) {
		reserveSpace = func(*os.File, int64) error { return errNoReserve }
		t.Cleanup(func() { reserveSpace = reserve })
		testApplyInPlaceFullDisk(t)
	})
}

func testApplyInPlaceFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("mounting a tmpfs needs root, and CI must not skip")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.Mkdir(small, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(small, syscall.MNT_DETACH) })
	old := strings.Repeat("old line\n", 4000) // 36 KB of the 64
	src := filepath.Join(small, "lb.cfg")
	dest := filepath.Join(dir, "lb.cfg")
	for _, p := range []string{src, dest} {
		if err := os.WriteFile(p, []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount(src, dest, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dest, syscall.MNT_DETACH) })

	_, err := Apply(context.Background(), dest, NewOutput([]byte(strings.Repeat("new line\n", 9000))), "") // 81 KB
	if err == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Apply = %v, want ENOSPC", err)
	}
	if got := readFile(t, dest); got != old {
		t.Errorf("the old configuration was cut: %d bytes, ending %q", len(got), got[max(0, len(got)-20):])
	}
	// What fits is written in place, more than there was (in the space
	// the failure freed), an empty configuration too.
	for _, content := range []string{strings.Repeat("more line\n", 5000), "fits\n", ""} {
		if _, err := Apply(context.Background(), dest, NewOutput([]byte(content)), ""); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, dest); got != content {
			t.Errorf("dest = %q, want %q", got, content)
		}
	}
}

// TestParseTemplateFIFO: a template path that names a FIFO is refused at
// once, not waited on (the daemon's loop would block with it).
func TestParseTemplateFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "lb.tmpl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ParseTemplate(fifo); done <- err }()
	select {
	case err := <-done:
		if want := "read template: " + fifo + " is not a regular file (p---------)"; err == nil || err.Error() != want {
			t.Errorf("ParseTemplate = %v, want %q", err, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ParseTemplate blocked on a FIFO")
	}
}

// TestPauseSpillAfterFailedWrites: on a full disk the cache's own writes
// fail first, and the files they let go stay open until the collector
// runs; a pause (an apply that found no space) runs it, so that their
// space is free for the apply.
func TestPauseSpillAfterFailedWrites(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("mounting a tmpfs needs root, and CI must not skip")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	opts := testOptions()
	opts.SpillDir = dir
	r, tmpl := spillRenderer(t, opts)
	snaps := memoSnapshots(t)
	openFiles := func() (n int) {
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, dir+"/") && strings.HasSuffix(target, " (deleted)") {
				n++
			}
		}
		return n
	}
	if _, err := r.Render(tmpl, snaps[0]); err != nil {
		t.Fatal(err)
	}
	// The disk fills up: the next renders' writes fail.
	fill, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer fill.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := fill.Write(buf); err != nil {
			break
		}
	}
	for _, snap := range snaps[1:] {
		if _, err := r.Render(tmpl, snap); err != nil {
			t.Fatal(err)
		}
	}
	// Only the pause's collection may close them.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	r.PauseSpill(true)
	res, err := r.Render(tmpl, snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	if n := spilledBytes(res.Output); n != 0 {
		t.Errorf("paused: %d bytes of the output in a cache file", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for openFiles() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the files' cleanups run after the collection
	}
	if n := openFiles(); n != 0 {
		t.Errorf("%d cache files still open after the pause's render", n)
	}
}
