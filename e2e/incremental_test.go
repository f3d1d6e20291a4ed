//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs-sync/ipfs-sync/internal/mirrorgen"
)

// copyTree copies src to dst preserving modes, mtimes and symlinks, as a
// mirror host's rsync would.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	out, err := exec.Command("cp", "-a", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

func rsyncTree(t testing.TB, src, dst string) {
	t.Helper()
	out, err := exec.Command("rsync", "-a", "--delete", src+"/", dst+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("rsync: %v\n%s", err, out)
	}
}

// TestIncrementalMutateCycles syncs a tiny mirror, then applies mkmirror
// publish cycles to it, syncing incrementally into the same repository
// each time: every root must be kubo's root of the same tree. The last
// cycle is a busy one, which adds a flat directory of a new release.
func TestIncrementalMutateCycles(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	for _, m := range []importMode{modeDefault, modeNone, modeV0} {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "mirror")
			copyTree(t, tinyTree.get(t), src)
			repo := filepath.Join(dir, "repo")
			ipfsPath := kubo(t, m.kuboProfile, m.kuboConfig...)
			flat := false
			for cycle := 0; cycle <= 5; cycle++ {
				if cycle > 0 {
					next := filepath.Join(dir, fmt.Sprintf("m%d", cycle))
					copyTree(t, src, next)
					opt := mirrorgen.MutateOptions{Seed: uint64(cycle), Scale: 1}
					if cycle == 5 {
						opt.Scale = mirrorgen.FlatEvery
					}
					c, err := mirrorgen.Mutate(next, opt)
					if err != nil {
						t.Fatal(err)
					}
					flat = c.FlatDirAdded != "" || flat
					rsyncTree(t, next, src)
				}
				res := ipfsSync(t, repo, append(append([]string{"-q", "sync"}, m.sync...), src)...)
				if res.Code != 0 {
					t.Fatalf("cycle %d: %s", cycle, res)
				}
				got := oneCID(t, res.Stdout)
				want := kuboAdd(t, ipfsPath, src, m.kubo...)
				if got != want {
					t.Fatalf("cycle %d: ipfs-sync %s, kubo %s", cycle, got, want)
				}
			}
			if !flat {
				t.Error("no cycle added a flat directory: the test does not test what it says")
			}
		})
	}
}

// TestCrashDuringSync kills `ipfs-sync sync` with SIGKILL at random moments
// while it imports a changed tree, then runs it again: the ref must name a
// complete root at every point, and the finishing run must give the right
// root (a full import's, and kubo's).
func TestCrashDuringSync(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	copyTree(t, tinyTree.get(t), src)
	repo := filepath.Join(dir, "repo")
	rng := rand.New(rand.NewPCG(1, 2))
	landed, runs := 0, 0
	for cycle := 1; cycle <= 6; cycle++ {
		next := filepath.Join(dir, fmt.Sprintf("m%d", cycle))
		copyTree(t, src, next)
		publishCycle(t, next, uint64(cycle))
		rsyncTree(t, next, src)
		killLoop(t, rng, 10, killWindow(t, repo, "-q", "sync", "--name", "m", src), []string{"--repo", repo, "-q", "sync", "--name", "m", src},
			func() { checkRefComplete(t, repo) }, &landed, &runs)
		res := ipfsSync(t, repo, "-q", "sync", "--name", "m", src)
		if res.Code != 0 {
			t.Fatalf("run after kills: %s", res)
		}
		got := oneCID(t, res.Stdout)
		checkRefComplete(t, repo)
		if want := syncRoot(t, src, "--full"); got != want {
			t.Fatalf("cycle %d: root after crashes %s, full import %s", cycle, got, want)
		}
	}
	requireLanded(t, landed, runs)
}

// killWindow is how long after its start a kill loop's run may be killed:
// three quarters of the fastest of two whole runs of `ipfs-sync --repo REPO
// ARGS...` on copies of the repository (an empty one if there is none
// yet). A run on a fresh copy is slower than the same run on the original
// (its files are new to the page cache), so the window is cut short of
// it; a fixed window would let runs end before their kill on a fast
// machine, or kill only their start on a loaded one.
func killWindow(t *testing.T, repo string, args ...string) time.Duration {
	t.Helper()
	var fastest time.Duration
	for range 2 {
		scratch := filepath.Join(t.TempDir(), "repo")
		if _, err := os.Stat(repo); err == nil {
			copyTree(t, repo, scratch)
		}
		start := time.Now()
		if res := ipfsSync(t, scratch, args...); res.Code != 0 {
			t.Fatalf("%s on a copy of the repository: %s", args[0], res)
		}
		if d := time.Since(start); fastest == 0 || d < fastest {
			fastest = d
		}
	}
	return fastest * 3 / 4
}

// checkRefComplete exports the ref's current root, which fails on any
// missing block.
func checkRefComplete(t *testing.T, repo string) {
	t.Helper()
	res := ipfsSync(t, repo, "--json", "log", "m")
	if res.Code != 0 {
		if strings.Contains(res.Stderr, "no ref") {
			return // killed before the first root
		}
		t.Fatalf("log: %s", res)
	}
	first, _, _ := strings.Cut(res.Stdout, "\n")
	var v struct {
		Root string `json:"root"`
	}
	if err := json.Unmarshal([]byte(first), &v); err != nil || v.Root == "" {
		t.Fatalf("cannot read the current root from %q", res.Stdout)
	}
	out := ipfsSync(t, repo, "export", v.Root, "--car", os.DevNull)
	if out.Code != 0 {
		t.Fatalf("ref names %s but its DAG is incomplete: %s", v.Root, out)
	}
}
