//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/xfstest"
)

// fsUsed is the bytes in use on the file system at dir, once its writes
// are on the disk.
func fsUsed(t *testing.T, dir string) int64 {
	t.Helper()
	if out, err := exec.Command("sync", "-f", dir).CombinedOutput(); err != nil {
		t.Fatalf("sync -f %s: %v: %s", dir, err, out)
	}
	var st unix.Statfs_t
	must(t, unix.Statfs(dir, &st))
	return int64(st.Blocks-st.Bfree) * int64(st.Bsize)
}

// packBytes is the apparent size of repo's packs, and how many of their
// bytes lie in extents xfs_io's fiemap flags shared (0x2000).
func packBytes(t *testing.T, repo string) (apparent, shared int64) {
	t.Helper()
	packs, err := filepath.Glob(filepath.Join(repo, "packs", "*.pack"))
	must(t, err)
	for _, p := range packs {
		fi, err := os.Stat(p)
		must(t, err)
		apparent += fi.Size()
		out, err := exec.Command("xfs_io", "-r", "-c", "fiemap -v", p).CombinedOutput()
		if err != nil {
			t.Fatalf("xfs_io fiemap %s: %v: %s", p, err, out)
		}
		// "   0: [0..2047]:  192..2239  2048 0x2000": 512-byte blocks, flags.
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) != 5 || !strings.HasSuffix(f[0], ":") || f[2] == "hole" {
				continue
			}
			blocks, err1 := strconv.ParseInt(f[3], 10, 64)
			flags, err2 := strconv.ParseInt(strings.TrimPrefix(f[4], "0x"), 16, 64)
			if err1 == nil && err2 == nil && flags&0x2000 != 0 {
				shared += blocks * 512
			}
		}
	}
	return apparent, shared
}

// treeBytes is the sum of the sizes of the regular files under dir.
func treeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	must(t, filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	}))
	return n
}

// TestReflink: sync --nocopy=reflink of the tiny mirror with repository
// and source on an XFS with reflinks gives a copying sync's root; its
// packs hold the whole data (their apparent size) in extents shared with
// the source, so the file system gained a fraction of it. Rewriting,
// truncating and deleting source files afterwards leaves the old root
// whole: fsck clean, pull gives the original tree, export imports into
// kubo. After most of the tree is deleted and synced again, gc --keep 1
// moves the live blocks by cloning them, and the file system does not
// grow by what it moved.
func TestReflink(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	if _, err := exec.LookPath("xfs_io"); err != nil {
		t.Skip("xfs_io not installed (apt-get install xfsprogs; make e2e-deps does as root)")
	}
	// The repository and the source go on it: a clone needs both files
	// on one file system.
	mnt := xfstest.Mount(t, 600<<20)
	pristine := tinyTree.get(t)
	src, repo := filepath.Join(mnt, "mirror"), filepath.Join(mnt, "repo")
	copyTree(t, pristine, src)
	data := treeBytes(t, src)

	used := fsUsed(t, mnt)
	res := ipfsSync(t, repo, "-q", "sync", "--nocopy=reflink", src)
	if res.Code != 0 || res.Stderr != "" {
		t.Fatalf("sync --nocopy=reflink: %s", res)
	}
	old := oneCID(t, res.Stdout)
	if want := syncRoot(t, pristine); old != want {
		t.Fatalf("sync --nocopy=reflink gave %s, a copying sync %s", old, want)
	}
	grew := fsUsed(t, mnt) - used
	apparent, shared := packBytes(t, repo)
	t.Logf("tree %d bytes; packs %d bytes apparent, %d in shared extents; the file system grew by %d bytes", data, apparent, shared, grew)
	if apparent < data*9/10 || shared < data*8/10 {
		t.Errorf("packs of %d bytes, %d shared, for a tree of %d bytes: not its data, cloned", apparent, shared, data)
	}
	if grew > data/5 {
		t.Errorf("the file system grew by %d bytes for a tree of %d: the data was not shared", grew, data)
	}

	// The source changes under the old root: a file rewritten in place
	// (same size, its mtime set back), one truncated, one deleted.
	files := bigFiles(t, src, 3, func(string) bool { return true })
	p := filepath.Join(src, files[0])
	fi, err := os.Stat(p)
	must(t, err)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt([]byte(strings.Repeat("rewritten", int(fi.Size())/9)), 0)
	must(t, err)
	f.Close()
	must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
	must(t, os.Truncate(filepath.Join(src, files[1]), 10))
	must(t, os.Remove(filepath.Join(src, files[2])))

	fsck := ipfsSync(t, repo, "--json", "fsck")
	if fsck.Code != 0 || !strings.Contains(fsck.Stdout, `"unavailable":0`) || !strings.Contains(fsck.Stdout, `"missing":0,"corrupt":0`) {
		t.Fatalf("fsck after the source changed: %s", fsck)
	}
	dest := filepath.Join(t.TempDir(), "old")
	pullJSON(t, repo, old, dest)
	assertIdentical(t, pristine, dest)
	checkExportImports(t, repo, old)

	// Most of the tree goes: its blocks die, and gc rewrites the packs.
	var names []string
	must(t, filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			names = append(names, p)
		}
		return err
	}))
	sort.Strings(names)
	for i, p := range names {
		if i%4 != 0 {
			must(t, os.Remove(p))
		}
	}
	res = ipfsSync(t, repo, "-q", "sync", "--nocopy=reflink", src)
	if res.Code != 0 {
		t.Fatalf("second sync: %s", res)
	}
	cur := oneCID(t, res.Stdout)
	gc := ipfsSync(t, repo, "--json", "gc", "--keep", "1")
	if gc.Code != 0 {
		t.Fatalf("gc: %s", gc)
	}
	var g struct {
		Removed int64 `json:"blocks_removed"`
		Cloned  int64 `json:"blocks_cloned"`
	}
	must(t, json.Unmarshal([]byte(gc.Stdout), &g))
	live := treeBytes(t, src)
	apparent, shared = packBytes(t, repo)
	t.Logf("gc: %s; packs %d bytes apparent, %d shared, for %d bytes of files left", strings.TrimSpace(gc.Stdout), apparent, shared, live)
	if g.Cloned == 0 || g.Removed == 0 {
		t.Errorf("gc removed %d blocks and cloned %d: %s", g.Removed, g.Cloned, gc.Stdout)
	}
	// What gc moved still shares the source's extents, not copied.
	if shared < live*8/10 {
		t.Errorf("after gc %d bytes of the packs are shared, for %d bytes of source files", shared, live)
	}
	fsck = ipfsSync(t, repo, "--json", "fsck")
	if fsck.Code != 0 || !strings.Contains(fsck.Stdout, `"unavailable":0`) || !strings.Contains(fsck.Stdout, `"missing":0,"corrupt":0`) {
		t.Fatalf("fsck after gc: %s", fsck)
	}
	dest = filepath.Join(t.TempDir(), "cur")
	pullJSON(t, repo, cur, dest)
	assertIdentical(t, src, dest)
}

