//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs-sync/ipfs-sync/internal/mirrorgen"
)

// nocopyModes are the parity configurations with --nocopy: the DAG must
// be the one a copying sync (and kubo) builds.
func nocopyModes() []importMode {
	var ms []importMode
	for _, m := range []importMode{modeDefault, modeNone, modeV0} {
		ms = append(ms, m.with("nocopy", []string{"--nocopy"}, nil))
	}
	return ms
}

// TestNoCopyParity: sync --nocopy gives kubo's root on the parity trees.
func TestNoCopyParity(t *testing.T) {
	for _, tree := range []*sharedTree{tinyTree, edgeTree} {
		dir := tree.get(t)
		for _, m := range nocopyModes() {
			t.Run(tree.name+"/"+m.name, func(t *testing.T) { checkParity(t, dir, m) })
		}
	}
}

// TestNoCopyMutateCycles: a tiny mirror rsynced through publish cycles
// and synced with --nocopy each time: every root is kubo's, reads whole
// (fsck of the current root: nothing missing, corrupt or unavailable),
// and its CAR export imports into kubo, whose dag stat walks it offline.
func TestNoCopyMutateCycles(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	for _, m := range nocopyModes() {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "mirror")
			copyTree(t, tinyTree.get(t), src)
			repo := filepath.Join(dir, "repo")
			ipfsPath := kubo(t, m.kuboProfile, m.kuboConfig...)
			for cycle := 0; cycle <= 4; cycle++ {
				if cycle > 0 {
					next := filepath.Join(dir, fmt.Sprintf("m%d", cycle))
					copyTree(t, src, next)
					if _, err := mirrorgen.Mutate(next, mirrorgen.MutateOptions{Seed: uint64(cycle), Scale: 1}); err != nil {
						t.Fatal(err)
					}
					rsyncTree(t, next, src)
				}
				res := ipfsSync(t, repo, append(append([]string{"-q", "sync"}, m.sync...), src)...)
				if res.Code != 0 {
					t.Fatalf("cycle %d: %s", cycle, res)
				}
				got := oneCID(t, res.Stdout)
				if want := kuboAdd(t, ipfsPath, src, m.kubo...); got != want {
					t.Fatalf("cycle %d: ipfs-sync --nocopy %s, kubo %s", cycle, got, want)
				}
				fsck := ipfsSync(t, repo, "--json", "fsck", "--keep", "1")
				if fsck.Code != 0 || !strings.Contains(fsck.Stdout, `"unavailable":0`) || !strings.Contains(fsck.Stdout, `"missing":0,"corrupt":0`) {
					t.Fatalf("cycle %d: fsck of the current root: %s", cycle, fsck)
				}
				checkExportImports(t, repo, got)
			}
		})
	}
}

// checkExportImports exports root as a CAR and imports it into a fresh
// kubo, whose dag stat must walk the whole DAG offline.
func checkExportImports(t *testing.T, repo, root string) {
	t.Helper()
	car := filepath.Join(t.TempDir(), "root.car")
	if res := ipfsSync(t, repo, "export", root, "--car", car); res.Code != 0 {
		t.Fatalf("export %s: %s", root, res)
	}
	ipfsPath := kubo(t, "unixfs-v1-2025")
	if out := kuboRun(t, ipfsPath, "dag", "import", "--offline", car); !strings.Contains(out, "Pinned root\t"+root+"\tsuccess") {
		t.Fatalf("ipfs dag import of %s:\n%s", root, out)
	}
	kuboRun(t, ipfsPath, "dag", "stat", "--offline", "--progress=false", root)
}

