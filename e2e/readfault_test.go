//go:build e2e && linux

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The read-fault tests make parts of a real source tree unreadable, with
// real errors from the kernel (no mocks), and check what docs/reliability.md
// promises: an unreadable file fails the run (exit 1, the path named) and no
// ref moves; an unreadable directory the previous root had keeps its
// previous version, a new one is left out (a warning each, exit 3); no wrong
// CID is recorded for any path; and once the fault is gone the next run
// gives the root a fresh import gives.

// faultTree is the small source these tests change step by step. Every
// version is built by the same code with the same mtimes (tree), so the
// same version built elsewhere is the tree as it would read without the
// fault, and its fresh import is the root a run must record.
type faultTree struct {
	dataSize int64 // data.bin's size: 1000, then 3000 (the quick check sees it, so it is read)
	olddir   bool  // olddir/ (x.txt), in the previous root
	oldAdded bool  // olddir/added.txt, added since the previous root
	newdir   bool  // newdir/ (y.txt), new since the previous root
}

func (ft faultTree) build(t testing.TB, dir string) {
	t.Helper()
	b := newBuilder(dir)
	b.text("same.txt", "unchanged\n")
	b.text("sub/deep/z.txt", "deep\n")
	b.file("data.bin", ft.dataSize, 0o644)
	if ft.olddir {
		b.text("olddir/x.txt", "x\n")
	}
	if ft.oldAdded {
		b.text("olddir/added.txt", "added\n")
	}
	if ft.newdir {
		b.text("newdir/y.txt", "y\n")
	}
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
}

// root is the root of a fresh import of this version, built elsewhere
// (sync flags as given).
func (ft faultTree) root(t testing.TB, syncFlags ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "expected")
	ft.build(t, dir)
	return syncRoot(t, dir, syncFlags...)
}

// faultSummary is the part of `--json sync`'s summary these tests read.
type faultSummary struct {
	Root     string
	Previous *string
	Skipped  []struct{ Path, Reason string }
}

func parseFaultSummary(t testing.TB, res result) faultSummary {
	t.Helper()
	var s faultSummary
	if err := json.Unmarshal([]byte(res.Stdout), &s); err != nil {
		t.Fatalf("--json sync output: %v\n%s", err, res)
	}
	return s
}

// checkSkipped checks that the summary and the warnings on stderr report
// exactly the paths in want (path → words its reason must contain).
func checkSkipped(t testing.TB, res result, s faultSummary, want map[string][]string) {
	t.Helper()
	if len(s.Skipped) != len(want) {
		t.Errorf("skipped %+v, want %d entries (%v)", s.Skipped, len(want), want)
	}
	for _, sk := range s.Skipped {
		words, ok := want[sk.Path]
		if !ok {
			t.Errorf("skipped %q (%s), not expected", sk.Path, sk.Reason)
			continue
		}
		for _, w := range words {
			if !strings.Contains(sk.Reason, w) {
				t.Errorf("skipped %s: reason %q lacks %q", sk.Path, sk.Reason, w)
			}
		}
	}
	for p, words := range want {
		if !slices.ContainsFunc(strings.Split(res.Stderr, "\n"), func(l string) bool {
			return strings.HasPrefix(l, "ipfs-sync: warning: ") && strings.Contains(l, p) && strings.Contains(l, words[0])
		}) {
			t.Errorf("no warning naming %s (%s) on stderr:\n%s", p, words[0], res.Stderr)
		}
	}
}

// checkFailed checks that a sync failed (exit 1) with an error, not a
// warning, naming path and saying errText, and printed no root.
func checkFailed(t testing.TB, res result, path, errText string) {
	t.Helper()
	named := slices.ContainsFunc(strings.Split(res.Stderr, "\n"), func(l string) bool {
		return strings.HasPrefix(l, "ipfs-sync: ") && !strings.HasPrefix(l, "ipfs-sync: warning: ") &&
			strings.Contains(l, path) && strings.Contains(l, errText)
	})
	if res.Code != 1 || !named {
		t.Fatalf("want exit 1 with an error naming %s (%s), got %s", path, errText, res)
	}
	if res.Stdout != "" {
		t.Errorf("a failed run printed %q", res.Stdout)
	}
}

