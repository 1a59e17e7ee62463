package render

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CandidateEnv is the environment variable holding the candidate file's
// path when the check command runs.
const CandidateEnv = "KUBE2LB_CANDIDATE"

// maxCheckOutput bounds how much of the check command's output an error
// carries.
const maxCheckOutput = 8 << 10

// rename is os.Rename; tests replace it to simulate a bind-mounted
// destination.
var rename = os.Rename

// Apply makes dest hold content, so that a reader never sees a partial
// file:
//
//  1. If dest already holds content, nothing is written and changed is false.
//  2. content is written to a candidate file beside dest (same directory,
//     named .<dest>.kube2lb-*), with dest's mode (0644 for a new file).
//  3. If check is not empty it is run with /bin/sh -c, the candidate's path
//     in $KUBE2LB_CANDIDATE; failing, Apply returns an error holding its
//     output and dest is untouched.
//  4. The candidate is synced and renamed over dest, and the directory
//     synced. When rename cannot replace dest because it is a bind-mounted
//     single file (EBUSY, EXDEV), dest is rewritten in place instead; that
//     fallback is not atomic.
//
// A dest that is a symbolic link is resolved: its target is replaced.
// Candidates left by a killed process are removed at the next Apply; a
// candidate is locked while in use, and another process's is left alone.
func Apply(ctx context.Context, dest string, content *Output, check string) (changed bool, err error) {
	dest, err = resolve(dest)
	if err != nil {
		return false, err
	}
	same, err := holds(dest, content)
	switch {
	case err == nil && same:
		return false, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, err // an *fs.PathError: "read PATH: ..."
	}
	// The file the previous Apply replaced may still be closing: its
	// space is free once it is closed, and a disk that is nearly full
	// needs it for this candidate.
	replacedClosing.Wait()
	mode := fs.FileMode(0o644)
	var owner *syscall.Stat_t
	regular := false
	if fi, err := os.Stat(dest); err == nil {
		mode = fi.Mode().Perm()
		owner, _ = fi.Sys().(*syscall.Stat_t)
		regular = fi.Mode().IsRegular()
	}

	dir, base := filepath.Split(dest)
	dir = filepath.Clean(dir)
	pattern := "." + base + ".kube2lb-*"
	removeStale(dir, pattern)
	f, err := createCandidate(dir, pattern)
	if err != nil {
		return false, fmt.Errorf("create candidate for %s: %w", dest, err)
	}
	candidate := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(candidate)
		}
	}()
	if err := write(f, content); err != nil {
		return false, fmt.Errorf("write candidate %s: %w", candidate, err)
	}
	if err := f.Chmod(mode); err != nil {
		return false, fmt.Errorf("chmod candidate %s: %w", candidate, err)
	}
	if owner != nil && (int(owner.Uid) != os.Geteuid() || int(owner.Gid) != os.Getegid()) {
		// Best effort: keep dest's owner when we are allowed to.
		_ = f.Chown(int(owner.Uid), int(owner.Gid))
	}
	if check != "" {
		if err := runCheck(ctx, check, candidate); err != nil {
			return false, err
		}
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("sync candidate %s: %w", candidate, err)
	}
	// f stays open, and locked, until the candidate is renamed: another
	// process's removeStale leaves it alone until then.
	// The replaced file's pages are freed when the last reference to it
	// goes: by the rename itself, unless it is held open. Held, they are
	// freed after Apply returns, off the path to the notifier (for a
	// 41 MB file, 8 ms of the rename).
	if regular {
		if replaced, err := os.Open(dest); err == nil {
			replacedClosing.Add(1)
			defer func() {
				go func() {
					replaced.Close()
					replacedClosing.Done()
				}()
			}()
		}
	}
	if renameErr := rename(candidate, dest); renameErr != nil {
		if !errors.Is(renameErr, syscall.EBUSY) && !errors.Is(renameErr, syscall.EXDEV) {
			return false, fmt.Errorf("replace %s: %w", dest, renameErr)
		}
		f.Close()
		os.Remove(candidate)
		if err := writeInPlace(dest, content); err != nil {
			return false, fmt.Errorf("rewrite %s in place (rename: %v): %w", dest, renameErr, err)
		}
		return true, nil
	}
	f.Close() // synced: closing loses nothing
	if err := syncDir(dir); err != nil {
		return true, fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return true, nil
}

