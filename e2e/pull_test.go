//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pullResult is `ipfs-sync --json pull`'s summary.
type pullResult struct {
	Root          string  `json:"root"`
	Previous      *string `json:"previous"`
	FilesWritten  int64   `json:"files_written"`
	BytesFetched  int64   `json:"bytes_fetched"`
	BlocksFetched int64   `json:"blocks_fetched"`
	BytesReused   int64   `json:"bytes_reused"`
	Seconds       float64 `json:"seconds"`
}

// pullJSON runs `ipfs-sync --json pull ROOT DEST ARGS...` and decodes its
// summary.
func pullJSON(t *testing.T, repo, root, dest string, args ...string) pullResult {
	t.Helper()
	res := ipfsSync(t, repo, append([]string{"--json", "pull", root, dest}, args...)...)
	if res.Code != 0 {
		t.Fatalf("pull %s: %s", root, res)
	}
	var p pullResult
	if err := json.Unmarshal([]byte(res.Stdout), &p); err != nil {
		t.Fatalf("%v in %q", err, res.Stdout)
	}
	if p.Root != root {
		t.Fatalf("pulled %s, asked for %s", p.Root, root)
	}
	return p
}

// assertIdentical fails unless rsync, comparing by checksum, finds nothing
// to change in dest to make it src: contents, types, link targets, modes,
// mtimes, no extra entries.
func assertIdentical(t *testing.T, src, dest string) {
	t.Helper()
	out, err := exec.Command("rsync", "-rlptDnc", "--itemize-changes", "--delete", src+"/", dest+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("rsync: %v\n%s", err, out)
	}
	if len(out) > 0 {
		t.Fatalf("%s differs from %s:\n%s", dest, src, out)
	}
}

