package gctune

import (
	"os"
	"runtime/debug"
	"testing"
)

// The target is the package's unless the environment sets its own.
func TestTarget(t *testing.T) {
	percent := debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	if os.Getenv("GOGC") == "" && percent != 400 {
		t.Errorf("GC percent %d, want 400", percent)
	}
	if limit := debug.SetMemoryLimit(-1); os.Getenv("GOMEMLIMIT") == "" && limit != 192<<20 {
		t.Errorf("memory limit %d, want %d", limit, 192<<20)
	}
}
