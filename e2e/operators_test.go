//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// opsTree builds a small tree at dir: a few text files, a multi-chunk file
// (3 MiB: three leaves under the default profile) and a subdirectory, all
// with fixed mtimes, and returns dir.
func opsTree(t *testing.T, dir string) string {
	t.Helper()
	b := newBuilder(dir)
	b.text("README", "hello\n")
	b.text("dists/Packages", "Package: hello\n")
	b.file("pool/big.deb", 3*mib, 0o644)
	b.file("pool/small.deb", 10*kib, 0o644)
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// syncOK runs `ipfs-sync -q ARGS...` and returns the one CID it prints.
func syncOK(t *testing.T, repo string, args ...string) string {
	t.Helper()
	res := ipfsSync(t, repo, append([]string{"-q"}, args...)...)
	if res.Code != 0 {
		t.Fatalf("ipfs-sync %s: %s", shellQuote(args...), res)
	}
	return oneCID(t, res.Stdout)
}

// TestCarDeltaIsRelativeToTheRef: `sync --car` holds what a node holding
// the ref's previous root lacks, whatever else the repository holds. On a
// ref's first sync that is every block of the root, even when the
// repository has them all under another name; on a later sync it includes
// blocks the repository had before under another ref.
func TestCarDeltaIsRelativeToTheRef(t *testing.T) {
	dir := t.TempDir()
	src := opsTree(t, filepath.Join(dir, "mirror"))
	repo := filepath.Join(dir, "repo")
	syncOK(t, repo, "sync", "--name", "first", src)

	t.Run("first sync of a ref", func(t *testing.T) {
		car := filepath.Join(dir, "new.car")
		root := syncOK(t, repo, "sync", "--name", "new", "--car", car, src)
		node := kubo(t, "unixfs-v1-2025")
		if res := kuboTry(t, node, "dag", "import", car); res.Code != 0 {
			t.Fatalf("ipfs dag import of the first --car of a ref: %s", res)
		}
		kuboRun(t, node, "dag", "stat", "--offline", "--progress=false", root)
	})

	t.Run("blocks the repository has under another ref", func(t *testing.T) {
		other := filepath.Join(dir, "other")
		b := newBuilder(other)
		b.text("index", "other mirror\n")
		if err := b.finish(); err != nil {
			t.Fatal(err)
		}
		full := filepath.Join(dir, "other.car")
		prev := syncOK(t, repo, "sync", "--name", "other", "--car", full, other)
		// The same big file as in "first": its leaves are in the store.
		copyTree(t, filepath.Join(src, "pool", "big.deb"), filepath.Join(other, "big.deb"))
		delta := filepath.Join(dir, "other-delta.car")
		root := syncOK(t, repo, "sync", "--name", "other", "--car", delta, other)
		node := kubo(t, "unixfs-v1-2025")
		kuboRun(t, node, "dag", "import", full)
		kuboRun(t, node, "dag", "stat", "--offline", "--progress=false", prev)
		if res := kuboTry(t, node, "dag", "import", delta); res.Code != 0 {
			t.Fatalf("ipfs dag import of the delta on a node holding the previous root: %s", res)
		}
		kuboRun(t, node, "dag", "stat", "--offline", "--progress=false", root)
	})
}

// deletedStoreFiles lists the files of the store that process pid holds
// open although they were deleted.
func deletedStoreFiles(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if strings.Contains(target, "/packs/") && strings.HasSuffix(target, "(deleted)") {
			out = append(out, target)
		}
	}
	return out
}

// TestServeLetsGoAfterGC: a serve started before a gc notices the new
// set of indexes: it stops serving the roots gc collected (404) and
// closes the packs gc deleted, so that their space is freed.
func TestServeLetsGoAfterGC(t *testing.T) {
	dir := t.TempDir()
	src := opsTree(t, filepath.Join(dir, "mirror"))
	repo := filepath.Join(dir, "repo")
	old := syncOK(t, repo, "sync", src)
	// Most of the first pack is the big file, gone from the next root:
	// gc rewrites that pack and deletes it.
	if err := os.Remove(filepath.Join(src, "pool", "big.deb")); err != nil {
		t.Fatal(err)
	}
	cur := syncOK(t, repo, "sync", src)
	p := startServeProc(t, repo)
	car := func(root string) (int, int) {
		t.Helper()
		resp, err := http.Get(p.base + "/ipfs/" + root + "?format=car")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, len(body)
	}
	if code, n := car(old); code != http.StatusOK || n < 3*mib {
		t.Fatalf("before gc: %s: %d, %d bytes", old, code, n)
	}
	if res := ipfsSync(t, repo, "gc", "--keep", "1"); res.Code != 0 {
		t.Fatal(res)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := car(old)
		held := deletedStoreFiles(t, p.cmd.Process.Pid)
		if code == http.StatusNotFound && len(held) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after gc, serve answers %d for the collected root %s and holds deleted files open: %v", code, old, held)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := car(cur); code != http.StatusOK {
		t.Fatalf("after gc: the kept root %s: %d", cur, code)
	}
}

