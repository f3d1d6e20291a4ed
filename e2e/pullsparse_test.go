//go:build e2e && linux

package e2e

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestPullSparse: a sparse file (1 GiB: a hole, 3 MiB of data, a hole,
// a few bytes at its end) synced and pulled, from serve and from the
// local repository, holds on disk what its source does, within one chunk
// (1 MiB, the profile's), and its chunks of zeros are not fetched: the
// pull costs the data, not the file's size.
func TestPullSparse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	const size, chunk = 1 << 30, 1 << 20
	img := filepath.Join(src, "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if _, err := f.WriteAt(data, 300<<20+12345); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), size-4); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	srcAlloc := allocatedBytes(t, img)
	if srcAlloc > size/8 {
		t.Skipf("the file system under %s keeps no holes (%d bytes allocated)", dir, srcAlloc)
	}
	repo := filepath.Join(dir, "repo")
	res := ipfsSync(t, repo, "-q", "sync", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	root := oneCID(t, res.Stdout)
	base := startServe(t, repo)
	for _, c := range []struct {
		name string
		repo string // where the pull keeps its state (and, without --from, reads the blocks)
		args []string
	}{
		{"serve", filepath.Join(dir, "pull-repo"), []string{"--from", base}},
		{"local repository", repo, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "dest")
			p := pullJSON(t, c.repo, root, dest, c.args...)
			assertIdentical(t, src, dest)
			got := allocatedBytes(t, filepath.Join(dest, "disk.img"))
			t.Logf("source: %d bytes allocated; pulled: %d; fetched %d bytes in %.2fs", srcAlloc, got, p.BytesFetched, p.Seconds)
			if got > srcAlloc+chunk || got < srcAlloc-chunk {
				t.Errorf("pulled file holds %d bytes on disk, its source %d: more than a chunk apart", got, srcAlloc)
			}
			// The 5 chunks with data (the 3 MiB straddle 4, the tail is in
			// the last), the zero chunk at most once (a gateway's CAR of
			// the file has each block once), the inner nodes, the directory
			// and the CAR's framing.
			if limit := int64(6*chunk + 256<<10); p.BytesFetched > limit {
				t.Errorf("fetched %d bytes for 5 chunks with data, more than %d", p.BytesFetched, limit)
			}
		})
	}
}

// allocatedBytes is what a file holds on disk (du), not its size.
func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}
