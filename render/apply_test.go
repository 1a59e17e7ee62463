package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// candidates returns the files Apply left beside dest.
func candidates(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".*.kube2lb-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dest := filepath.Join(dir, "haproxy.cfg")

	changed, err := Apply(ctx, dest, NewOutput([]byte("one\n")), "")
	if err != nil || !changed {
		t.Fatalf("new file: changed %v, err %v", changed, err)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o644 {
		t.Errorf("new file mode %v, want 0644", fi.Mode().Perm())
	}

	// Unchanged: no write at all (the inode and mtime stay).
	if err := os.Chmod(dest, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(dest)
	changed, err = Apply(ctx, dest, NewOutput([]byte("one\n")), "exit 1")
	if err != nil || changed {
		t.Fatalf("unchanged: changed %v, err %v", changed, err)
	}
	after, _ := os.Stat(dest)
	if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Error("unchanged content was written")
	}

	// Changed, check passes: the check sees the candidate, the mode stays.
	changed, err = Apply(ctx, dest, NewOutput([]byte("two\n")), `grep -q two "$KUBE2LB_CANDIDATE" && test "$(dirname "$KUBE2LB_CANDIDATE")" = "`+dir+`"`)
	if err != nil || !changed {
		t.Fatalf("changed: changed %v, err %v", changed, err)
	}
	if got := readFile(t, dest); got != "two\n" {
		t.Errorf("dest = %q", got)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", fi.Mode().Perm())
	}

	// Check fails: dest is untouched, the error carries the output, no
	// candidate is left.
	changed, err = Apply(ctx, dest, NewOutput([]byte("three\n")), `echo "parsing [$KUBE2LB_CANDIDATE:1]: bad"; exit 3`)
	if err == nil || changed {
		t.Fatalf("failing check: changed %v, err %v", changed, err)
	}
	if !strings.Contains(err.Error(), "bad") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error %q lacks the check's output", err)
	}
	var ce *CheckError
	if !errors.As(err, &ce) || !strings.HasPrefix(ce.Output, "parsing ["+dir) {
		t.Errorf("error %#v is not a *CheckError with the output", err)
	}
	if got := readFile(t, dest); got != "two\n" {
		t.Errorf("dest changed by a failing check: %q", got)
	}
	if c := candidates(t, dir); len(c) != 0 {
		t.Errorf("candidates left: %v", c)
	}

	// A check that outlives a cancelled context is killed.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Apply(cctx, dest, NewOutput([]byte("four\n")), "sleep 60"); err == nil {
		t.Error("cancelled check: no error")
	}
	if got := readFile(t, dest); got != "two\n" {
		t.Errorf("dest changed by a cancelled check: %q", got)
	}

	// A check that hangs, with a child holding its output open, is killed
	// with its process group when the context ends.
	tctx, tcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer tcancel()
	if _, err := Apply(tctx, dest, NewOutput([]byte("four\n")), "sleep 60 & sleep 60; wait"); err == nil ||
		!strings.Contains(err.Error(), "killed at the deadline (-update-timeout): context deadline exceeded") {
		t.Errorf("hung check: error %v, want one that names the deadline", err)
	}
	if got := readFile(t, dest); got != "two\n" {
		t.Errorf("dest changed by a hung check: %q", got)
	}

	// Stale candidates of a killed process are removed; not one another
	// process holds (a -once beside the daemon, checking its candidate).
	stale := filepath.Join(dir, ".haproxy.cfg.kube2lb-123")
	held := filepath.Join(dir, ".haproxy.cfg.kube2lb-456")
	for _, p := range []string{stale, held} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	holder, err := os.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := lockFile(holder); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, dest, NewOutput([]byte("five\n")), ""); err != nil {
		t.Fatal(err)
	}
	if c, want := candidates(t, dir), []string{held}; !slices.Equal(c, want) {
		t.Errorf("candidates left: %v, want %v", c, want)
	}
	holder.Close()
	if _, err := Apply(ctx, dest, NewOutput([]byte("six\n")), ""); err != nil {
		t.Fatal(err)
	}
	if c := candidates(t, dir); len(c) != 0 {
		t.Errorf("candidates left once released: %v", c)
	}
}