// replacedClosing counts the closes of replaced files under way (Apply).
var replacedClosing sync.WaitGroup

// runCheck runs the check command on the candidate. Its whole process
// group is killed if ctx ends.
func runCheck(ctx context.Context, check, candidate string) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", check)
	cmd.Env = append(os.Environ(), CandidateEnv+"="+candidate)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	text := strings.TrimSpace(string(out))
	if len(text) > maxCheckOutput {
		text = text[:maxCheckOutput] + "\n... (output truncated)"
	}
	if ctx.Err() != nil {
		// Killed at -update-timeout: say so, not just "signal: killed".
		err = fmt.Errorf("%w, killed at the deadline (-update-timeout): %w", err, ctx.Err())
	}
	return &CheckError{Command: check, Output: text, Err: err}
}

// CheckError is returned by Apply when the check command rejects the
// candidate (or cannot run); the destination is then untouched.
type CheckError struct {
	Command string // the -check command
	Output  string // its combined output, trimmed, at most 8 KiB
	Err     error  // how it ended, e.g. *exec.ExitError
}

func (e *CheckError) Error() string {
	if e.Output == "" {
		return fmt.Sprintf("check %q: %v", e.Command, e.Err)
	}
	return fmt.Sprintf("check %q: %v:\n%s", e.Command, e.Err, e.Output)
}

func (e *CheckError) Unwrap() error { return e.Err }

// holds reports whether the file at path holds exactly content. It reads
// the file in chunks rather than whole: a configuration of many megabytes
// is not held twice in memory at every render.
func holds(path string, content *Output) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() != int64(content.Len()) {
		return false, nil
	}
	return content.equalTo(f)
}

// writeInPlace overwrites path with content without replacing the file,
// for destinations that cannot be renamed over.
func writeInPlace(path string, content *Output) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	// The space first: a write that stops for want of it would leave the
	// old configuration overwritten with part of the new one.
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	err = reserveSpace(f, int64(content.Len()))
	if err == errNoReserve {
		// Synced: a network file system (NFS, SMB) reports the space
		// it lacks there rather than at the write.
		if err = extendWithZeros(f, fi.Size(), int64(content.Len())); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		// A failed reservation can keep blocks past the end of the
		// file (ext4), or zeros (extendWithZeros); cutting the file
		// back to its size frees them.
		f.Truncate(fi.Size())
		f.Close()
		return fmt.Errorf("reserve %d bytes: %w", content.Len(), err)
	}
	if err := write(f, content); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(int64(content.Len())); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// reserveSpace is reserve; tests replace it to play a file system
// without fallocate.
var reserveSpace = reserve

// resolve returns the file dest leads to through its symbolic links (a
// link's target that does not exist yet is created, rather than the link
// replaced by a file). It refuses, as the kernel's protected_symlinks and
// protected_regular do, to follow a link, or replace a file, that another
// user owns in a sticky world-writable directory (/tmp) that is not
// theirs, wherever it is on the way: whoever may write there would choose
// what kube2lb, often root, overwrites, or own the configuration the load
// balancer reads. (The path is checked, then used: a link made between
// the two is for the kernel's own protections.)
func resolve(dest string) (string, error) {
	for range 40 { // the kernel's limit on links followed
		if err := shared(dest); err != nil {
			return "", err
		}
		fi, err := os.Lstat(dest)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			break
		}
		target, err := os.Readlink(dest)
		if err != nil {
			break
		}
		if !filepath.IsAbs(target) {
			// Not cleaned: ".." is the parent of where a link of the
			// path leads, as the kernel reads it (EvalSymlinks below).
			target = filepath.Dir(dest) + string(filepath.Separator) + target
		}
		d, base := filepath.Split(target)
		if resolved, err := filepath.EvalSymlinks(d); err == nil {
			target = filepath.Join(resolved, base)
		}
		dest = target
	}
	if resolved, err := filepath.EvalSymlinks(dest); err == nil {
		dest = resolved
	}
	return dest, nil
}

