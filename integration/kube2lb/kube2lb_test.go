package kube2lb

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRunVersion(t *testing.T) {
	r := Run(t, "-version")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "kube2lb ") {
		t.Fatalf("kube2lb -version: exit %d, stdout %q, logs %q", r.Code, r.Stdout, r.Logs)
	}
}

func TestRunBadFlag(t *testing.T) {
	r := Run(t, "-wait", "soon", "-template", "x", "-config", "y")
	if r.Code != 2 || !strings.Contains(r.Logs, "-wait") {
		t.Fatalf("kube2lb -wait soon: exit %d, logs %q; want exit 2 naming -wait", r.Code, r.Logs)
	}
}

func TestStartSignalWait(t *testing.T) {
	// No API server answers on this port: kube2lb keeps retrying until
	// SIGTERM, then exits 0.
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "t.tmpl")
	if err := os.WriteFile(tmpl, []byte("{{ range .Services }}{{ . }}\n{{ end }}"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := Start(t, "-apiserver", "http://127.0.0.1:1", "-template", tmpl, "-config", filepath.Join(dir, "out"))
	p.WaitLog(t, "connecting")
	if p.Exited() {
		t.Fatalf("kube2lb exited: %s", p.Logs())
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("kube2lb after SIGTERM: %v; logs:\n%s", err, p.Logs())
	}
	if p.ExitCode() != 0 {
		t.Fatalf("exit code %d", p.ExitCode())
	}
}

func TestCountingNotifier(t *testing.T) {
	path := filepath.Join(t.TempDir(), "it's counted")
	if n := CountLines(t, path); n != 0 {
		t.Fatalf("CountLines of a missing file = %d", n)
	}
	cmd := strings.TrimPrefix(CountingNotifier(path), "command:")
	for range 3 {
		if out, err := exec.Command("/bin/sh", "-c", cmd).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", cmd, err, out)
		}
	}
	if n := WaitLines(t, path, 3); n != 3 {
		t.Fatalf("WaitLines = %d, want 3", n)
	}
	if got := WaitFile(t, path, func(s string) bool { return s != "" }); got != "x\nx\nx\n" {
		t.Fatalf("content %q", got)
	}
}