// TestApplyCandidateHeldUntilRenamed: the candidate stays locked until it
// is renamed into place, and something not a candidate that matches the
// pattern (a FIFO) holds nothing up.
func TestApplyCandidateHeldUntilRenamed(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "haproxy.cfg")
	fifo := filepath.Join(dir, ".haproxy.cfg.kube2lb-fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	old := rename
	rename = func(from, to string) error {
		removeStale(dir, ".haproxy.cfg.kube2lb-*") // another process's Apply, just before
		return old(from, to)
	}
	t.Cleanup(func() { rename = old })
	done := make(chan error, 1)
	go func() {
		_, err := Apply(context.Background(), dest, NewOutput([]byte("renamed\n")), "")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Apply blocked by a FIFO among the candidates")
	}
	if got := readFile(t, dest); got != "renamed\n" {
		t.Errorf("dest = %q", got)
	}
	if c := candidates(t, dir); !slices.Equal(c, []string{fifo}) {
		t.Errorf("left %v, want the FIFO alone", c)
	}
}

// TestApplyCandidateHeld: the candidate is locked while it is checked, so
// that another process's Apply to the same file leaves it alone.
func TestApplyCandidateHeld(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "haproxy.cfg")
	started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	check := fmt.Sprintf(`touch %s; while [ ! -e %s ]; do sleep 0.01; done; test -e "$%s"`, started, release, CandidateEnv)
	done := make(chan error, 1)
	go func() {
		_, err := Apply(context.Background(), dest, NewOutput([]byte("checked\n")), check)
		done <- err
	}()
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// What the other process's Apply does first.
	removeStale(dir, ".haproxy.cfg.kube2lb-*")
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the check lost its candidate: %v", err)
	}
	if got := readFile(t, dest); got != "checked\n" {
		t.Errorf("dest = %q", got)
	}
}

func TestApplySymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.cfg")
	link := filepath.Join(dir, "link.cfg")
	if err := os.WriteFile(target, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.cfg", link); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(context.Background(), link, NewOutput([]byte("new")), ""); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the symlink was replaced")
	}
	if got := readFile(t, target); got != "new" {
		t.Errorf("target = %q", got)
	}

	// A link to a file that does not exist (yet): the file is created,
	// through a chain of links, and the links stay.
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	chain := filepath.Join(dir, "chain.cfg")
	if err := os.Symlink(link, chain); err != nil { // absolute, to the relative one
		t.Fatal(err)
	}
	if _, err := Apply(context.Background(), chain, NewOutput([]byte("created")), ""); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{link, chain} {
		if fi, err := os.Lstat(l); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the symlink %s was replaced", l)
		}
	}
	if got := readFile(t, target); got != "created" {
		t.Errorf("target = %q", got)
	}
	// A link into a directory that does not exist: an error naming it.
	gone := filepath.Join(dir, "gone.cfg")
	if err := os.Symlink(filepath.Join(dir, "missing", "lb.cfg"), gone); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(context.Background(), gone, NewOutput([]byte("x")), ""); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "missing")) {
		t.Errorf("Apply through a link into a missing directory: %v, want an error naming it", err)
	}
	if fi, err := os.Lstat(gone); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the symlink into a missing directory was replaced")
	}

	// ".." in a link is the parent of where the path's links lead:
	// etc/lb is real/lb, and real/lb/lb.cfg's ../x is real/x, not etc/x.
	for _, d := range []string{"real/lb", "real/x", "etc/x"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "real/lb"), filepath.Join(dir, "etc/lb")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../x/lb.cfg", filepath.Join(dir, "real/lb/lb.cfg")); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(context.Background(), filepath.Join(dir, "etc/lb/lb.cfg"), NewOutput([]byte("through")), ""); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "real/x/lb.cfg")); got != "through" {
		t.Errorf("real/x/lb.cfg = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/x/lb.cfg")); err == nil {
		t.Error("etc/x/lb.cfg written: .. read as text, not as the kernel reads it")
	}
}

