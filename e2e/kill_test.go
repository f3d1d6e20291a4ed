//go:build e2e

package e2e

import (
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killLoop starts args under ipfs-sync n times, killing each with SIGKILL
// after a random delay below maxDelay and calling check after each kill. It
// fails the test unless enough kills landed mid-run (requireLanded).
func killLoop(t *testing.T, n int, maxDelay time.Duration, args []string, check func(i int)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	landed := 0
	for i := 0; i < n; i++ {
		if killMidRun(t, exec.Command(syncBin, args...), time.Duration(rng.Int64N(int64(maxDelay)))) {
			landed++
		}
		check(i)
	}
	requireLanded(t, landed, n)
}

// killMidRun starts cmd, sends it SIGKILL after delay and reaps it. It
// reports whether the kill landed while the run was still going: Signal
// succeeds on a child that has exited but is not yet reaped, so only the
// wait status tells. A run that ended first must have succeeded.
func killMidRun(t *testing.T, cmd *exec.Cmd, delay time.Duration) bool {
	t.Helper()
	var stderr strings.Builder
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
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

// requireLanded fails the test unless at least a quarter of n kills landed
// mid-run: a loop whose runs all end before their kill tests nothing of a
// crash, and the delays must then be shortened (or the work made larger).
func requireLanded(t *testing.T, landed, n int) {
	t.Helper()
	if landed*4 < n {
		t.Fatalf("only %d of %d kills landed while the run was going", landed, n)
	}
	t.Logf("%d of %d kills landed mid-run", landed, n)
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
		publishCycle(t, src, uint64(cycle))
	}
	killLoop(t, 50, 60*time.Millisecond, []string{"--repo", repo, "gc", "--keep", "1"}, func(int) {
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
	for i, root := range []string{first, second} {
		killLoop(t, 25, 300*time.Millisecond, []string{"--repo", repo, "push", root, "--api", d.api}, func(int) {})
		if res := ipfsSync(t, repo, "push", root, "--api", d.api); res.Code != 0 {
			t.Fatalf("push %d after kills: %s", i, res)
		}
		kuboRun(t, d.path, "dag", "stat", "--offline", root)
		if pins := kuboRun(t, d.path, "pin", "ls", "--type", "recursive"); !strings.Contains(pins, root) {
			t.Fatalf("%s not pinned:\n%s", root, pins)
		}
	}
}