// TestReflinkFallback: where the repository's file system has no
// reflinks (the test's temporary directory; skipped where it has them),
// sync --nocopy=reflink warns once and stores references, as --nocopy
// does: the root is a copying sync's, and a source file rewritten
// afterwards leaves the old root's blocks of it unavailable.
func TestReflinkFallback(t *testing.T) {
	dir := t.TempDir()
	src, repo := filepath.Join(dir, "mirror"), filepath.Join(dir, "repo")
	copyTree(t, tinyTree.get(t), src)
	probe := filepath.Join(dir, "probe")
	must(t, os.WriteFile(probe, make([]byte, 1<<16), 0o644))
	if err := exec.Command("cp", "--reflink=always", probe, probe+".clone").Run(); err == nil {
		t.Skipf("%s has reflinks: nothing falls back", dir)
	}
	must(t, os.Remove(probe))

	res := ipfsSync(t, repo, "-q", "sync", "--nocopy=reflink", src)
	if res.Code != 0 {
		t.Fatalf("sync --nocopy=reflink: %s", res)
	}
	if want := syncRoot(t, src); oneCID(t, res.Stdout) != want {
		t.Fatalf("sync --nocopy=reflink gave %s, a copying sync %s", res.Stdout, want)
	}
	if n := strings.Count(res.Stderr, "cannot be cloned into the repository"); n != 1 || !strings.Contains(res.Stderr, "stored as references") {
		t.Fatalf("want one warning naming the fallback to references, got:\n%s", res.Stderr)
	}
	p := filepath.Join(src, bigFiles(t, src, 1, func(string) bool { return true })[0])
	fi, err := os.Stat(p)
	must(t, err)
	must(t, os.WriteFile(p, make([]byte, fi.Size()), fi.Mode()))
	fsck := ipfsSync(t, repo, "--json", "fsck")
	var f struct{ Missing, Corrupt, Unavailable int64 }
	lines := strings.Split(strings.TrimSpace(fsck.Stdout), "\n") // the unavailable blocks, then the summary
	must(t, json.Unmarshal([]byte(lines[len(lines)-1]), &f))
	if fsck.Code != 0 || f.Unavailable == 0 || f.Missing+f.Corrupt != 0 {
		t.Fatalf("fsck after a referenced file was rewritten: %s", fsck)
	}
}
