//go:build e2e

package e2e

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExitMissingSource: a source that does not exist is an error (exit 1)
// whose message names the path.
func TestExitMissingSource(t *testing.T) {
	t.Parallel()
	repo := filepath.Join(t.TempDir(), "repo")
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	for _, args := range [][]string{{"sync", missing}, {missing}, {"-q", "sync", missing}} {
		res := ipfsSync(t, repo, args...)
		if res.Code != 1 || !strings.Contains(res.Stderr, missing) {
			t.Errorf("ipfs-sync %s: want exit 1 naming %s, got %s", shellQuote(args...), missing, res)
		}
		if res.Stdout != "" {
			t.Errorf("ipfs-sync %s: stdout %q on error", shellQuote(args...), res.Stdout)
		}
	}
}

// TestExitUsage: every way of calling ipfs-sync wrongly exits 2 with a
// message, before touching anything.
func TestExitUsage(t *testing.T) {
	t.Parallel()
	src := widthTree.get(t)
	root := "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
	car := filepath.Join(t.TempDir(), "x.car")
	for _, args := range [][]string{
		{"sync"},
		{"sync", src, src},
		{"sync", "--no-such-flag", src},
		{"--no-such-global-flag", "sync", src},
		{"sync", "--profile", "unixfs-v2-2099", src},
		{"sync", "--metadata", "owner", src},
		{"sync", "--cid-version", "2", src},
		{"sync", "--raw-leaves", src}, // metadata needs dag-pb leaves, as in kubo
		{"sync", "--chunker", "fixed-99", src},
		{"sync", "--max-file-links", "1", src},
		{"sync", "--max-hamt-fanout", "100", src},
		{"sync", "--hamt-estimation", "exact", src},
		{"sync", "--hamt-threshold", "-1", src},
		{"sync", "--metadata", "none", "--inline", "--inline-limit", "1000", src},
		{"sync", "--workers", "many", src},
		{"export", "--car", car},
		{"export", "--car", car, root, root},
		{"export", "--car", car, "not-a-cid"},
		{"export", root}, // no --car
		{"import"},
		{"import", "-", "-"}, // stdin read twice
	} {
		repo := filepath.Join(t.TempDir(), "repo")
		res := ipfsSync(t, repo, args...)
		if res.Code != 2 || strings.TrimSpace(res.Stderr) == "" {
			t.Errorf("ipfs-sync %s: want exit 2 with a message, got %s", shellQuote(args...), res)
		}
		if _, err := os.Stat(car); err == nil {
			t.Errorf("ipfs-sync %s: wrote %s on a usage error", shellQuote(args...), car)
			os.Remove(car)
		}
	}
}

// TestExitPartialSpecialFiles: FIFOs and sockets cannot be stored in
// UnixFS. They are skipped with a warning naming each, the root of
// everything else is still recorded and printed, and the exit code is 3.
// That root is kubo's root of the same tree without them.
func TestExitPartialSpecialFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "src")
	b := newBuilder(dir)
	b.text("a.txt", "a")
	b.text("sub/b.txt", "b")
	b.text("sub/deeper/c.txt", "c")
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	ipfsPath := kubo(t, modeDefault.kuboProfile)
	want := kuboAdd(t, ipfsPath, dir, modeDefault.kubo...)

	fifo := filepath.Join(dir, "sub", "a-fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sub", "deeper", "z.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	// Creating them moved their directories' mtimes: put them back, so
	// that only the special files differ from the tree kubo imported.
	for _, d := range []string{"sub/deeper", "sub"} {
		if err := lutimes(filepath.Join(dir, d), defaultMTime); err != nil {
			t.Fatal(err)
		}
	}

	repo := filepath.Join(t.TempDir(), "repo")
	res := ipfsSync(t, repo, "sync", dir)
	if res.Code != 3 {
		t.Fatalf("want exit 3, got %s", res)
	}
	for _, p := range []string{fifo, sock} {
		if !strings.Contains(res.Stderr, p) || !strings.Contains(res.Stderr, "warning") {
			t.Errorf("no warning naming %s in stderr:\n%s", p, res.Stderr)
		}
	}
	got := oneCID(t, res.Stdout)
	assertSameRoot(t, ipfsPath, repo, want, got, "tree with a FIFO and a socket vs kubo on the tree without them")

	// --json lists what was skipped.
	res = ipfsSync(t, repo, "--json", "sync", dir)
	if res.Code != 3 {
		t.Fatalf("--json: want exit 3, got %s", res)
	}
	var sum struct {
		Root    string
		Skipped []struct{ Path string }
	}
	if err := json.Unmarshal([]byte(res.Stdout), &sum); err != nil {
		t.Fatalf("--json output: %v\n%s", err, res.Stdout)
	}
	if sum.Root != want {
		t.Errorf("--json root %s, want %s", sum.Root, want)
	}
	var skipped []string
	for _, s := range sum.Skipped {
		skipped = append(skipped, s.Path)
	}
	if len(skipped) != 2 || !strings.Contains(strings.Join(skipped, "\n"), fifo) || !strings.Contains(strings.Join(skipped, "\n"), sock) {
		t.Errorf("--json skipped %q, want %s and %s", skipped, fifo, sock)
	}
}