// TestApplyBindMount simulates a destination bind-mounted as a single file,
// which rename cannot replace: Apply writes in place.
func TestApplyBindMount(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EBUSY, syscall.EXDEV} {
		t.Run(errno.Error(), func(t *testing.T) {
			rename = func(oldpath, newpath string) error {
				return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: errno}
			}
			t.Cleanup(func() { rename = os.Rename })
			dir := t.TempDir()
			dest := filepath.Join(dir, "nginx.conf")
			if err := os.WriteFile(dest, []byte("a much longer old content\n"), 0o640); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Stat(dest)
			changed, err := Apply(context.Background(), dest, NewOutput([]byte("new\n")), "true")
			if err != nil || !changed {
				t.Fatalf("changed %v, err %v", changed, err)
			}
			after, _ := os.Stat(dest)
			if !os.SameFile(before, after) {
				t.Error("dest was replaced, not written in place")
			}
			if got := readFile(t, dest); got != "new\n" {
				t.Errorf("dest = %q", got)
			}
			if after.Mode().Perm() != 0o640 {
				t.Errorf("mode %v", after.Mode().Perm())
			}
			if c := candidates(t, dir); len(c) != 0 {
				t.Errorf("candidates left: %v", c)
			}
		})
	}
	t.Run("other error", func(t *testing.T) {
		rename = func(oldpath, newpath string) error {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EACCES}
		}
		t.Cleanup(func() { rename = os.Rename })
		dest := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(dest, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(context.Background(), dest, NewOutput([]byte("new")), ""); err == nil {
			t.Error("no error")
		}
		if got := readFile(t, dest); got != "old" {
			t.Errorf("dest = %q", got)
		}
	})
}

// crashChildEnv makes the test binary an applying child, see TestMain.
const crashChildEnv = "KUBE2LB_TEST_APPLY_CHILD"

func TestMain(m *testing.M) {
	if dest := os.Getenv(crashChildEnv); dest != "" {
		applyForever(dest)
		return
	}
	os.Exit(m.Run())
}

// crashContents are what the child alternates between: big enough that
// writing one takes many system calls.
func crashContents() [2][]byte {
	var c [2][]byte
	for i := range c {
		line := fmt.Sprintf("server node-%d 10.0.0.%d:30080 check\n", i, i)
		c[i] = bytes.Repeat([]byte(line), (1<<20)/len(line))
	}
	return c
}

// applyForever applies the two contents in turn, reporting each apply with
// a byte on stdout, until killed.
func applyForever(dest string) {
	c := crashContents()
	for i := 0; ; i++ {
		if _, err := Apply(context.Background(), dest, NewOutput(c[i%2]), ""); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write([]byte{'.'})
	}
}

// TestApplyCrashSafety kills a child process in the middle of applying,
// many times, and checks that the destination is always one complete
// version.
func TestApplyCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dest := filepath.Join(dir, "haproxy.cfg")
	c := crashContents()
	if err := os.WriteFile(dest, c[1], 0o644); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	// How long one apply takes here, to spread the kills over applies.
	start := time.Now()
	for i := range 4 {
		if _, err := Apply(context.Background(), dest, NewOutput(c[i%2]), ""); err != nil {
			t.Fatal(err)
		}
	}
	perApply := time.Since(start) / 4
	for i := range 40 {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dest)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for the child's first apply, then kill it after a random
		// delay of up to a few applies: the kill lands at an arbitrary
		// point of one. (Timing only spreads the kills; nothing asserts
		// on it.)
		if _, err := io.ReadFull(stdout, make([]byte, 1)); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child: %v\n%s", i, err, stderr.String())
		}
		time.Sleep(time.Duration(rng.Int64N(int64(3 * perApply))))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		got, err := os.ReadFile(dest)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if !bytes.Equal(got, c[0]) && !bytes.Equal(got, c[1]) {
			t.Fatalf("round %d: destination is partial: %d bytes", i, len(got))
		}
	}
	// The next apply cleans up whatever candidate a kill left.
	if _, err := Apply(context.Background(), dest, NewOutput([]byte("final")), ""); err != nil {
		t.Fatal(err)
	}
	if c := candidates(t, dir); len(c) != 0 {
		t.Errorf("candidates left: %v", c)
	}
}

func TestHolds(t *testing.T) {
	big := bytes.Repeat([]byte("server node-1 10.0.0.1:30080 check\n"), 10000) // several read chunks
	changed := bytes.Clone(big)
	changed[len(changed)-1] = '!'
	for _, tc := range []struct {
		name          string
		file, content []byte
		want          bool
	}{
		{"equal", big, big, true},
		{"both empty", nil, nil, true},
		{"empty file", nil, big, false},
		{"empty content", big, nil, false},
		{"last byte differs", big, changed, false},
		{"file longer", append(bytes.Clone(big), '\n'), big, false},
		{"file shorter", big[:len(big)-1], big, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, tc.file, 0o644); err != nil {
				t.Fatal(err)
			}
			// In one piece, and in pieces that straddle the read chunks.
			for _, content := range []*Output{NewOutput(tc.content), inPieces(tc.content, 1, 7, 65535, 3, 100000)} {
				got, err := holds(path, content)
				if err != nil || got != tc.want {
					t.Errorf("holds(%d pieces) = %v, %v; want %v, nil", len(content.pieces), got, err, tc.want)
				}
			}
		})
	}
	if _, err := holds(filepath.Join(t.TempDir(), "missing"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
}

// inPieces splits b into an Output of pieces of the given sizes in turn.
func inPieces(b []byte, sizes ...int) *Output {
	o := &Output{}
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(b))
		o.add(b[:n])
		b = b[n:]
	}
	return o
}

