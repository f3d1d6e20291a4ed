// Package xfstest owns the file system the reflink tests run on: a fresh
// XFS image made with reflink=1, loop-mounted for one test, in the unit
// tests of blockstore and in the e2e tests alike.
package xfstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Mount makes an XFS image of size bytes with reflink=1, loop-mounts it
// for the test and returns where; it skips, saying why, where that cannot
// be done (not root, no loop devices, no mkfs.xfs, a mount refused).
func Mount(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot loop-mount an XFS image with reflink=1")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop devices here (/dev/loop-control): cannot mount an XFS image with reflink=1")
	}
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		t.Skip("mkfs.xfs not installed (apt-get install xfsprogs; make e2e-deps does as root)")
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "xfs.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-f", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount an XFS image here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}
