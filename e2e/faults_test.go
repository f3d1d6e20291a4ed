//go:build e2e && linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDiskFull syncs onto a filesystem too small for the tree: the run
// fails with a clear error naming the store, no ref moves, and once there
// is room the next run succeeds with the right root.
func TestDiskFull(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "small")
	os.Mkdir(mnt, 0o755)
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=20m"); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, 0) })
	repo := filepath.Join(mnt, "repo")
	src := tinyTree.get(t)

	res := ipfsSync(t, repo, "-q", "sync", "--name", "m", src)
	if res.Code != 1 || !strings.Contains(res.Stderr, repo) || !strings.Contains(res.Stderr, "no space left") {
		t.Fatalf("want exit 1 naming %s and ENOSPC:\n%s", repo, res)
	}
	if ents, _ := os.ReadDir(filepath.Join(repo, "refs")); len(ents) != 0 {
		t.Fatalf("a ref was written: %v", ents)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size=200m"); err != nil {
		t.Fatal(err)
	}
	res = ipfsSync(t, repo, "-q", "sync", "--name", "m", src)
	if res.Code != 0 {
		t.Fatalf("after freeing space: %s", res)
	}
	if got, want := oneCID(t, res.Stdout), syncRoot(t, src); got != want {
		t.Fatalf("root after disk full %s, fresh import %s", got, want)
	}
	if res := ipfsSync(t, repo, "fsck"); res.Code != 0 {
		t.Fatalf("fsck: %s", res)
	}
}

// TestSoak runs 100 publish cycles of mutate + sync + gc --keep 3 on one
// repository: every root is right (every tenth checked against a fresh
// import), fsck passes, and the store stays within 1.5 times the unique
// blocks of the three kept versions.
func TestSoak(t *testing.T) {
	cycles := 100
	if testing.Short() {
		cycles = 10
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	copyTree(t, tinyTree.get(t), src)
	repo := filepath.Join(dir, "repo")
	for cycle := 1; cycle <= cycles; cycle++ {
		publishCycle(t, src, uint64(cycle))
		res := ipfsSync(t, repo, "-q", "sync", "--name", "soak", src)
		if res.Code != 0 {
			t.Fatalf("cycle %d: %s", cycle, res)
		}
		root := oneCID(t, res.Stdout)
		if cycle%10 == 0 {
			if want := syncRoot(t, src, "--full"); root != want {
				t.Fatalf("cycle %d: incremental %s, fresh import %s", cycle, root, want)
			}
		}
		if res := ipfsSync(t, repo, "gc", "--keep", "3"); res.Code != 0 {
			t.Fatalf("cycle %d gc: %s", cycle, res)
		}
	}
	res := ipfsSync(t, repo, "--json", "fsck")
	var fs struct{ Bytes int64 }
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &fs) != nil {
		t.Fatalf("fsck: %s", res)
	}
	out, err := exec.Command("du", "-sb", filepath.Join(repo, "packs")).Output()
	if err != nil {
		t.Fatal(err)
	}
	var du int64
	fmt.Sscan(string(out), &du)
	if float64(du) > 1.5*float64(fs.Bytes) {
		t.Fatalf("store holds %d bytes for %d bytes of kept blocks", du, fs.Bytes)
	}
	t.Logf("%d cycles: kept blocks %d bytes, store %d bytes", cycles, fs.Bytes, du)
}

// TestCorruptBlock overwrites bytes in the middle of the largest pack (file
// data there, as blocks of file data dwarf the rest): fsck names the
// block's CID and fails, serve refuses to send it, and after fsck --repair
// the next sync reads the affected file again and the store is whole.
func TestCorruptBlock(t *testing.T) {
	_, src, repo, root := syncedTiny(t, "--name", "m")
	packs, err := filepath.Glob(filepath.Join(repo, "packs", "*.pack"))
	if err != nil || len(packs) == 0 {
		t.Fatalf("no pack found: %v", err)
	}
	var victim string
	var size int64
	for _, p := range packs {
		if st, err := os.Stat(p); err == nil && st.Size() > size {
			victim, size = p, st.Size()
		}
	}
	f, err := os.OpenFile(victim, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("CORRUPT"), size/2)
	f.Close()

	res := ipfsSync(t, repo, "fsck")
	if res.Code != 1 || !strings.Contains(res.Stdout, "does not match") {
		t.Fatalf("fsck missed the corrupt block: %s", res)
	}
	bad := strings.Fields(res.Stdout)[0]

	base := startServe(t, repo)
	resp, _, _ := get(t, base+"/ipfs/"+bad+"?format=raw")
	if resp.StatusCode == 200 {
		t.Fatal("serve sent a corrupt block")
	}

	if res := ipfsSync(t, repo, "fsck", "--repair"); res.Code != 1 {
		t.Fatalf("fsck --repair: %s", res)
	}
	res = ipfsSync(t, repo, "-q", "sync", "--name", "m", src)
	if res.Code != 0 || oneCID(t, res.Stdout) != root {
		t.Fatalf("sync after repair: %s", res)
	}
	if res := ipfsSync(t, repo, "fsck"); res.Code != 0 {
		t.Fatalf("store not whole after repair and sync: %s", res)
	}
}