// changedBytes sums the sizes of the regular files of next that are new
// or whose content differs from old (contentOnly), and of those whose mode
// or mtime differ too (any).
func changedBytes(t *testing.T, old, next string) (contentOnly, any int64) {
	t.Helper()
	err := filepath.WalkDir(next, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(next, path)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		ofi, oerr := os.Lstat(filepath.Join(old, rel))
		if oerr != nil || !ofi.Mode().IsRegular() || ofi.Size() != fi.Size() || !sameContent(t, path, filepath.Join(old, rel)) {
			contentOnly += fi.Size()
			any += fi.Size()
		} else if ofi.Mode() != fi.Mode() || !ofi.ModTime().Equal(fi.ModTime()) {
			any += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return contentOnly, any
}

func sameContent(t *testing.T, a, b string) bool {
	da, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(b)
	return err == nil && bytes.Equal(da, db)
}

// TestPullRoundTrip syncs a tiny mirror, serves it, and pulls it into an
// empty directory: identical. Then publish cycles: mutate, sync, pull into
// the same directory: identical again each time, and only about the
// changed bytes cross the wire.
func TestPullRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	dir, src, repo, root := syncedTiny(t)
	base := startServe(t, repo)
	dest := filepath.Join(dir, "dest")

	first := pullJSON(t, repo, root, dest, "--from", base)
	assertIdentical(t, src, dest)
	if first.Previous != nil {
		t.Errorf("first pull has a previous root %s", *first.Previous)
	}
	t.Logf("full pull: %d files, %d bytes in %d blocks, %.2fs", first.FilesWritten, first.BytesFetched, first.BlocksFetched, first.Seconds)

	// From the local repository (no --from) too.
	local := filepath.Join(dir, "local")
	pullJSON(t, repo, root, local)
	assertIdentical(t, src, local)

	for cycle := 1; cycle <= 3; cycle++ {
		next := filepath.Join(dir, fmt.Sprintf("m%d", cycle))
		copyTree(t, src, next)
		publishCycle(t, next, uint64(cycle))
		content, anyChange := changedBytes(t, src, next)
		rsyncTree(t, next, src)
		res := ipfsSync(t, repo, "-q", "sync", src)
		if res.Code != 0 {
			t.Fatal(res)
		}
		prev := root
		root = oneCID(t, res.Stdout)
		p := pullJSON(t, repo, root, dest, "--from", base)
		assertIdentical(t, src, dest)
		if p.Previous == nil || *p.Previous != prev {
			t.Errorf("cycle %d: previous %v, want %s", cycle, p.Previous, prev)
		}
		limit := int64(1.1*float64(content)) + 1<<20
		t.Logf("cycle %d: fetched %d bytes in %d blocks (%d reused locally); files changed: %d bytes in content, %d with metadata; limit %d",
			cycle, p.BytesFetched, p.BlocksFetched, p.BytesReused, content, anyChange, limit)
		if p.BytesFetched > limit {
			t.Errorf("cycle %d: fetched %d bytes, more than 1.1 × %d changed + 1 MiB", cycle, p.BytesFetched, content)
		}
	}

	// Nothing changed: nothing fetched.
	if p := pullJSON(t, repo, root, dest, "--from", base); p.BytesFetched != 0 || p.FilesWritten != 0 {
		t.Errorf("pull of the same root fetched %d bytes, wrote %d files", p.BytesFetched, p.FilesWritten)
	}
}

// TestPullExactCopy: a pulled DEST is an exact copy of ROOT, nothing of
// pull's in it, so rsync finds nothing to change and a sync of DEST (a
// mirror of the mirror) gives ROOT's CID; after a publish cycle too.
func TestPullExactCopy(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	dir, src, repo, root := syncedTiny(t)
	base := startServe(t, repo)
	dest := filepath.Join(dir, "dest")
	check := func(root string) {
		t.Helper()
		pullJSON(t, repo, root, dest, "--from", base)
		assertIdentical(t, src, dest)
		if got := syncRoot(t, dest); got != root {
			t.Errorf("sync of the pulled DEST gives %s, ROOT is %s", got, root)
		}
	}
	check(root)
	next := filepath.Join(dir, "next")
	copyTree(t, src, next)
	publishCycle(t, next, 3)
	rsyncTree(t, next, src)
	res := ipfsSync(t, repo, "-q", "sync", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	check(oneCID(t, res.Stdout))
}

// TestPullFromKubo pulls the same tree from a real kubo gateway on
// loopback, the DAG imported from ipfs-sync's CAR; then a publish cycle,
// imported as a delta CAR.
func TestPullFromKubo(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	d := kuboDaemon(t)
	dir, src, repo, root := syncedTiny(t)
	car := filepath.Join(dir, "full.car")
	if res := ipfsSync(t, repo, "export", root, "--car", car); res.Code != 0 {
		t.Fatal(res)
	}
	kuboRun(t, d.path, "dag", "import", car)

	dest := filepath.Join(dir, "dest")
	first := pullJSON(t, repo, root, dest, "--from", d.gateway)
	assertIdentical(t, src, dest)
	t.Logf("full pull from kubo: %d bytes in %d blocks, %.2fs", first.BytesFetched, first.BlocksFetched, first.Seconds)

	next := filepath.Join(dir, "next")
	copyTree(t, src, next)
	publishCycle(t, next, 7)
	content, _ := changedBytes(t, src, next)
	rsyncTree(t, next, src)
	res := ipfsSync(t, repo, "-q", "sync", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	newRoot := oneCID(t, res.Stdout)
	delta := filepath.Join(dir, "delta.car")
	if res := ipfsSync(t, repo, "export", newRoot, "--since", root, "--car", delta); res.Code != 0 {
		t.Fatal(res)
	}
	kuboRun(t, d.path, "dag", "import", delta)
	// Two gateways: kubo and a dead one; the dead one is skipped.
	p := pullJSON(t, repo, newRoot, dest, "--from", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), "--from", d.gateway)
	assertIdentical(t, src, dest)
	if limit := int64(1.1*float64(content)) + 1<<20; p.BytesFetched > limit {
		t.Errorf("fetched %d bytes from kubo, more than 1.1 × %d changed + 1 MiB", p.BytesFetched, content)
	}
}

// TestPullKilled kills pulls with SIGKILL at random moments, then runs
// one to the end: DEST never holds a file under its final name that is
// not the root's, and the last run leaves DEST identical.
func TestPullKilled(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	dir, src, repo, root := syncedTiny(t)
	base := startServe(t, repo)
	dest := filepath.Join(dir, "dest")
	rng := rand.New(rand.NewPCG(5, 6))
	landed := 0
	for try := range 8 {
		cmd := exec.Command(syncBin, "--repo", repo, "-q", "pull", root, dest, "--from", base)
		if killMidRun(t, cmd, time.Duration(20+rng.IntN(150))*time.Millisecond) {
			landed++
		}
		// Every file under its final name is complete.
		filepath.WalkDir(dest, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".ipfs-sync-pull-tmp-") {
				return nil
			}
			rel, _ := filepath.Rel(dest, path)
			if !sameContent(t, path, filepath.Join(src, rel)) {
				t.Errorf("try %d: %s is in DEST but differs from the source", try, rel)
			}
			return nil
		})
	}
	requireLanded(t, landed, 8)
	p := pullJSON(t, repo, root, dest, "--from", base)
	assertIdentical(t, src, dest)
	t.Logf("after the kills, the last run wrote %d files, fetched %d bytes", p.FilesWritten, p.BytesFetched)
}