// refNow is the current root of the ref name and how many versions the ref
// has had, from `ipfs-sync --json refs` run through sync.
func refNow(t testing.TB, sync func(args ...string) result, name string) (string, int) {
	t.Helper()
	res := sync("--json", "refs")
	if res.Code != 0 {
		t.Fatalf("refs: %s", res)
	}
	dec := json.NewDecoder(strings.NewReader(res.Stdout))
	for {
		var r struct {
			Name, Root string
			Versions   int
		}
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("refs --json: %v\n%s", err, res.Stdout)
		}
		if r.Name == name {
			return r.Root, r.Versions
		}
	}
	t.Fatalf("no ref %q in:\n%s", name, res.Stdout)
	return "", 0
}

func checkRef(t testing.TB, sync func(args ...string) result, name, root string, versions int) {
	t.Helper()
	if got, n := refNow(t, sync, name); got != root || n != versions {
		t.Fatalf("ref %s is at %s after %d versions, want %s after %d", name, got, n, root, versions)
	}
}

// faultImage is an ext4 filesystem in a file, on a loop device, whose chosen
// blocks can be made to fail reads with real I/O errors.
//
// A device-mapper error target would be the usual tool, but it needs a
// kernel with device-mapper, which the one these tests were written on
// lacks (CONFIG_MD off: dmsetup finds no driver); a loop device needs only
// loop. A loop device ends where its backing file ends: once the file is cut
// short after the device is set up, reads of the missing sectors fail in the
// block layer ("I/O error, dev loopN, sector ...") and ext4 returns EIO to
// read(2) and getdents(2), as from a failing disk. The blocks to fail are
// first moved to the last blocks of the filesystem (debugfs: copy the block,
// remap the inode's block 0, update the bitmaps; e2fsck checks the result),
// where the cut takes them and nothing else.
type faultImage struct {
	t       *testing.T
	img     string
	dev     string // /dev/loopN
	mnt     string
	blocks  int64  // filesystem blocks of 4 KiB
	cutAt   int64  // first missing block, or 0
	tail    []byte // what the cut removed
	mounted bool
}

const faultBlock = 4096

// newFaultImage makes a 64 MiB ext4 image on a loop device and mounts it
// read-write; it skips the test where that is not permitted. Cleanup
// unmounts and detaches it, even after a failure.
func newFaultImage(t *testing.T) *faultImage {
	if os.Geteuid() != 0 {
		t.Skip("needs root: losetup and mount")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "debugfs", "e2fsck"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: %v", tool, err)
		}
	}
	dir := t.TempDir()
	im := &faultImage{t: t, img: filepath.Join(dir, "fs.img"), mnt: filepath.Join(dir, "mnt"), blocks: 16384}
	if err := os.Mkdir(im.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(im.img)
	if err == nil {
		err = f.Truncate(im.blocks * faultBlock)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	// No journal: each metadata block has one copy on disk. Inode tables
	// are written now, not by ext4lazyinit after a mount.
	im.tool("mkfs.ext4", "-q", "-F", "-b", strconv.Itoa(faultBlock), "-O", "^has_journal",
		"-E", "lazy_itable_init=0,lazy_journal_init=0", im.img)
	// Direct I/O: the loop device reads the image itself, not a page
	// cache of it.
	out, err := exec.Command("losetup", "--find", "--show", "--direct-io=on", im.img).CombinedOutput()
	if err != nil {
		t.Skipf("cannot set up a loop device here: losetup: %v: %s", err, out)
	}
	im.dev = strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", im.dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", im.dev, err, out)
		}
	})
	t.Cleanup(func() {
		if im.mounted {
			if err := unix.Unmount(im.mnt, 0); err != nil {
				t.Errorf("umount %s: %v; detaching it", im.mnt, err)
				unix.Unmount(im.mnt, unix.MNT_DETACH)
			}
		}
	})
	if err := im.tryMount(0); err != nil {
		t.Skipf("cannot mount ext4 from %s here: %v", im.dev, err)
	}
	return im
}

func (im *faultImage) tool(name string, args ...string) string {
	im.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		im.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (im *faultImage) tryMount(flags uintptr) error {
	// Nothing cached from an earlier mount may answer for the device.
	f, err := os.Open(im.dev)
	if err != nil {
		return err
	}
	err = unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0)
	f.Close()
	if err != nil {
		return fmt.Errorf("BLKFLSBUF: %w", err)
	}
	if err := unix.Mount(im.dev, im.mnt, "ext4", flags, "errors=continue"); err != nil {
		return err
	}
	im.mounted = true
	return nil
}

// mountRO mounts the filesystem read-only.
func (im *faultImage) mountRO() {
	im.t.Helper()
	if err := im.tryMount(unix.MS_RDONLY); err != nil {
		im.t.Fatalf("mount %s: %v", im.dev, err)
	}
}