// TestExitLocked: a sync on a repository whose lock (REPO/lock) another
// process holds is refused at once with exit 4, and works again once the
// lock is free.
func TestExitLocked(t *testing.T) {
	t.Parallel()
	src := widthTree.get(t)
	repo := filepath.Join(t.TempDir(), "repo")
	res := ipfsSync(t, repo, "-q", "sync", src)
	if res.Code != 0 {
		t.Fatalf("first sync: %s", res)
	}
	f, err := os.OpenFile(filepath.Join(repo, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res = ipfsSync(t, repo, "-q", "sync", src)
	if res.Code != 4 || !strings.Contains(res.Stderr, "lock") {
		t.Errorf("sync with the lock held: want exit 4 mentioning the lock, got %s", res)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("refusing took %v; a held lock must fail at once", d)
	}
	if res.Stdout != "" {
		t.Errorf("refused sync printed %q", res.Stdout)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if res := ipfsSync(t, repo, "-q", "sync", src); res.Code != 0 {
		t.Fatalf("after the lock is released: %s", res)
	}
}

// TestExitSecondProcess: two real ipfs-sync processes on one repository.
// The first holds the lock while it reads a large (sparse) file; the second
// gets exit 4. The first, interrupted, exits 130 and records nothing.
func TestExitSecondProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	slow := filepath.Join(dir, "slow")
	if err := os.MkdirAll(slow, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(slow, "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 30); err != nil { // 64 GiB of holes: minutes to hash
		t.Fatal(err)
	}
	f.Close()
	repo := filepath.Join(dir, "repo")

	first := exec.Command(syncBin, "--repo", repo, "-q", "sync", "--name", "slow", slow)
	var stderr strings.Builder
	first.Stderr = &stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()
	defer func() {
		if first.ProcessState == nil {
			first.Process.Kill()
			<-done
		}
	}()

	// The lock file names its holder once the lock is taken.
	holder := "pid " + strconv.Itoa(first.Process.Pid)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(repo, "lock"))
		if strings.Contains(string(b), holder) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first process never took the lock (lock file: %q)", b)
		}
		time.Sleep(20 * time.Millisecond)
	}

	res := ipfsSync(t, repo, "-q", "sync", "--name", "other", widthTree.get(t))
	if res.Code != 4 {
		t.Errorf("second process: want exit 4, got %s", res)
	}
	if !strings.Contains(res.Stderr, holder) {
		t.Errorf("the refusal does not name the holder (%s): %s", holder, res.Stderr)
	}

	if err := first.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the first process did not stop within 30s of SIGINT")
	}
	if code := first.ProcessState.ExitCode(); code != 130 {
		t.Errorf("interrupted process: want exit 130, got %d\n%s", code, stderr.String())
	}
	// Nothing was recorded for the interrupted run.
	if res := ipfsSync(t, repo, "log", "slow"); res.Code == 0 && strings.TrimSpace(res.Stdout) != "" {
		t.Errorf("the interrupted run recorded a root:\n%s", res.Stdout)
	}
}