// TestNoCopyFaults changes referenced files between two syncs in each
// way a mirror's files change (rewritten in place with the mtime set
// back, truncated, replaced as rsync does, chmod 000, deleted), and a
// --copy file in place. The old root's blocks of those files are then
// unavailable, never wrong: serve answers them as absent, export fails
// naming the file, fsck lists them (and nothing else: the --copy file's
// old blocks still read) apart from damage and exits 0. The next sync's
// root is kubo's and reads whole.
func TestNoCopyFaults(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	copyTree(t, tinyTree.get(t), src)
	repo := filepath.Join(dir, "repo")
	res := ipfsSync(t, repo, "-q", "sync", "--nocopy", "--copy", "dists/**", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	old := oneCID(t, res.Stdout)
	before := ipfsSync(t, repo, "--json", "fsck")
	if before.Code != 0 || !strings.Contains(before.Stdout, `"unavailable":0`) {
		t.Fatalf("fsck before the changes: %s", before)
	}

	files := bigFiles(t, src, 5, func(rel string) bool { return !strings.HasPrefix(rel, "dists/") })
	faults := map[string]func(p string){
		"rewritten": func(p string) {
			fi, _ := os.Stat(p)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			must(t, os.WriteFile(p, b, fi.Mode()))
			must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
		},
		"truncated": func(p string) { must(t, os.Truncate(p, 100)) },
		"replaced": func(p string) {
			fi, _ := os.Stat(p)
			b, _ := os.ReadFile(p)
			must(t, os.WriteFile(p+".tmp", b, fi.Mode()))
			must(t, os.Chtimes(p+".tmp", fi.ModTime(), fi.ModTime()))
			must(t, os.Rename(p+".tmp", p))
		},
		"chmod 000": func(p string) { must(t, os.Chmod(p, 0)) },
		"deleted":   func(p string) { must(t, os.Remove(p)) },
	}
	changed := map[string]string{} // rel path → fault
	i := 0
	for name, fault := range faults {
		changed[files[i]] = name
		fault(filepath.Join(src, files[i]))
		i++
	}
	copied := bigFiles(t, src, 1, func(rel string) bool { return strings.HasPrefix(rel, "dists/") })[0]
	// Rewritten in place as an index file is on a publish (a size of its
	// own: the quick check, copy or not, cannot see a rewrite that keeps
	// size and mtime).
	must(t, os.WriteFile(filepath.Join(src, copied), []byte("Origin: rewritten\n"), 0o644))

	// fsck: the changed files' blocks unavailable, nothing else.
	after := ipfsSync(t, repo, "fsck")
	if after.Code != 0 || !strings.Contains(after.Stderr, " 0 missing, 0 corrupt") {
		t.Fatalf("fsck after the changes (want exit 0, no damage): %s", after)
	}
	if _, err := os.Stat(filepath.Join(repo, "damaged")); err == nil {
		t.Error("fsck marked the repository damaged for unavailable blocks")
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(after.Stdout), "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 || !strings.Contains(f[2], "unavailable") {
			t.Fatalf("fsck line %q is not an unavailable block", line)
		}
		rel := strings.TrimPrefix(f[1], old+"/")
		if _, ok := changed[rel]; !ok {
			t.Errorf("%s unavailable, but only %v changed (and %s, copied)", rel, changed, copied)
		}
		seen[rel] = true
	}
	for rel, fault := range changed {
		if !seen[rel] {
			t.Errorf("%s (%s): none of its blocks is unavailable", rel, fault)
		}
	}

	// export fails naming the file; serve answers absent, never other bytes.
	exp := ipfsSync(t, repo, "export", old, "--car", filepath.Join(dir, "old.car"))
	if exp.Code == 0 || !strings.Contains(exp.Stderr, src+"/") || !strings.Contains(exp.Stderr, "unavailable") {
		t.Errorf("export of the old root: want a failure naming a changed file: %s", exp)
	}
	base := startServe(t, repo)
	for _, line := range strings.Split(strings.TrimSpace(after.Stdout), "\n") {
		c := strings.SplitN(line, "\t", 2)[0]
		resp, _, _ := get(t, base+"/ipfs/"+c+"?format=raw")
		if resp.StatusCode == http.StatusOK {
			t.Errorf("serve gave %s, an unavailable block, with status 200", c)
		}
	}
	// The next sync references the new bytes: its root is kubo's and whole.
	res = ipfsSync(t, repo, "-q", "sync", "--nocopy", "--copy", "dists/**", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	root := oneCID(t, res.Stdout)
	if want := kuboAdd(t, kubo(t, modeDefault.kuboProfile), src, modeDefault.kubo...); root != want {
		t.Fatalf("sync after the changes: %s, kubo %s", root, want)
	}
	fsck := ipfsSync(t, repo, "--json", "fsck", "--keep", "1")
	if fsck.Code != 0 || !strings.Contains(fsck.Stdout, `"unavailable":0`) {
		t.Fatalf("fsck of the new root: %s", fsck)
	}
	checkExportImports(t, repo, root)
}

// bigFiles is the first n regular files under src (by path) that filter
// accepts and that are big enough to be stored as references.
func bigFiles(t *testing.T, src string, n int, filter func(rel string) bool) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || len(out) == n {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi, err := d.Info(); err == nil && fi.Size() >= 4096 && filter(rel) {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil || len(out) < n {
		t.Fatalf("want %d files under %s, found %v (%v)", n, src, out, err)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