// TestSyncAPIUnreachable: a sync whose hand-off to kubo fails has still
// recorded its root: the CID is on stdout (and in --json, with the error),
// the ref has moved, and the exit status is 5, not 1 ("no ref was
// moved"). A bad --api is a usage error found before anything runs.
func TestSyncAPIUnreachable(t *testing.T) {
	dir := t.TempDir()
	src := opsTree(t, filepath.Join(dir, "mirror"))
	repo := filepath.Join(dir, "repo")
	api := fmt.Sprintf("http://127.0.0.1:%d", freePort(t)) // nobody listens
	current := func() string {
		t.Helper()
		res := ipfsSync(t, repo, "--json", "log", src)
		if res.Code != 0 {
			t.Fatalf("log: %s", res)
		}
		var v struct{ Root string }
		if err := json.Unmarshal([]byte(strings.SplitN(res.Stdout, "\n", 2)[0]), &v); err != nil {
			t.Fatal(err)
		}
		return v.Root
	}

	res := ipfsSync(t, repo, "sync", "--api", api, src)
	if res.Code != 5 {
		t.Fatalf("want exit 5 (root recorded, hand-off failed), got %s", res)
	}
	root := oneCID(t, res.Stdout)
	if got := current(); got != root {
		t.Fatalf("stdout says %s, the ref names %s", root, got)
	}
	if !strings.Contains(res.Stderr, root) || !strings.Contains(res.Stderr, "ipfs-sync push") {
		t.Errorf("stderr does not name the root and the way to retry: %s", res.Stderr)
	}

	if err := os.WriteFile(filepath.Join(src, "NEW"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = ipfsSync(t, repo, "--json", "sync", "--api", api, src)
	if res.Code != 5 {
		t.Fatalf("--json: want exit 5, got %s", res)
	}
	var sum struct {
		Root      string `json:"root"`
		PushError string `json:"push_error"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, res.Stdout)
	}
	if sum.Root == "" || sum.Root == root || sum.Root != current() || sum.PushError == "" {
		t.Errorf("--json: root %q (ref at %q, previous %s), push_error %q", sum.Root, current(), root, sum.PushError)
	}

	before := current()
	if err := os.WriteFile(filepath.Join(src, "NEWER"), []byte("newer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = ipfsSync(t, repo, "sync", "--api", "ftp://127.0.0.1:5001", src)
	if res.Code != 2 || res.Stdout != "" {
		t.Errorf("a bad --api: want exit 2 and nothing on stdout, got %s", res)
	}
	if got := current(); got != before {
		t.Errorf("a bad --api moved the ref from %s to %s", before, got)
	}
}

// TestOnlySyncCreatesARepository: every command but sync, given a
// --repo where there is none (a typo), says so and exits 1, and leaves
// nothing behind; `sync -n` previews a first sync without creating one.
func TestOnlySyncCreatesARepository(t *testing.T) {
	dir := t.TempDir()
	src := opsTree(t, filepath.Join(dir, "mirror"))
	root := syncOK(t, filepath.Join(dir, "repo"), "sync", src)
	typo := filepath.Join(dir, "repoo")
	for _, args := range [][]string{
		{"fsck"},
		{"gc", "--keep", "1"},
		{"log", src},
		{"refs"},
		{"serve", "--listen", "127.0.0.1:0"},
		{"export", root, "--car", filepath.Join(dir, "x.car")},
		{"diff", root, root},
		{"verify", src, root},
		{"push", root, "--api", fmt.Sprintf("http://127.0.0.1:%d", freePort(t))},
	} {
		res := ipfsSync(t, typo, args...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "no repository at "+typo) {
			t.Errorf("ipfs-sync --repo %s %s: want exit 1 saying there is no repository, got %s", typo, shellQuote(args...), res)
		}
		if _, err := os.Stat(typo); err == nil {
			t.Fatalf("ipfs-sync %s created %s", shellQuote(args...), typo)
		}
	}
	res := ipfsSync(t, typo, "sync", "-n", src)
	if res.Code != 0 || !strings.Contains(res.Stdout, "+ README") {
		t.Errorf("sync -n on no repository: want a preview of a first sync, got %s", res)
	}
	if _, err := os.Stat(typo); err == nil {
		t.Errorf("sync -n created %s", typo)
	}
}

// TestRepositoryInsideSource: a repository inside SRC is left out of the
// import, with a warning: the root is SRC's without it, and a second run
// with nothing changed gives the same root.
func TestRepositoryInsideSource(t *testing.T) {
	dir := t.TempDir()
	src := opsTree(t, filepath.Join(dir, "mirror"))
	repo := filepath.Join(src, "state", ".ipfs-sync")
	res := ipfsSync(t, repo, "-q", "sync", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	first := oneCID(t, res.Stdout)
	if !strings.Contains(res.Stderr, "warning") || !strings.Contains(res.Stderr, repo) {
		t.Errorf("no warning naming the repository inside SRC: %s", res.Stderr)
	}
	if again := syncOK(t, repo, "sync", src); again != first {
		t.Errorf("a second run with nothing changed gave %s, the first %s: the repository was imported", again, first)
	}
	without := syncOK(t, filepath.Join(dir, "outside"), "sync", "--exclude", "/state/.ipfs-sync/", src)
	if without != first {
		t.Errorf("root %s, but SRC without the repository is %s", first, without)
	}
}

// TestNamesAreData: a name holding a newline, a control character or
// bytes that are not UTF-8 is one line of `sync -n`, `-i` and `diff`,
// escaped as rsync does (\#ooo, octal), and `--json` gives its bytes back
// exactly (path_base64 where the path is not UTF-8).
func TestNamesAreData(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	names := map[string]string{ // name on disk → escaped
		"one\n+ two":      `one\#012+ two`,
		"tab\there":       `tab\#011here`,
		"bad\xff\xfename": `bad\#377\#376name`,
		`back\#slash`:     `back\#134#slash`,
		"caf\u00e9":       "caf\u00e9",
		"line\u2028sep":   `line\#342\#200\#250sep`,
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	before := syncOK(t, repo, "sync", src)
	for name := range names {
		if err := os.WriteFile(filepath.Join(src, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantLines := func(label, out string) {
		t.Helper()
		got := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if l != "* / (mtime)" { // the top directory's own change
				got[l] = true
			}
		}
		for _, esc := range names {
			if !got["+ "+esc] {
				t.Errorf("%s: no line %q in\n%s", label, "+ "+esc, out)
			}
		}
		if len(got) != len(names) {
			t.Errorf("%s: %d lines for %d entries:\n%s", label, len(got), len(names), out)
		}
	}
	res := ipfsSync(t, repo, "sync", "-n", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	wantLines("sync -n", res.Stdout)

	res = ipfsSync(t, repo, "--json", "sync", "-n", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		var ch struct {
			Change     string  `json:"change"`
			Path       string  `json:"path"`
			PathBase64 *[]byte `json:"path_base64"`
		}
		if err := json.Unmarshal([]byte(l), &ch); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if ch.Change == "" || ch.Path == "/" {
			continue // the summary, the top directory
		}
		p := ch.Path
		if ch.PathBase64 != nil {
			p = string(*ch.PathBase64)
		}
		seen[p] = true
	}
	for name := range names {
		if !seen[name] {
			t.Errorf("--json sync -n: %q not given back exactly (got %v)", name, seen)
		}
	}
	if len(seen) != len(names) {
		t.Errorf("--json sync -n: %d paths for %d entries: %v", len(seen), len(names), seen)
	}

	res = ipfsSync(t, repo, "-q", "sync", "-i", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	lines := strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n")
	after := lines[len(lines)-1]
	wantLines("sync -i", strings.Join(lines[:len(lines)-1], "\n"))

	res = ipfsSync(t, repo, "diff", before, after)
	if res.Code != 0 {
		t.Fatal(res)
	}
	wantLines("diff", res.Stdout)
}

// TestDryRunCountsEqualRealRun: `sync -n` reports the counts the real run
// then reports (files, dirs, symlinks, bytes, file and directory changes)
// and never a root: it records none, changed or not.
func TestDryRunCountsEqualRealRun(t *testing.T) {
	dir := t.TempDir()
	src := opsTree(t, filepath.Join(dir, "mirror"))
	repo := filepath.Join(dir, "repo")
	syncOK(t, repo, "sync", src)

	type counts struct {
		Root                  *string
		Files, Dirs, Symlinks int64
		Bytes                 int64
		FileChanges           map[string]int64 `json:"file_changes"`
		DirChanges            map[string]int64 `json:"dir_changes"`
	}
	summary := func(args ...string) (counts, result) {
		t.Helper()
		res := ipfsSync(t, repo, append([]string{"--json", "sync"}, append(args, src)...)...)
		if res.Code != 0 {
			t.Fatal(res)
		}
		lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
		var c counts
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &c); err != nil {
			t.Fatalf("%v: %s", err, res.Stdout)
		}
		return c, res
	}
	check := func(label string) {
		t.Helper()
		dry, _ := summary("-n")
		if dry.Root != nil {
			t.Errorf("%s: sync -n --json gives root %q; a dry run records none", label, *dry.Root)
		}
		if res := ipfsSync(t, repo, "sync", "-n", src); res.Code != 0 || res.Stdout != "" && !strings.HasPrefix(res.Stdout, "+") && !strings.HasPrefix(res.Stdout, "-") && !strings.HasPrefix(res.Stdout, "*") {
			t.Errorf("%s: sync -n printed something else than changes: %s", label, res)
		}
		real, _ := summary()
		real.Root, dry.Root = nil, nil
		if fmt.Sprint(dry) != fmt.Sprint(real) {
			t.Errorf("%s: sync -n counts\n%+v\nthe real run's\n%+v", label, dry, real)
		}
	}
	check("nothing changed")

	b := newBuilder(src)
	b.text("README", "hello, longer now\n")    // modified, another size
	b.text("NEW", "new file\n")                // added
	b.file("pool/new/sub/a.deb", 5*kib, 0o644) // added, in new directories
	b.symlink("latest", "pool/small.deb")      // added symlink
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, "dists", "Packages")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "pool", "small.deb"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("a publish")
}

// TestLogOfAFileSource: `log PATH` finds the ref of a SRC that is a file,
// given as a relative path, as it does for a directory.
func TestLogOfAFileSource(t *testing.T) {
	dir := t.TempDir()
	opsTree(t, filepath.Join(dir, "mirror"))
	repo := filepath.Join(dir, "repo")
	root := syncOK(t, repo, "sync", filepath.Join(dir, "mirror", "README"))
	for _, arg := range []string{"mirror/README", "./mirror/README"} {
		cmd := exec.Command(syncBin, "--repo", repo, "log", arg)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), root) {
			t.Errorf("log %s (in %s): %v\n%s", arg, dir, err, out)
		}
	}
}

// TestInterruptSaysInterrupted: SIGINT ends a command with exit 130 and
// the message "interrupted", not Go's "context canceled".
func TestInterruptSaysInterrupted(t *testing.T) {
	dir := t.TempDir()
	src := opsTree(t, filepath.Join(dir, "mirror"))
	repo := filepath.Join(dir, "repo")
	syncOK(t, repo, "sync", src)
	// Another holder of the lock keeps gc waiting (--retry-lock).
	f, err := os.OpenFile(filepath.Join(repo, "lock"), os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(syncBin, "--repo", repo, "--retry-lock", "1m", "gc")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("want exit 130, got %v\nstderr: %s", err, stderr.String())
	}
	if got := strings.TrimSpace(stderr.String()); got != "ipfs-sync: interrupted" {
		t.Errorf("stderr %q, want %q", got, "ipfs-sync: interrupted")
	}
}

// TestExportAbsentRootLeavesNoFile: export of a root the repository does
// not hold fails (exit 1, naming it) and leaves no CAR behind.
func TestExportAbsentRootLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	src := opsTree(t, filepath.Join(dir, "mirror"))
	repo := filepath.Join(dir, "repo")
	syncOK(t, repo, "sync", src)
	const absent = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
	car := filepath.Join(dir, "x.car")
	res := ipfsSync(t, repo, "export", absent, "--car", car)
	if res.Code != 1 || !strings.Contains(res.Stderr, absent) {
		t.Errorf("want exit 1 naming %s, got %s", absent, res)
	}
	if fi, err := os.Stat(car); err == nil {
		t.Errorf("a failed export left %s behind (%d bytes)", car, fi.Size())
	}
}
