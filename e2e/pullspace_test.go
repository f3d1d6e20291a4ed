//go:build e2e && linux

package e2e

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPullFreeSpace pulls onto an 8 MiB filesystem: by default a root
// may hold what DEST's filesystem has free plus what pull's files there
// hold (an update replaces them), so updates that fit go through, and a
// root that would fill the disk is refused, naming --max-bytes, before a
// byte of it is written.
func TestPullFreeSpace(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "small")
	os.Mkdir(mnt, 0o755)
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, 0) })
	repo := filepath.Join(dir, "repo")
	src := filepath.Join(dir, "src")
	dest := filepath.Join(mnt, "dest")
	rng := rand.New(rand.NewPCG(1, 2))
	add := func(name string, size int) string {
		t.Helper()
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		res := ipfsSync(t, repo, "-q", "sync", src)
		if res.Code != 0 {
			t.Fatal(res)
		}
		return oneCID(t, res.Stdout)
	}
	used := func() uint64 {
		var s syscall.Statfs_t
		if err := syscall.Statfs(mnt, &s); err != nil {
			t.Fatal(err)
		}
		return (s.Blocks - s.Bfree) * uint64(s.Bsize)
	}

	pullJSON(t, repo, add("a.bin", 3<<20), dest)
	// 5 MiB in all: 3 held, 5 free.
	pullJSON(t, repo, add("b.bin", 2<<20), dest)
	assertIdentical(t, src, dest)
	before := used()
	// 11 MiB: more than 3 free and 5 held.
	root := add("c.bin", 6<<20)
	res := ipfsSync(t, repo, "pull", root, dest)
	if res.Code != 1 || !strings.Contains(res.Stderr, "--max-bytes") || !strings.Contains(res.Stderr, "free") {
		t.Fatalf("pull of a root larger than DEST's filesystem: %s\nwant exit 1 naming the limit", res)
	}
	if after := used(); after != before {
		t.Errorf("the refused pull wrote %d bytes", int64(after)-int64(before))
	}
}