// shared checks each link on path, and the file it names, read as the
// kernel reads it (not cleaned: a link before ".." counts), for one that
// another user owns in a sticky world-writable directory not theirs.
func shared(path string) error {
	for k := 1; k <= len(path); k++ {
		if k < len(path) && path[k] != '/' {
			continue
		}
		q := path[:k]
		fi, err := os.Lstat(q)
		if err != nil {
			return nil // nothing further exists
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if k < len(path) && fi.Mode()&fs.ModeSymlink == 0 || st == nil || st.Uid == 0 || int(st.Uid) == os.Geteuid() {
			continue
		}
		dir := filepath.Dir(q)
		if di, err := os.Stat(dir); err == nil && di.Mode()&(fs.ModeSticky|0o002) == fs.ModeSticky|0o002 && di.Sys().(*syscall.Stat_t).Uid != st.Uid {
			return fmt.Errorf("%s: owned by uid %d in the sticky world-writable directory %s: not followed or replaced", q, st.Uid, dir)
		}
	}
	return nil
}

// errNoReserve is reserve on a file system without fallocate.
var errNoReserve = errors.New("fallocate not supported")

// extendWithZeros makes f, size bytes long, n bytes long by writing zeros
// past its end, which takes the blocks as fallocate would (where that
// stops for want of space, the caller cuts f back to its size, its bytes
// untouched): the rewrite that follows overwrites blocks f already has
// (on a copy-on-write file system, it may still need new ones).
func extendWithZeros(f *os.File, size, n int64) error {
	if n <= size {
		return nil
	}
	zeros := make([]byte, min(n-size, 1<<20))
	for off := size; off < n; {
		k, err := f.WriteAt(zeros[:min(int64(len(zeros)), n-off)], off)
		if err != nil {
			return err
		}
		off += int64(k)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeStale removes candidates left behind by a process killed during
// Apply: those no process holds locked (see createCandidate).
func removeStale(dir, pattern string) {
	matches, _ := filepath.Glob(filepath.Join(dir, pattern))
	for _, m := range matches {
		// Non-blocking: something else than a candidate (a FIFO) must
		// not hold Apply up.
		f, err := os.OpenFile(m, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			// Another user's (a -once run as root): its lock cannot be
			// tested, so only once it is old.
			if fi, err := os.Lstat(m); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleAge {
				os.Remove(m)
			}
			continue
		}
		// A file system without locks: removed, as before locks.
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if err := lockFile(f); !errors.Is(err, syscall.EWOULDBLOCK) {
				os.Remove(m)
			}
		}
		f.Close()
	}
}

// staleAge is how old a candidate whose lock cannot be tested must be to
// be removed as stale.
const staleAge = time.Hour

// createCandidate creates a candidate file in dir, locked while it is in
// use, so that another kube2lb applying to the same file (a -once beside
// the daemon) does not remove it as stale while it is written and
// checked. One that another process's removeStale took before it was
// locked is created again.
func createCandidate(dir, pattern string) (*os.File, error) {
	for range 3 {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, err
		}
		switch err := lockFile(f); {
		case err == nil && stillThere(f):
			return f, nil
		case err != nil && !errors.Is(err, syscall.EWOULDBLOCK):
			return f, nil // a file system without locks
		}
		f.Close() // removed, or about to be, by another process
	}
	return nil, errors.New("removed by another process as it was created, three times")
}

// stillThere reports whether f's name still names f.
func stillThere(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	cur, err := os.Lstat(f.Name())
	return err == nil && os.SameFile(fi, cur)
}

// lockFile takes an exclusive lock on f (flock) without waiting:
// EWOULDBLOCK when another open file holds it. The lock goes with f's
// last close.
func lockFile(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lockErr error
	if err := raw.Control(func(fd uintptr) { lockErr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB) }); err != nil {
		return err
	}
	return lockErr
}
