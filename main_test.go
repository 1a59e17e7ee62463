package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestSetGCPercent checks that kube2lb sets its collector target only
// when the operator did not set GOGC to a value the runtime reads.
func TestSetGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(123)
	defer debug.SetGCPercent(prev)

	for _, v := range []string{"200", "off", "0", "-1", "2147483647"} {
		t.Setenv("GOGC", v)
		if set, bad := setGCPercent(); set || bad != "" {
			t.Errorf("GOGC=%s: setGCPercent set the target (ignored %q)", v, bad)
		}
		if got := debug.SetGCPercent(123); got != 123 {
			t.Errorf("GOGC=%s: the target became %d", v, got)
		}
	}

	for _, v := range []string{"unset", "", "abc", "50%", "+50", " 50", "OFF", "2147483648", "-"} {
		if v == "unset" {
			os.Unsetenv("GOGC") // t.Setenv restores it
		} else {
			t.Setenv("GOGC", v) // "" is no choice either, to the runtime
		}
		set, bad := setGCPercent()
		if !set {
			t.Errorf("GOGC=%q: setGCPercent did not set the target", v)
		}
		if want := strings.TrimPrefix(v, "unset"); bad != want {
			t.Errorf("GOGC=%q: ignored %q, want %q", v, bad, want)
		}
		if got := debug.SetGCPercent(123); got != gcPercent {
			t.Errorf("GOGC=%q: target = %d, want %d", v, got, gcPercent)
		}
	}
}

// TestRunWarnsOfGlogFlags checks that the original's glog flags are
// named in a warning, and that kube2lb goes on (here to the missing
// template's error).
func TestRunWarnsOfGlogFlags(t *testing.T) {
	dir := t.TempDir()
	var stderr strings.Builder
	err := run(context.Background(), []string{"-logtostderr", "-v=2", "-template", filepath.Join(dir, "missing.tmpl"), "-config", filepath.Join(dir, "lb.cfg"), "-apiserver", "http://127.0.0.1:1"}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "missing.tmpl") {
		t.Errorf("run: %v, want the missing template's error", err)
	}
	if want := `level=WARN msg="the original's glog flags are ignored: kube2lb logs to standard error, -log-level sets the level" flags="-logtostderr -v"`; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
}

// TestRunTemplatePath: a -template that names no file, or a directory, is
// a bad command line (exit 2) naming the flag.
func TestRunTemplatePath(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.tmpl")
	for path, want := range map[string]string{
		missing: "-template: stat " + missing + ": no such file or directory",
		dir:     "-template " + dir + ": is a directory",
	} {
		err := run(context.Background(), []string{"-template", path, "-config", filepath.Join(dir, "lb.cfg"), "-apiserver", "http://127.0.0.1:1"}, io.Discard, io.Discard)
		if err == nil || err.Error() != want || !errors.As(err, new(*usageError)) {
			t.Errorf("-template %s: %v, want the usage error %q", path, err, want)
		}
	}
}
