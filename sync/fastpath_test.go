package sync_test

import (
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/internal/fastpath/fastpathtest"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// A tree with files that fill several of the pack writer's stages imports
// to the same root with the Linux fast paths (AIO and O_DIRECT pack
// writes, preadv2 reads, syncfs) and without them (IPFS_SYNC_NO_FASTPATH:
// pwrite, pread and fsync, as on other systems), and reads back whole from
// the store reopened.
func TestFastPathModes(t *testing.T) {
	p := fxProfile(t, v1, profile.Overrides{HAMTThreshold: ptr(1000)})
	src := readbackTree(t, t.TempDir(), p.ChunkSize())
	fxWriteFrom(t, filepath.Join(src, "big", "one.bin"), randomData(9<<20, "big one"), 0o644)
	fxWriteFrom(t, filepath.Join(src, "big", "two.bin"), randomData(5<<20+77, "big two"), 0o644)
	want := sourceList(t, src, p)
	roots := map[bool]cid.Cid{}
	fastpathtest.BothModes(t, func(t *testing.T, fast bool) {
		repo := t.TempDir()
		store, err := blockstore.Open(repo)
		if err != nil {
			t.Fatal(err)
		}
		roots[fast] = fxRun(t, store, src, p)
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
		if store, err = blockstore.Open(repo); err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		compareTrees(t, want, dagList(t, store.Blockstore(), roots[fast]))
	})
	if len(roots) == 2 && roots[true] != roots[false] {
		t.Fatalf("root %s with the fast paths, %s without", roots[true], roots[false])
	}
}