func (im *faultImage) unmount() {
	im.t.Helper()
	if err := unix.Unmount(im.mnt, 0); err != nil {
		im.t.Fatalf("umount %s: %v", im.mnt, err)
	}
	im.mounted = false
}

// debugfs runs commands on the unmounted image (writable with write) and
// returns stdout; anything on stderr but its banner fails the test.
func (im *faultImage) debugfs(write bool, cmds ...string) string {
	im.t.Helper()
	args := []string{"-f", "-", im.img}
	if write {
		args = append([]string{"-w"}, args...)
	}
	cmd := exec.Command("debugfs", args...)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, "debugfs ") {
			err = errors.Join(err, errors.New(l))
		}
	}
	if err != nil {
		im.t.Fatalf("debugfs %q: %v\n%s", cmds, err, out)
	}
	return string(out)
}

// blockOf is the one filesystem block holding rel (a path from the
// filesystem's top): a small file's data or a small directory's entries.
func (im *faultImage) blockOf(rel string) int64 {
	im.t.Helper()
	out := im.debugfs(false, "blocks /"+rel)
	var nums []int64
	for _, f := range strings.Fields(out) {
		if n, err := strconv.ParseInt(f, 10, 64); err == nil {
			nums = append(nums, n)
		}
	}
	if len(nums) != 1 {
		im.t.Fatalf("/%s: want one block, debugfs says %q", rel, out)
	}
	return nums[0]
}

// move moves rel's one block to block to and returns where it was.
func (im *faultImage) move(rel string, to int64) int64 {
	im.t.Helper()
	from := im.blockOf(rel)
	if out := im.debugfs(false, fmt.Sprintf("testb %d", to)); !strings.Contains(out, "not in use") {
		im.t.Fatalf("block %d is not free: %s", to, out)
	}
	f, err := os.OpenFile(im.img, os.O_RDWR, 0)
	if err != nil {
		im.t.Fatal(err)
	}
	buf := make([]byte, faultBlock)
	_, err = f.ReadAt(buf, from*faultBlock)
	if err == nil {
		_, err = f.WriteAt(buf, to*faultBlock)
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		im.t.Fatal(err)
	}
	im.debugfs(true, fmt.Sprintf("sif /%s bmap[0] %d", rel, to), fmt.Sprintf("setb %d", to), fmt.Sprintf("freeb %d", from))
	if got := im.blockOf(rel); got != to {
		im.t.Fatalf("/%s is in block %d after the move, want %d", rel, got, to)
	}
	return from
}

// fsck checks the unmounted filesystem (e2fsck -fn): the moves left it
// consistent, so every error a run sees comes from the device.
func (im *faultImage) fsck() {
	im.t.Helper()
	im.tool("e2fsck", "-fn", im.img)
}

// cut makes every block from `from` on unreadable: the image file is
// truncated under the loop device, which keeps its size.
func (im *faultImage) cut(from int64) {
	im.t.Helper()
	f, err := os.OpenFile(im.img, os.O_RDWR, 0)
	if err != nil {
		im.t.Fatal(err)
	}
	defer f.Close()
	im.tail = make([]byte, (im.blocks-from)*faultBlock)
	if _, err := f.ReadAt(im.tail, from*faultBlock); err != nil {
		im.t.Fatal(err)
	}
	if err := f.Truncate(from * faultBlock); err != nil {
		im.t.Fatal(err)
	}
	im.cutAt = from
}

