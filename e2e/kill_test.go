//go:build e2e

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killLoop starts args under ipfs-sync n times, killing each with SIGKILL
// after a random delay, calling check after each kill.
func killLoop(t *testing.T, n int, maxDelay time.Duration, args []string, check func(i int)) int {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	kills := 0
	for i := 0; i < n; i++ {
		cmd := exec.Command(syncBin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(maxDelay))))
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			kills++
		}
		cmd.Wait()
		check(i)
	}
	return kills
}

// TestKillGC kills gc at random moments: every kept root stays complete
// and the next gc finishes.
func TestKillGC(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	copyTree(t, tinyTree.get(t), src)
	repo := filepath.Join(dir, "repo")
	var roots []string
	for cycle := 1; cycle <= 3; cycle++ {
		res := ipfsSync(t, repo, "-q", "sync", "--name", "m", src)
		if res.Code != 0 {
			t.Fatal(res)
		}
		roots = append(roots, oneCID(t, res.Stdout))
		mkmirror(t, "mutate", "--seed", fmt.Sprint(cycle), src)
	}
	kills := killLoop(t, 50, 60*time.Millisecond, []string{"--repo", repo, "gc", "--keep", "1"}, func(int) {
		if res := ipfsSync(t, repo, "export", roots[2], "--car", "/dev/null"); res.Code != 0 {
			t.Fatalf("kept root incomplete after a killed gc: %s", res)
		}
	})
	if res := ipfsSync(t, repo, "gc", "--keep", "1"); res.Code != 0 {
		t.Fatalf("gc after kills: %s", res)
	}
	if res := ipfsSync(t, repo, "fsck"); res.Code != 0 {
		t.Fatalf("fsck: %s", res)
	}
	t.Logf("%d kills", kills)
}

// TestKillPush kills push at random moments while it sends a tree to a
// real kubo; a final push finishes, pins the root and the DAG is whole.
func TestKillPush(t *testing.T) {
	d := kuboDaemon(t)
	_, src, repo, first := syncedTiny(t, "--name", "m")
	mkmirror(t, "mutate", "--seed", "9", src)
	res := ipfsSync(t, repo, "-q", "sync", "--name", "m", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	second := oneCID(t, res.Stdout)
	kills := 0
	for i, root := range []string{first, second} {
		kills += killLoop(t, 25, 300*time.Millisecond, []string{"--repo", repo, "push", root, "--api", d.api}, func(int) {})
		if res := ipfsSync(t, repo, "push", root, "--api", d.api); res.Code != 0 {
			t.Fatalf("push %d after kills: %s", i, res)
		}
		kuboRun(t, d.path, "dag", "stat", "--offline", root)
		if pins := kuboRun(t, d.path, "pin", "ls", "--type", "recursive"); !strings.Contains(pins, root) {
			t.Fatalf("%s not pinned:\n%s", root, pins)
		}
	}
	t.Logf("%d kills", kills)
}
