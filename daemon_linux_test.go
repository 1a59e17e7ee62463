package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDaemonFullDiskLetsTheCacheGo: -config and the template cache share
// a small file system (the default -cache-dir). A change whose candidate
// finds no space, because the cache file holds it, must be applied
// without another change: the cache goes to memory, its file is let go,
// and the retry finds the space. Before, the file was held for good and
// every retry failed.
func TestDaemonFullDiskLetsTheCacheGo(t *testing.T) {
	t.Run("notified", func(t *testing.T) { testDaemonFullDisk(t) })
	// A notifier that keeps failing is retried with the notification: it
	// must not hold the output, nor the file the output is in.
	t.Run("failing notifier", func(t *testing.T) { testDaemonFullDisk(t, "-notify", "command:exit 3") })
}

func testDaemonFullDisk(t *testing.T, args ...string) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("mounting a tmpfs needs root, and CI must not skip")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	// About 1 KB per service: 100 services are a 100 KB configuration
	// and as much in the cache file.
	tmpl := "{{- range .Services }}\n{{ .Name }} {{ .NodePort }} " + strings.Repeat("x", 1000) + "\n{{- end }}\n"
	small := t.TempDir()
	// The configuration (100 KB), the cache (100 KB, then 110) and a
	// candidate of 110 KB do not fit; without the cache they do.
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=300k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(small, syscall.MNT_DETACH) })
	config := filepath.Join(small, "lb.cfg")
	td := newTestDaemonWith(t, tmpl, append([]string{"-wait", "0", "-config", config}, args...)...)
	td.config = config

	names := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprintf("s%03d", i)
		}
		return s
	}
	td.src.setServices(names(100)...)
	td.start(t, nil)
	waitFor(t, "the first configuration", td.configHas("s099 "))
	if len(args) > 0 {
		waitFor(t, "the notifier's failure", func() bool { return strings.Contains(td.logs.String(), "exit status 3") })
	}
	td.src.setServices(names(110)...)
	waitFor(t, "the change's apply to fail", func() bool { return td.metrics.applies.get("error") >= 1 })
	waitFor(t, "the change applied by a retry", td.configHas("s109 "))
	if logs := td.logs.String(); !strings.Contains(logs, "no space left: the template cache is kept in memory until an apply succeeds") {
		t.Errorf("no warning of the cache kept in memory:\n%s", logs)
	}
	// The disk has no room for the cache file beside the configuration:
	// the cache stays in memory, rather than taking again the space the
	// next change's candidate needs (and being paused again).
	td.src.setServices(names(105)...)
	waitFor(t, "the next change", func() bool { return !td.configHas("s109 ")() && td.configHas("s104 ")() })
	if n := strings.Count(td.logs.String(), "no space left: the template cache is kept in memory"); n != 1 {
		t.Errorf("the cache was paused %d times, want once:\n%s", n, td.logs)
	}
}
