package fdtable

import (
	"math/bits"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// After grow, the kernel's table holds n descriptors (FDSize in
// /proc/self/status), where the limit on open files allows them.
func TestGrow(t *testing.T) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	// Past what init grew it to, and no more than the limit allows.
	n := min(4*Want, 1<<(bits.Len64(rl.Cur)-1))
	grow(n)
	if got := fdSize(t); got < n {
		t.Fatalf("FDSize %d after grow(%d)", got, n)
	}
}

func fdSize(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "FDSize:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no FDSize in /proc/self/status")
	return 0
}