// restore puts back what cut removed.
func (im *faultImage) restore() {
	im.t.Helper()
	f, err := os.OpenFile(im.img, os.O_RDWR, 0)
	if err != nil {
		im.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(im.tail, im.cutAt*faultBlock); err != nil {
		im.t.Fatal(err)
	}
	im.tail, im.cutAt = nil, 0
}

// checkEIO checks that reading p (a file, or a directory's entries) now
// fails with EIO. Without it nothing below tests a read error; a failed read
// caches nothing.
func checkEIO(t *testing.T, p string, dir bool) {
	t.Helper()
	var err error
	if dir {
		_, err = os.ReadDir(p)
	} else {
		_, err = os.ReadFile(p)
	}
	if !errors.Is(err, syscall.EIO) {
		t.Skipf("cannot inject EIO here: reading %s past the loop device's backing file gave %v", p, err)
	}
}

// TestReadFaultEIO: real I/O errors (EIO from ext4 on a loop device whose
// sectors fail) while syncing. A file whose data cannot be read fails the
// run with exit 1 naming it, and the ref stays where it was. A directory
// whose entries cannot be read keeps its previous version if the previous
// root has it, and is left out if it is new (a warning each, exit 3); the
// root recorded is exactly the fresh import of the tree with that directory
// as the previous root had it (or without it). Once the device reads again,
// the next run's root is a fresh import's.
func TestReadFaultEIO(t *testing.T) {
	t.Parallel()
	im := newFaultImage(t)
	src := filepath.Join(im.mnt, "src")
	repo := filepath.Join(t.TempDir(), "repo")
	sync := func(args ...string) result { return ipfsSync(t, repo, args...) }

	v1 := faultTree{dataSize: 1000, olddir: true}
	v2 := faultTree{dataSize: 3000, olddir: true, oldAdded: true, newdir: true}
	v1.build(t, src)
	root1 := firstSync(t, sync, src, v1)
	// Since root1: data.bin rewritten (another size, so it must be read),
	// olddir/added.txt and newdir/ added.
	v2.build(t, src)
	im.unmount()

	// 1. data.bin's block fails.
	dataBlock := im.move("src/data.bin", im.blocks-1)
	im.fsck()
	im.cut(im.blocks - 1)
	im.mountRO()
	checkEIO(t, filepath.Join(src, "data.bin"), false)
	res := sync("--json", "sync", "--name", "m", src)
	checkFailed(t, res, filepath.Join(src, "data.bin"), "input/output error")
	checkRef(t, sync, "m", root1, 1)
	t.Logf("EIO on a file: %s", strings.TrimSpace(res.Stderr))
	im.unmount()
	im.restore()

	// 2. The blocks of olddir/ (in root1) and newdir/ (new) fail.
	im.move("src/data.bin", dataBlock)
	im.move("src/olddir", im.blocks-3)
	im.move("src/newdir", im.blocks-2)
	im.fsck()
	im.cut(im.blocks - 3)
	im.mountRO()
	checkEIO(t, filepath.Join(src, "olddir"), true)
	checkEIO(t, filepath.Join(src, "newdir"), true)
	res = sync("--json", "sync", "--name", "m", src)
	sum := checkDirFault(t, res, root1, filepath.Join(src, "olddir"), filepath.Join(src, "newdir"), "input/output error")
	// data.bin as it is now, olddir/ as in root1, no newdir/.
	if want := (faultTree{dataSize: 3000, olddir: true}).root(t); sum.Root != want {
		t.Fatalf("root %s, want %s (the tree with olddir/ as root1 had it and no newdir/)", sum.Root, want)
	}
	checkRef(t, sync, "m", sum.Root, 2)
	t.Logf("EIO on directories: %s", strings.TrimSpace(res.Stderr))
	im.unmount()
	im.restore()

	// 3. Every block reads again.
	im.fsck()
	im.mountRO()
	res = sync("-q", "sync", "--name", "m", src)
	if res.Code != 0 {
		t.Fatalf("after the fault: %s", res)
	}
	root3 := oneCID(t, res.Stdout)
	if fresh, want := syncRoot(t, src), v2.root(t); root3 != fresh || root3 != want {
		t.Fatalf("after the fault %s; fresh import of it %s, of the same tree elsewhere %s", root3, fresh, want)
	}
	checkRef(t, sync, "m", root3, 3)
}

// unprivileged returns a runner of the ipfs-sync binary (copied into dir)
// as a user without root's permission to read everything: as root, user and
// group 65534 through setpriv; otherwise this user.
func unprivileged(t *testing.T, dir string) func(args ...string) result {
	t.Helper()
	bin := filepath.Join(dir, "ipfs-sync")
	b, err := os.ReadFile(syncBin)
	if err == nil {
		err = os.WriteFile(bin, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return func(args ...string) result { return run(t, nil, bin, args...) }
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skipf("setpriv not found (%v): cannot run without root's permission to read everything", err)
	}
	ids := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
	if out, err := exec.Command(setpriv, append(ids, "true")...).CombinedOutput(); err != nil {
		t.Skipf("setpriv cannot switch to user 65534 here: %v: %s", err, out)
	}
	return func(args ...string) result {
		return run(t, []string{"HOME=" + dir}, setpriv, append(append(slices.Clone(ids), bin), args...)...)
	}
}

// chownTree gives dir and everything under it to user and group 65534
// (as root; otherwise it is this user's already).
func chownTree(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 65534, 65534)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, mode os.FileMode, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadFaultPermission: real EACCES (chmod 000, ipfs-sync run without
// root's permission to read everything). The outcomes are TestReadFaultEIO's:
// an unreadable file that must be read fails the run and moves nothing; an
// unreadable directory keeps its previous version, or is left out if new
// (exit 3), with --full too. Under other CID settings the previous version
// cannot stand in, so an unreadable directory is left out even though the
// previous root has it. A file made unreadable without another change
// passes the quick check and is not opened: its new mode is recorded over
// the stored data (exit 0).
func TestReadFaultPermission(t *testing.T) {
	t.Parallel()
	base, err := os.MkdirTemp("", "ipfs-sync-eacces-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAll(base) })
	nobody := unprivileged(t, base)
	src, repo := filepath.Join(base, "src"), filepath.Join(base, "repo")
	sync := func(args ...string) result { return nobody(append([]string{"--repo", repo}, args...)...) }

	v1 := faultTree{dataSize: 1000, olddir: true}
	v1.build(t, src)
	chownTree(t, base)
	root1 := firstSync(t, sync, src, v1)

	// 1. data.bin rewritten (another size: it must be read) and unreadable.
	faultTree{dataSize: 3000, olddir: true}.build(t, src)
	chownTree(t, base)
	chmod(t, 0, filepath.Join(src, "data.bin"))
	res := sync("--json", "sync", "--name", "m", src)
	checkFailed(t, res, filepath.Join(src, "data.bin"), "permission denied")
	checkRef(t, sync, "m", root1, 1)
	t.Logf("EACCES on a file: %s", strings.TrimSpace(res.Stderr))

	// 2. olddir/ (in root1, changed since) and newdir/ (new) unreadable;
	// data.bin readable again (without root, writable again too).
	chmod(t, 0o644, filepath.Join(src, "data.bin"))
	v2 := faultTree{dataSize: 3000, olddir: true, oldAdded: true, newdir: true}
	v2.build(t, src)
	chownTree(t, base)
	olddir, newdir := filepath.Join(src, "olddir"), filepath.Join(src, "newdir")
	chmod(t, 0, olddir, newdir)
	res = sync("--json", "sync", "--name", "m", src)
	sum := checkDirFault(t, res, root1, olddir, newdir, "permission denied")
	if want := (faultTree{dataSize: 3000, olddir: true}).root(t); sum.Root != want {
		t.Fatalf("root %s, want %s (the tree with olddir/ as root1 had it and no newdir/)", sum.Root, want)
	}
	checkRef(t, sync, "m", sum.Root, 2)
	t.Logf("EACCES on directories: %s", strings.TrimSpace(res.Stderr))

	// The same run with --full, and with other CID settings, each on a
	// copy of the repository. --full reuses nothing, but the previous root
	// was made with the same settings, so olddir/ keeps its version there
	// too; under other settings the previous version would mix two kinds
	// of CIDs, so olddir/ is left out like newdir/.
	for i, tc := range []struct {
		flags   []string
		keepOld bool
	}{{[]string{"--full"}, true}, {[]string{"--metadata", "none"}, false}} {
		other := filepath.Join(base, fmt.Sprintf("repo-%d", i))
		copyTree(t, repo, other)
		args := append([]string{"--repo", other, "--json", "sync", "--name", "m"}, tc.flags...)
		res = nobody(append(args, src)...)
		if res.Code != 3 {
			t.Fatalf("%s: want exit 3, got %s", tc.flags, res)
		}
		osum := parseFaultSummary(t, res)
		oldWant := []string{"skipped", "permission denied"}
		want := (faultTree{dataSize: 3000}).root(t, tc.flags...)
		if tc.keepOld {
			oldWant = []string{"keeping the previous version", "permission denied"}
			want = (faultTree{dataSize: 3000, olddir: true}).root(t, tc.flags...)
		}
		checkSkipped(t, res, osum, map[string][]string{
			olddir: oldWant,
			newdir: {"skipped", "permission denied"},
		})
		if osum.Root != want {
			t.Fatalf("%s: root %s, want %s", tc.flags, osum.Root, want)
		}
	}

	// 3. Readable again: a fresh import's root.
	chmod(t, 0o755, olddir, newdir)
	res = sync("-q", "sync", "--name", "m", src)
	if res.Code != 0 {
		t.Fatalf("after the fault: %s", res)
	}
	root3 := oneCID(t, res.Stdout)
	fresh := nobody("--repo", filepath.Join(base, "fresh"), "-q", "sync", src)
	if fresh.Code != 0 {
		t.Fatalf("fresh import: %s", fresh)
	}
	if want := v2.root(t); root3 != oneCID(t, fresh.Stdout) || root3 != want {
		t.Fatalf("after the fault %s; fresh import of it %s, of the same tree elsewhere %s", root3, fresh.Stdout, want)
	}
	checkRef(t, sync, "m", root3, 3)

	// 4. same.txt made unreadable, nothing else changed: only its mode
	// differs, so it is not opened and gets a new root node over the stored
	// data; that is the CID root's fresh import (which can read it) gives.
	// A fresh import without root's permission cannot read it: exit 1.
	t.Run("unchanged file made unreadable", func(t *testing.T) {
		if !asRoot {
			t.Skip("needs root: the fresh import that can still read same.txt")
		}
		same := filepath.Join(src, "same.txt")
		chmod(t, 0, same)
		res := sync("-q", "sync", "--name", "m", src)
		if res.Code != 0 {
			t.Fatalf("unchanged file made unreadable: %s", res)
		}
		if got, want := oneCID(t, res.Stdout), syncRoot(t, src); got != want {
			t.Fatalf("unchanged file made unreadable: root %s, root's fresh import %s", got, want)
		}
		res = nobody("--repo", filepath.Join(base, "fresh2"), "-q", "sync", src)
		checkFailed(t, res, same, "permission denied")
	})
}

// TestReadFaultRenamedDir: a directory renamed away between two syncs while
// a new one takes its name and another is created, every mtime (the
// parent's too) as before: the incremental root is a fresh import's, with
// no stale entry, and diff lists the moves.
func TestReadFaultRenamedDir(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "src")
	b := newBuilder(src)
	b.text("keep.txt", "keep\n")
	b.text("a/x.txt", "x\n")
	b.text("a/sub/y.txt", "y\n")
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(t.TempDir(), "repo")
	res := ipfsSync(t, repo, "-q", "sync", "--name", "m", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	root1 := oneCID(t, res.Stdout)

	if err := os.Rename(filepath.Join(src, "a"), filepath.Join(src, "moved")); err != nil {
		t.Fatal(err)
	}
	b = newBuilder(src)
	b.text("a/other.txt", "other\n")
	b.text("fresh/f.txt", "f\n")
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	res = ipfsSync(t, repo, "-q", "sync", "--name", "m", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	root2 := oneCID(t, res.Stdout)
	if want := syncRoot(t, src); root2 != want {
		t.Fatalf("after the rename %s, fresh import %s", root2, want)
	}
	res = ipfsSync(t, repo, "diff", root1, root2)
	if res.Code != 0 {
		t.Fatalf("diff: %s", res)
	}
	got := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	want := []string{"+ a/other.txt", "- a/sub/", "- a/x.txt", "+ fresh/", "+ moved/"}
	if !slices.Equal(got, want) {
		t.Errorf("diff %s %s:\n%s\nwant:\n%s", root1, root2, res.Stdout, strings.Join(want, "\n"))
	}
}

// checkDirFault checks a run in which olddir (in root1) and newdir (new)
// could not be read: exit 3, root1 as the previous root, olddir kept and
// newdir skipped, each reported with the kernel's error text.
func checkDirFault(t *testing.T, res result, root1, olddir, newdir, errText string) faultSummary {
	t.Helper()
	if res.Code != 3 {
		t.Fatalf("want exit 3, got %s", res)
	}
	sum := parseFaultSummary(t, res)
	if sum.Previous == nil || *sum.Previous != root1 {
		t.Errorf("previous %v, want %s", sum.Previous, root1)
	}
	checkSkipped(t, res, sum, map[string][]string{
		olddir: {"keeping the previous version", errText},
		newdir: {"skipped", errText},
	})
	return sum
}

// firstSync syncs src, built as v, under the ref name "m" and checks the
// root is what a fresh import of v gives.
func firstSync(t *testing.T, sync func(...string) result, src string, v faultTree) string {
	t.Helper()
	res := sync("-q", "sync", "--name", "m", src)
	if res.Code != 0 {
		t.Fatalf("first sync: %s", res)
	}
	root := oneCID(t, res.Stdout)
	if want := v.root(t); root != want {
		t.Fatalf("first sync %s, fresh import of the same tree %s", root, want)
	}
	return root
}
