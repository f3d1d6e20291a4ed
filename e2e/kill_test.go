//go:build e2e

package e2e

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killLoop starts ipfs-sync args up to n times, each killed with SIGKILL
// after a random delay below maxDelay and followed by check, until a run
// ends on its own: later runs would find their work done and test nothing.
// It adds the runs it started, and the kills that landed mid-run, to the
// counts that requireLanded checks.
func killLoop(t *testing.T, rng *rand.Rand, n int, maxDelay time.Duration, args []string, check func(), landed, runs *int) {
	t.Helper()
	for range n {
		*runs++
		if !killMidRun(t, exec.Command(syncBin, args...), time.Duration(rng.Int64N(int64(maxDelay)))) {
			return
		}
		*landed++
		check()
	}
}

// killMidRun starts cmd, sends it SIGKILL after delay and reaps it. It
// reports whether the kill landed while the run was still going: Signal
// succeeds on a child that has exited but is not yet reaped, so only the
// wait status tells. A run that ended first must have succeeded.
func killMidRun(t *testing.T, cmd *exec.Cmd, delay time.Duration) bool {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	cmd.Process.Signal(syscall.SIGKILL)
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return true
	}
	if err != nil {
		t.Fatalf("%s ended before its kill, and failed: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	return false
}

// requireLanded fails the test unless at least a quarter of the runs were
// killed mid-run: a loop whose runs all end before their kill tests nothing
// of a crash, and its delays must then be shortened (or its work made larger).
func requireLanded(t *testing.T, landed, runs int) {
	t.Helper()
	if landed*4 < runs {
		t.Fatalf("only %d of %d runs were killed while still going", landed, runs)
	}
	t.Logf("%d of %d runs killed mid-run", landed, runs)
}

// TestKillGC kills gc at random moments, each cycle with the previous
// root to collect: the kept root stays complete and the next gc finishes.
func TestKillGC(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	copyTree(t, tinyTree.get(t), src)
	repo := filepath.Join(dir, "repo")
	rng := rand.New(rand.NewPCG(7, 50))
	landed, runs := 0, 0
	for cycle := 1; cycle <= 8; cycle++ {
		res := ipfsSync(t, repo, "-q", "sync", "--name", "m", src)
		if res.Code != 0 {
			t.Fatal(res)
		}
		kept := oneCID(t, res.Stdout)
		killLoop(t, rng, 5, killWindow(t, repo, "gc", "--keep", "1"), []string{"--repo", repo, "gc", "--keep", "1"}, func() {
			if res := ipfsSync(t, repo, "export", kept, "--car", os.DevNull); res.Code != 0 {
				t.Fatalf("kept root incomplete after a killed gc: %s", res)
			}
		}, &landed, &runs)
		publishCycle(t, src, uint64(cycle))
	}
	requireLanded(t, landed, runs)
	if res := ipfsSync(t, repo, "gc", "--keep", "1"); res.Code != 0 {
		t.Fatalf("gc after kills: %s", res)
	}
	if res := ipfsSync(t, repo, "fsck"); res.Code != 0 {
		t.Fatalf("fsck: %s", res)
	}
}

// TestKillPush kills push at random moments while it sends a tree to a
// real kubo; a final push finishes, pins the root and the DAG is whole.
func TestKillPush(t *testing.T) {
	d := kuboDaemon(t)
	_, src, repo, first := syncedTiny(t, "--name", "m")
	publishCycle(t, src, 9)
	res := ipfsSync(t, repo, "-q", "sync", "--name", "m", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	second := oneCID(t, res.Stdout)
	rng := rand.New(rand.NewPCG(7, 25))
	landed, runs := 0, 0
	for i, root := range []string{first, second} {
		killLoop(t, rng, 25, 300*time.Millisecond, []string{"--repo", repo, "push", root, "--api", d.api}, func() {}, &landed, &runs)
		if res := ipfsSync(t, repo, "push", root, "--api", d.api); res.Code != 0 {
			t.Fatalf("push %d after kills: %s", i, res)
		}
		kuboRun(t, d.path, "dag", "stat", "--offline", root)
		if pins := kuboRun(t, d.path, "pin", "ls", "--type", "recursive"); !strings.Contains(pins, root) {
			t.Fatalf("%s not pinned:\n%s", root, pins)
		}
	}
	requireLanded(t, landed, runs)
}
