package sync

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/internal/packtest"
)

// TestSyncedTreeSurvivesGC: gc marks without reading a dag-pb block whose
// size equals the Tsize its parent records (blockstore's gc tests), so the
// Tsizes a sync writes must be exact, or gc would drop live blocks. Two
// versions synced, the older collected: the newer is whole, and the
// collection removed something.
func TestSyncedTreeSurvivesGC(t *testing.T) {
	for _, meta := range []string{"mtime,mode", "none"} {
		t.Run(meta, func(t *testing.T) {
			ctx := context.Background()
			src := incTree(t)
			if err := os.WriteFile(filepath.Join(src, "a/empty"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			store, err := blockstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			opts := Options{Src: src, Name: "gc", Profile: incProfile(t, meta)}
			if _, err := Run(ctx, store, opts); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, "e.txt"), []byte("replaced entirely"), 0o644); err != nil {
				t.Fatal(err)
			}
			second, err := Run(ctx, store, opts)
			if err != nil {
				t.Fatal(err)
			}
			root := cid.MustParse(second.Root)
			res, err := store.GC(ctx, []cid.Cid{root})
			if err != nil {
				t.Fatal(err)
			}
			if res.Removed == 0 {
				t.Fatal("nothing removed")
			}
			fs, err := store.Fsck(ctx, []cid.Cid{root}, false, func(c cid.Cid, p string, err error) {
				t.Errorf("%s at %s: %v", c, p, err)
			})
			if err != nil || fs.Blocks == 0 {
				t.Fatalf("fsck: %+v %v", fs, err)
			}
		})
	}
}

// TestLostBlockAfterFsck: a block of an unchanged file vanishes from the
// store behind ipfs-sync's back. fsck finds the hole and marks the store
// damaged; the next sync then checks what it reuses, reads the file again,
// and the root is whole; a clean fsck lifts the mark.
func TestLostBlockAfterFsck(t *testing.T) {
	ctx := context.Background()
	src := incTree(t)
	store, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	opts := Options{Src: src, Name: "lost", Profile: incProfile(t, "mtime,mode")}
	first, err := Run(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	root := cid.MustParse(first.Root)
	lost, ok := diff.Tree{DAG: store.NewWriter(true)}.Lookup(ctx, root, "a/d.deb")
	if !ok {
		t.Fatal("a/d.deb is not in the root")
	}
	if err := store.Blockstore().DeleteBlock(ctx, lost.Cid); err != nil {
		t.Fatal(err)
	}
	fsck := func() blockstore.FsckResult {
		res, err := store.Fsck(ctx, []cid.Cid{root}, false, func(cid.Cid, string, error) {})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := fsck(); res.Missing != 1 || !store.Damaged() {
		t.Fatalf("fsck after losing a block: %+v, damaged %v", res, store.Damaged())
	}
	second, err := Run(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if second.Root != first.Root || second.BytesRead == 0 {
		t.Fatalf("re-sync of a damaged store: root %s (want %s), read %d bytes", second.Root, first.Root, second.BytesRead)
	}
	if res := fsck(); res.Missing != 0 || store.Damaged() {
		t.Fatalf("fsck after the re-sync: %+v, damaged %v", res, store.Damaged())
	}
}

// TestInterruptedRepairKeepsMark: fsck --repair removes a corrupt block
// and is interrupted (SIGINT) before the end of its walk. The store is
// marked damaged all the same, so the next sync, in a new process, checks
// what it reuses: it reads the file whose block went instead of recording
// a root whose block is gone.
func TestInterruptedRepairKeepsMark(t *testing.T) {
	ctx := context.Background()
	src := incTree(t)
	repo := t.TempDir()
	store, err := blockstore.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Src: src, Name: "repair", Profile: incProfile(t, "mtime,mode")}
	first, err := Run(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	packtest.Flip(t, repo, []byte("content of a/d.deb"), 0, 0xff)
	if store, err = blockstore.Open(repo); err != nil {
		t.Fatal(err)
	}
	root := cid.MustParse(first.Root)
	rctx, interrupt := context.WithCancel(ctx)
	res, err := store.Fsck(rctx, []cid.Cid{root}, true, func(cid.Cid, string, error) { interrupt() })
	if err == nil || res.Removed != 1 {
		t.Fatalf("interrupted repair: %+v, %v; want one block removed, then the interruption", res, err)
	}
	if !store.Damaged() {
		t.Error("an interrupted repair removed a block and left no damage mark")
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if store, err = blockstore.Open(repo); err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	second, err := Run(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	check, err := store.Fsck(ctx, []cid.Cid{cid.MustParse(second.Root)}, false, func(c cid.Cid, p string, err error) {
		t.Errorf("the root recorded after the interrupted repair lacks %s at %s: %v", c, p, err)
	})
	if err != nil {
		t.Fatal(err)
	}
	if second.Root != first.Root || check.Missing+check.Corrupt != 0 {
		t.Fatalf("sync after the interrupted repair: root %s (want %s), fsck %+v", second.Root, first.Root, check)
	}
}
