package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
)

// cacheFiles returns the template cache files kube2lb holds open: their
// /proc/PID/fd link targets, which end in " (deleted)" once unlinked.
func cacheFiles(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && strings.Contains(target, ".kube2lb-cache-") {
			files = append(files, target)
		}
	}
	return files
}

// TestCacheDir checks -cache-dir with the real process: by default the
// template cache is an unlinked file beside -config, which leaves nothing
// in the directory; -cache-dir DIR puts it in DIR; -cache-dir memory holds
// no file. Every configuration is right either way, through changes that
// reuse cached pieces.
func TestCacheDir(t *testing.T) {
	c := cp.Start(t)
	a := c.Admin
	a.Create(t, cp.Nodes, "", node("node-a", "127.0.0.11"))
	for i := range 3 {
		a.Create(t, cp.Services, "default", service(fmt.Sprintf("web-%d", i), "NodePort", 80+i))
	}
	other := t.TempDir()
	for _, tc := range []struct {
		name string
		flag []string
		dir  func(e *env) string // where the cache file must be; "" none
	}{
		{"default", nil, func(e *env) string { return e.dir }},
		{"dir", []string{"-cache-dir", other}, func(*env) string { return other }},
		{"memory", []string{"-cache-dir", "memory"}, func(*env) string { return "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, c, plainTemplate)
			p := e.start(t, c.Minimal, append([]string{"-wait", "0"}, tc.flag...)...)
			e.wait(t, "the first render", func(out string) bool { return has(out, svcLine("default", "web-2")) })
			name := "extra-" + tc.name
			a.Create(t, cp.Services, "default", service(name, "NodePort", 90))
			e.wait(t, "a change", func(out string) bool {
				return has(out, svcLine("default", name)) && has(out, svcLine("default", "web-0"))
			})
			want := tc.dir(e)
			var files []string
			deadline := time.Now().Add(10 * time.Second)
			for {
				// The first render's cache is written once it is
				// applied: wait for it rather than race it.
				files = cacheFiles(t, p.Pid())
				if (len(files) > 0) == (want != "") || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			switch {
			case want == "" && len(files) > 0:
				t.Errorf("-cache-dir memory: kube2lb holds %q", files)
			case want != "" && len(files) != 1:
				t.Errorf("kube2lb holds %d cache files (%q), want 1 in %s", len(files), files, want)
			case want != "" && (filepath.Dir(files[0]) != want || !strings.HasSuffix(files[0], " (deleted)")):
				t.Errorf("cache file %q, want an unlinked file in %s", files[0], want)
			}
			for _, d := range []string{e.dir, other} {
				entries, err := os.ReadDir(d)
				if err != nil {
					t.Fatal(err)
				}
				for _, en := range entries {
					if strings.HasPrefix(en.Name(), ".") {
						t.Errorf("%s holds %s", d, en.Name())
					}
				}
			}
		})
	}
}