// TestPullExitCodes: usage mistakes exit 2, an unknown root exits 1.
func TestPullExitCodes(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	if res := ipfsSync(t, repo, "-q", "sync", src); res.Code != 0 {
		t.Fatal(res)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"pull", "bafkqaaa"}, 2},
		{[]string{"pull", "not-a-cid", dir + "/d"}, 2},
		{[]string{"pull", "bafybeibogus", dir + "/d"}, 2},
		{[]string{"pull", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", dir + "/d"}, 1},
		{[]string{"pull", "bafkqaaa", dir + "/d", "--from", "ftp://x"}, 2},
	} {
		if res := ipfsSync(t, repo, c.args...); res.Code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s", strings.Join(c.args, " "), res.Code, c.code, res)
		}
	}
}

// TestPullDeletesOnlyWhatItWrote: pull removes only what earlier pulls
// wrote. A first pull into a directory holding other things is refused
// (exit 1, naming them) and changes nothing; a DEST that is, contains or
// lies inside the repository is refused and the repository stays whole;
// a later pull keeps, and names, what was added by hand; --delete makes
// DEST exactly ROOT.
func TestPullDeletesOnlyWhatItWrote(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	dir, src, repo, root := syncedTiny(t)
	v := filepath.Join(dir, "v")
	if err := os.MkdirAll(filepath.Join(v, "important"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v, "important", "t"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := ipfsSync(t, repo, "pull", root, v)
	if res.Code != 1 || !strings.Contains(res.Stderr, `"important"`) || !strings.Contains(res.Stderr, "--delete") {
		t.Errorf("pull into a directory holding important/t: %s\nwant exit 1 naming it", res)
	}
	if got, err := os.ReadFile(filepath.Join(v, "important", "t")); err != nil || string(got) != "x\n" {
		t.Errorf("important/t after the refused pull: %q %v", got, err)
	}
	if des, _ := os.ReadDir(v); len(des) != 1 {
		t.Errorf("the refused pull wrote into DEST: %d entries", len(des))
	}

	for _, dest := range []string{repo, filepath.Join(repo, "sub"), dir} {
		for _, flag := range []string{"--no-delete", "--delete"} {
			if res := ipfsSync(t, repo, "pull", root, dest, flag); res.Code != 1 || !strings.Contains(res.Stderr, "repository") {
				t.Errorf("pull %s %s: %s\nwant exit 1", dest, flag, res)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "sub")); err == nil {
		t.Errorf("the refused pull made %s/sub", repo)
	}
	if res := ipfsSync(t, repo, "fsck"); res.Code != 0 {
		t.Fatalf("fsck after the refused pulls: %s", res)
	}
	// The repository still holds ROOT: pulled from it, it is whole.
	dest := filepath.Join(dir, "dest")
	pullJSON(t, repo, root, dest)
	assertIdentical(t, src, dest)

	// Added by hand after the pull: kept, and named.
	if err := os.WriteFile(filepath.Join(dest, "local-notes"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "new-in-root"), []byte("published\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = ipfsSync(t, repo, "-q", "sync", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	next := oneCID(t, res.Stdout)
	res = ipfsSync(t, repo, "pull", next, dest)
	if res.Code != 0 || !strings.Contains(res.Stderr, "local-notes") {
		t.Errorf("later pull: %s\nwant local-notes named as kept", res)
	}
	if _, err := os.Stat(filepath.Join(dest, "local-notes")); err != nil {
		t.Errorf("a later pull removed a file added by hand: %v", err)
	}
	if res := ipfsSync(t, repo, "pull", next, dest, "--delete"); res.Code != 0 {
		t.Fatal(res)
	}
	assertIdentical(t, src, dest)
}