// TestApplyPieces applies an Output of many pieces, and its one-piece
// copy over it: the second finds the file holds it already.
func TestApplyPieces(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "haproxy.cfg")
	big := bytes.Repeat([]byte("server node-1 10.0.0.1:30080 check\n"), 20000)
	if changed, err := Apply(context.Background(), dest, inPieces(big, 3, 1, 300000, 17), ""); err != nil || !changed {
		t.Fatalf("Apply = %v, %v; want true, nil", changed, err)
	}
	if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("file holds %d bytes (%v), want the %d applied", len(got), err, len(big))
	}
	if changed, err := Apply(context.Background(), dest, NewOutput(big), ""); err != nil || changed {
		t.Errorf("Apply of the same content = %v, %v; want false, nil", changed, err)
	}
}

// TestApplyReleasesReplaced checks that the file Apply replaces, which it
// holds open across the rename so that its pages are freed after Apply
// returns, is closed (by Apply: the collector, which would close it too,
// is off).
func TestApplyReleasesReplaced(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skipf("no /proc/self/fd to list open files: %v", err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	dest := filepath.Join(t.TempDir(), "haproxy.cfg")
	ctx := context.Background()
	if _, err := Apply(ctx, dest, NewOutput([]byte("first\n")), ""); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	first := fi.Sys().(*syscall.Stat_t).Ino
	if _, err := Apply(ctx, dest, NewOutput([]byte("second\n")), ""); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dest); got != "second\n" {
		t.Fatalf("dest holds %q", got)
	}
	held := func() bool {
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, fd := range fds {
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join("/proc/self/fd", fd.Name()), &st) == nil && st.Ino == first && st.Nlink == 0 {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(30 * time.Second); held(); {
		if time.Now().After(deadline) {
			t.Fatal("the replaced file is still open 30 s after Apply")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestApplySharedDirectory checks that Apply neither follows a link nor
// replaces a file that another user owns in a sticky world-writable
// directory, as the kernel's protected_symlinks and protected_regular
// refuse: that user would choose what kube2lb overwrites, or own the
// configuration. Elsewhere, and for its own files, it does.
func TestApplySharedDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give files to another user") // CI runs as root
	}
	const other = 65534 // nobody
	ctx := context.Background()
	victim := filepath.Join(t.TempDir(), "victim.conf")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	private := t.TempDir()
	link := func(dir, name, target string, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := func(dir, name string, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("theirs\n"), 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, dest := range []string{
		link(shared, "haproxy.cfg", victim, other),
		link(shared, "new.cfg", filepath.Join(filepath.Dir(victim), "created.conf"), other),
		file(shared, "theirs.cfg", other),
		link(shared, "chain.cfg", link(shared, "hop", victim, other), 0),
		// A link to a directory, on the way to the file.
		filepath.Join(link(shared, "dir", filepath.Dir(victim), other), "victim.conf"),
		// The same, the shared directory reached through kube2lb's own link.
		filepath.Join(link(private, "mine", shared, 0), "dir", "victim.conf"),
	} {
		_, err := Apply(ctx, dest, NewOutput([]byte("config\n")), "")
		if err == nil || !strings.Contains(err.Error(), ": owned by uid 65534 in the sticky world-writable directory ") || !strings.HasSuffix(err.Error(), ": not followed or replaced") {
			t.Errorf("%s: error = %v, want a refusal", dest, err)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("victim holds %q", b)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(victim), "created.conf")); err == nil {
		t.Error("a file was created through another user's link")
	}

	// Allowed: another user's link in a directory that is not world
	// writable, and kube2lb's own link in the shared one.
	for _, dest := range []string{link(private, "haproxy.cfg", victim, other), link(shared, "own.cfg", victim, os.Geteuid())} {
		if _, err := Apply(ctx, dest, NewOutput([]byte(dest+"\n")), ""); err != nil {
			t.Errorf("%s: %v", dest, err)
		}
		if b, _ := os.ReadFile(victim); string(b) != dest+"\n" {
			t.Errorf("%s: victim holds %q", dest, b)
		}
	}
}
