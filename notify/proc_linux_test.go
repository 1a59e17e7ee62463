package notify

import (
	"os"
	"os/exec"
	"testing"
)

func TestStatStart(t *testing.T) {
	tests := []struct {
		line string
		want uint64
		ok   bool
	}{
		{"1234 (haproxy) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 0 0 0\n", 987654, true},
		{"1234 (a) b) (c d) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 42 1000\n", 42, true},
		{"1234 (haproxy) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0\n", 0, false},
		{"1234 (haproxy) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 x 1000\n", 0, false},
		{"1234 haproxy S", 0, false},
	}
	for _, tt := range tests {
		got, ok := statStart([]byte(tt.line))
		if got != tt.want || ok != tt.ok {
			t.Errorf("statStart(%q) = %d, %v, want %d, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

// TestProcessStart reads real processes: kube2lb's test, a child started
// after it, and a pid no process has.
func TestProcessStart(t *testing.T) {
	own, ok := processStart(os.Getpid())
	if !ok || own == 0 {
		t.Fatalf("processStart(own pid) = %d, %v", own, ok)
	}
	again, _ := processStart(os.Getpid())
	if again != own {
		t.Errorf("processStart(own pid) = %d, then %d", own, again)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	child, ok := processStart(cmd.Process.Pid)
	if !ok || child < own {
		t.Errorf("processStart(child) = %d, %v, want %d or more", child, ok, own)
	}
	if got, ok := processStart(exitedPID(t)); ok {
		t.Errorf("processStart(exited pid) = %d, want not known", got)
	}
}
