package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestSetGCPercent checks that kube2lb sets its collector target only
// when the operator did not set GOGC.
func TestSetGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(123)
	defer debug.SetGCPercent(prev)

	t.Setenv("GOGC", "200")
	if setGCPercent() {
		t.Error("GOGC is set, but setGCPercent set the target")
	}
	if got := debug.SetGCPercent(123); got != 123 {
		t.Errorf("GOGC is set, but the target became %d", got)
	}

	for _, empty := range []bool{false, true} {
		if empty {
			t.Setenv("GOGC", "") // no choice either, to the runtime
		} else {
			os.Unsetenv("GOGC") // t.Setenv restores it
		}
		if !setGCPercent() {
			t.Errorf("GOGC empty=%v: setGCPercent did not set the target", empty)
		}
		if got := debug.SetGCPercent(123); got != gcPercent {
			t.Errorf("GOGC empty=%v: target = %d, want %d", empty, got, gcPercent)
		}
	}
}
